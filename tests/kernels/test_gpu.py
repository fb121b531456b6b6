"""GPU-only checks (marked ``gpu``; deselected on machines without CUDA): long sequences, big grids."""

from __future__ import annotations

import pytest
import torch

from kernels import REGISTRY, attention
from kernels.reference import attention_reference
from tests.kernels.cases import rel_l2

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("method", sorted(REGISTRY))
@pytest.mark.parametrize(
    ("n_q", "n_k", "causal"), [(4093, 4096, True), (4096, 1000, True), (2047, 3001, False)]
)
@pytest.mark.parametrize("head_dim", [64, 128])
def test_long_sequences_against_fp32(method, n_q, n_k, causal, head_dim):
    g = torch.Generator(device="cuda").manual_seed(n_q * 7 + n_k)
    q = torch.randn(1, 4, n_q, head_dim, device="cuda", generator=g).half()
    k = torch.randn(1, 2, n_k, head_dim, device="cuda", generator=g).half()
    v = torch.randn(1, 2, n_k, head_dim, device="cuda", generator=g).half()
    torch.full(q.shape, float("nan"), dtype=q.dtype, device="cuda")  # poison the allocator's block
    out = attention(q, k, v, causal=causal, method=method)
    ref = attention_reference(q, k, v, causal=causal, dtype=torch.float32)
    assert not torch.isnan(out).any()
    assert rel_l2(out, ref) <= REGISTRY[method].budget_for("gaussian", q.dtype).max_rel_l2


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_grid_beyond_65535_programs(method):
    g = torch.Generator(device="cuda").manual_seed(3)
    # 70000 (batch x head) pairs with one query block each: more programs than a y/z grid axis holds.
    q = torch.randn(70000, 1, 16, 64, device="cuda", generator=g).half()
    k = torch.randn(70000, 1, 16, 64, device="cuda", generator=g).half()
    v = torch.randn(70000, 1, 16, 64, device="cuda", generator=g).half()
    out = attention(q, k, v, method=method)
    ref = attention_reference(q[-100:], k[-100:], v[-100:], dtype=torch.float32)
    assert rel_l2(out[-100:], ref) <= REGISTRY[method].budget_for("gaussian", q.dtype).max_rel_l2


# Found by `lowbit fuzz` on an H200: logits ~3e9 made the GPU's FMA-contracted `s * scale - m` positive,
# exp2 overflowed and the row became NaN (fp16, int8_qk, int8_qk_smooth). The CPU interpreter does not
# contract, so this regression can only be seen on a GPU.
HUGE_LOGITS = (
    '{"batch":1,"causal":false,"distribution":"fp16_limit","dtype":"float16","head_dim":32,'
    '"hkv":1,"hq":1,"nk":64,"nq":64,"seed":102194612,"sm_scale":null}'
)


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_huge_logits_stay_finite(method):
    from harness.search.cases import Case

    q, k, v = Case.from_json(HUGE_LOGITS).make_inputs("cuda")
    out = attention(q, k, v, method=method)
    assert torch.isfinite(out).all()
    if method == "fp16":
        ref = attention_reference(q, k, v, dtype=torch.float32)
        assert rel_l2(out, ref) <= REGISTRY[method].budget_for("extreme", q.dtype).max_rel_l2


# Issue 14: the shrunk cases with which a nightly GPU fuzz broke each INT8 method's declared budget.
# int8 lost its diffuse rows to P at fixed 1/127 steps (fixed in the kernel: P per block row); the
# other two were claims too tight for per-token INT8 Q/K on those families (budgets recalibrated).
ISSUE_14 = [
    (
        "int8",
        '{"batch":2,"causal":false,"distribution":"gaussian","dtype":"float16","head_dim":32,"hkv":1,'
        '"hq":1,"nk":4976,"nq":4976,"seed":1,"sm_scale":0.265165}',
    ),
    (
        "int8_qk",
        '{"batch":4,"causal":false,"distribution":"gaussian_large","dtype":"float16","head_dim":96,'
        '"hkv":1,"hq":2,"nk":659,"nq":1,"seed":40253767,"sm_scale":null}',
    ),
    (
        "int8_qk_smooth",
        '{"batch":1,"causal":true,"distribution":"heavy_tailed","dtype":"float16","head_dim":32,'
        '"hkv":1,"hq":2,"nk":7536,"nq":7536,"seed":22573829,"sm_scale":0.220971}',
    ),
]


