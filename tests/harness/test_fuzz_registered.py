"""Our own kernels pass the fuzzer under their declared budgets: tiny shapes in the interpreter (CI),
the ci profile's long sequences on a GPU."""

import pytest

from harness.search.fuzz import fuzz
from harness.search.profiles import TINY
from harness.search.targets import load_kernel, registry
from tests.conftest import DEVICE

METHODS = sorted(registry())


def explain(report) -> str:
    f = report.failures[0]
    return f"{f.failed_property}: {f.message}\nrepro: {f.repro_command}"


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_registered_kernel_passes_tiny_cases(method):
    # In CI this runs in the Triton interpreter, where a call costs 0.05-0.5 s: tiny shapes only.
    report = fuzz(
        load_kernel(method), examples=30, seed=None, device=DEVICE, profile="ci", database=False, sizes=TINY
    )
    assert report.ok, explain(report)
    assert report.examples == 30 and report.passed > 0


@pytest.mark.gpu
@pytest.mark.parametrize("method", METHODS)
def test_registered_kernel_passes_the_ci_profile_on_the_gpu(method):
    report = fuzz(load_kernel(method), examples=200, seed=None, device="cuda", profile="ci", database=False)
    assert report.ok, explain(report)
    assert report.passed > 0


# Cases the fuzzer found against our kernels, kept as regressions (replayed every run). Each failed an
# earlier budget or produced non-finite output; the fix is named beside it.
FOUND_ON_CPU = [
    # bf16 P rounding on near-fp16-limit values: fp16's bf16 "extreme" budget was below what bf16 allows.
    ("fp16", '{"batch":1,"causal":false,"distribution":"fp16_limit","dtype":"bfloat16","head_dim":32,'
     '"hkv":2,"hq":2,"nk":6,"nq":6,"seed":39916802,"sm_scale":null}'),
    # Padding tokens with a decode-like query: int8's degenerate budget (P at 1/127 steps) was too tight.
    ("int8", '{"batch":2,"causal":true,"distribution":"zero_tokens","dtype":"bfloat16","head_dim":32,'
     '"hkv":1,"hq":4,"nk":127,"nq":4,"seed":1,"sm_scale":0.353553}'),
    # An attention sink seen by two queries: int8's saturating budget was too tight.
    ("int8", '{"batch":2,"causal":false,"distribution":"attention_sink","dtype":"bfloat16","head_dim":96,'
     '"hkv":2,"hq":4,"nk":129,"nq":2,"seed":840,"sm_scale":0.051031}'),
    # Repeated tokens: int8_qk's degenerate max-abs budget was too tight.
    ("int8_qk", '{"batch":2,"causal":true,"distribution":"repeated_tokens","dtype":"float16","head_dim":96,'
     '"hkv":1,"hq":1,"nk":128,"nq":128,"seed":7562,"sm_scale":0.204124}'),
    ("int8_qk_smooth", '{"batch":1,"causal":false,"distribution":"zero_tokens","dtype":"float16",'
     '"head_dim":64,"hkv":2,"hq":2,"nk":47,"nq":33,"seed":2017075217,"sm_scale":null}'),
    # Logits ~1e10: no INT8-Q/K method can be accurate there (large finite budget); it must stay finite
    # and match its emulation.
    ("int8_qk_smooth", '{"batch":1,"causal":false,"distribution":"fp16_limit","dtype":"float16",'
     '"head_dim":32,"hkv":1,"hq":1,"nk":16,"nq":6,"seed":2200,"sm_scale":null}'),
]  # fmt: skip

FOUND_ON_GPU = [
    # FMA-contracted `s * scale - m` at logits ~3e9: NaN rows, then all-zero rows (enable_fp_fusion=False).
    *[(m, '{"batch":1,"causal":false,"distribution":"fp16_limit","dtype":"float16","head_dim":32,"hkv":1,'
       '"hq":1,"nk":64,"nq":64,"seed":102194612,"sm_scale":null}') for m in METHODS],
    # int8 on padding tokens at Nk=385: max-abs 0.55 over the old 0.5 degenerate budget.
    ("int8", '{"batch":4,"causal":false,"distribution":"zero_tokens","dtype":"float16","head_dim":32,'
     '"hkv":7,"hq":7,"nk":385,"nq":992,"seed":0,"sm_scale":0.265165}'),
]  # fmt: skip


def _replay(method: str, case_json: str, device: str):
    from harness.search.cases import Case
    from harness.search.properties import check_case

    result = check_case(load_kernel(method), Case.from_json(case_json), device)
    assert result.status == "pass", f"{result.failed_property}: {result.message}"


@pytest.mark.parametrize(("method", "case_json"), FOUND_ON_CPU)
def test_found_cases_pass(method, case_json):
    _replay(method, case_json, DEVICE)


@pytest.mark.gpu
@pytest.mark.parametrize(("method", "case_json"), FOUND_ON_GPU)
def test_found_gpu_cases_pass(method, case_json):
    _replay(method, case_json, "cuda")