@pytest.mark.parametrize(("method", "case_json"), ISSUE_14, ids=[m for m, _ in ISSUE_14])
def test_issue_14_cases_within_budget(method, case_json):
    from harness.search.cases import Case

    case = Case.from_json(case_json)
    q, k, v = case.make_inputs("cuda")
    out = attention(q, k, v, causal=case.causal, sm_scale=case.sm_scale, method=method)
    ref = attention_reference(q, k, v, causal=case.causal, sm_scale=case.sm_scale, dtype=torch.float32)
    budget = REGISTRY[method].budget_for(case.family, q.dtype, case.nk)
    assert rel_l2(out, ref) <= budget.max_rel_l2


def test_int8_keeps_diffuse_long_rows():
    """With P per block row, int8's error no longer grows with Nk (was 0.12 on issue 14's first case)."""
    from harness.search.cases import Case

    case = Case.from_json(ISSUE_14[0][1])
    q, k, v = case.make_inputs("cuda")
    out = attention(q, k, v, sm_scale=case.sm_scale, method="int8")
    ref = attention_reference(q, k, v, sm_scale=case.sm_scale, dtype=torch.float32)
    assert rel_l2(out, ref) <= 4e-2


# Shrunk cases the nightly-profile GPU fuzz found later, each checked on every fuzz property.
# int8, saturating, Nk = 6 (H100, seed 11): a near-tied key switched after rounding, worst row 1.05 over
# the 1.0 the short-row claim implied (the row bound is now that of the other INT8 Q/K methods).
# The others, from a nightly-profile fuzz on an H200 (seeds 11-13), broke claims stated too tightly:
# int4 on Gaussian inputs (worst row 1.06 > 1), int8_qk on one-hot logits (max-abs 5.002 > 5),
# int4_seed on "extreme" against its emulation (row 0.335 > 0.25), sage_fp8 on tiny values (max-abs
# 1.202e-4 > 1.2e-4). docs/perf.md has the campaign.
NIGHTLY_FOUND = [
    (
        "int8",
        '{"batch":4,"causal":false,"distribution":"gaussian_large","dtype":"float16","head_dim":32,'
        '"hkv":3,"hq":24,"nk":6,"nq":6,"seed":1104873,"sm_scale":0.265165}',
    ),
    (
        "int4",
        '{"batch":4,"causal":false,"distribution":"gaussian","dtype":"float16","head_dim":128,"hkv":1,'
        '"hq":24,"nk":4416,"nq":6,"seed":7162,"sm_scale":0.176777}',
    ),
    (
        "int8_qk",
        '{"batch":3,"causal":false,"distribution":"gaussian_large","dtype":"float16","head_dim":256,'
        '"hkv":26,"hq":26,"nk":192,"nq":192,"seed":23410,"sm_scale":0.09375}',
    ),
    (
        "int4_seed",
        '{"batch":1,"causal":false,"distribution":"fp16_limit","dtype":"float16","head_dim":32,"hkv":10,'
        '"hq":10,"nk":4608,"nq":4608,"seed":5,"sm_scale":null}',
    ),
    (
        "int8",
        '{"batch":4,"causal":false,"distribution":"attention_sink","dtype":"float16","head_dim":32,'
        '"hkv":11,"hq":11,"nk":352,"nq":2913,"seed":0,"sm_scale":null}',
    ),
    (
        "int8",
        '{"batch":4,"causal":false,"distribution":"attention_sink","dtype":"float16","head_dim":32,'
        '"hkv":12,"hq":12,"nk":96,"nq":2911,"seed":91,"sm_scale":0.132583}',
    ),
    (
        "mixed",
        '{"batch":3,"causal":true,"distribution":"attention_sink","dtype":"bfloat16","head_dim":96,'
        '"hkv":10,"hq":20,"nk":2554,"nq":2554,"seed":2996812,"sm_scale":null}',
    ),
    (
        "sage_fp8",
        '{"batch":4,"causal":true,"distribution":"gaussian_tiny","dtype":"float16","head_dim":64,"hkv":2,'
        '"hq":2,"nk":1056,"nq":6271,"seed":578,"sm_scale":null}',
    ),
]


@pytest.mark.parametrize(("method", "case_json"), NIGHTLY_FOUND, ids=[m for m, _ in NIGHTLY_FOUND])
def test_nightly_findings_pass_every_property(method, case_json):
    from harness.search.cases import Case
    from harness.search.properties import check_case
    from harness.search.targets import load_kernel

    result = check_case(load_kernel(method), Case.from_json(case_json), "cuda")
    assert result.status == "pass", result.message
