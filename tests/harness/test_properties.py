"""check_case: each property catches its kind of wrong kernel, and a correct kernel passes all."""

import dataclasses
import json
import math

import pytest
import torch

from harness.search.cases import KV_CACHE_SPARE, Case
from harness.search.properties import PROPERTIES, check_case, same_bits
from harness.search.targets import target_from_callable, target_from_spec
from tests.harness import broken_kernels as bk

CASE = Case(
    batch=1,
    hq=4,
    hkv=2,
    nq=20,
    nk=37,
    head_dim=32,
    dtype="float16",
    causal=True,
    sm_scale=None,
    distribution="gaussian",
    seed=3,
)


def check(fn, case=CASE, **kw):
    return check_case(target_from_callable(fn, name="k", **kw), case, "cpu")


def test_correct_kernel_passes_every_property():
    r = check(bk.correct_fp32)
    assert r.status == "pass" and r.failed_property is None
    # A bare callable has no emulation to be held to; every other property is checked.
    assert r.verdicts["emulation"] is None
    assert all(r.verdicts[p] is True for p in PROPERTIES if p != "emulation")
    assert r.metrics["rel_l2"] < 1e-2 and r.metrics["max_abs"] < 5e-2
    assert 0 <= r.error_ratio < 1


def test_wrong_shape_dtype_or_type():
    r = check(lambda q, k, v, **kw: bk.correct_fp32(q, k, v, **kw).float())
    assert r.failed_property == "shape_dtype_device"
    r = check(lambda q, k, v, **kw: bk.correct_fp32(q, k, v, **kw)[:, :, :-1])
    assert r.failed_property == "shape_dtype_device"
    r = check(lambda q, k, v, **kw: bk.correct_fp32(q, k, v, **kw).tolist())
    assert r.failed_property == "shape_dtype_device" and "Tensor" in r.message


def test_nan_output_fails_finite_with_infinite_error():
    def nan_kernel(q, k, v, **kw):
        out = bk.correct_fp32(q, k, v, **kw)
        out[0, 0, 0, 0] = math.nan
        return out

    r = check(nan_kernel)
    assert r.failed_property == "finite"
    assert r.metrics["rel_l2"] == math.inf and r.verdicts["error_budget"] is False
    assert r.to_dict()["metrics"]["rel_l2"] is None


def test_error_budget_and_override():
    r = check(bk.sm_scale_ignored, dataclasses.replace(CASE, sm_scale=0.5))
    assert r.failed_property == "error_budget" and "rel_l2" in r.message
    loose = check(bk.sm_scale_ignored, dataclasses.replace(CASE, sm_scale=0.5), max_rel_l2=10.0, max_abs=10.0)
    assert loose.status == "pass"


def test_inputs_modified_in_place():
    r = check(bk.k_modified_in_place)
    assert r.failed_property == "inputs_unchanged" and "k" in r.message


def test_nondeterministic_output():
    r = check(bk.nondeterministic, dataclasses.replace(CASE, nk=64))
    assert r.failed_property == "deterministic"


def test_value_error_is_unsupported_other_exceptions_fail():
    def refuses(q, k, v, **kw):
        raise NotImplementedError("head dim 32 not supported")

    def crashes(q, k, v, **kw):
        raise IndexError("out of range")

    r = check(refuses)
    assert r.status == "unsupported" and r.failed_property is None
    r = check(crashes)
    assert r.status == "fail" and r.failed_property == "supported_or_raises" and "IndexError" in r.message


def test_dequantize_reports_kernel_only_and_quantization_error():
    r = check_case(
        target_from_spec(bk.int8_spec()), dataclasses.replace(CASE, distribution="gaussian_large"), "cpu"
    )
    m = r.metrics
    assert {"kernel_rel_l2", "kernel_max_abs", "quant_rel_l2"} <= m.keys()
    # The kernel is exact up to float32 on the values it quantized: the error is all quantization.
    assert m["kernel_rel_l2"] < 1e-2 < m["rel_l2"]
    assert m["quant_rel_l2"] > 10 * m["kernel_rel_l2"]


def test_to_dict_is_strict_json():
    r = check(bk.correct_fp32)
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["case"] == CASE.params() and d["case_id"] == CASE.case_id
    assert d["status"] == "pass" and d["repro_command"].startswith(
        "lowbit fuzz --kernel k=tests.harness.broken_kernels:correct_fp32 --device cpu --case "
    )


def test_same_bits_distinguishes_signed_zero_and_nan_payloads():
    a = torch.tensor([0.0, 1.0], dtype=torch.float16)
    assert same_bits(a, a.clone())
    assert not same_bits(a, torch.tensor([-0.0, 1.0], dtype=torch.float16))
    n = torch.tensor([math.nan], dtype=torch.float16)
    assert same_bits(n, n.clone())


def int8(fn, case):
    return check_case(target_from_spec(bk.int8_spec(fn, fn.__name__)), case, "cpu")


def test_honest_int8_matches_its_emulation_on_every_family():
    for dist in ("gaussian", "fp16_limit", "heavy_tailed", "zero_tokens", "gaussian_large"):
        r = int8(bk.int8_honest, dataclasses.replace(CASE, distribution=dist))
        assert r.status == "pass", r.message
        assert r.verdicts["emulation"] is True
        assert r.metrics["emul_rel_l2"] < 2e-3 < r.metrics["rel_l2"] or dist == "zero_tokens"


def test_emulation_catches_what_int8_budgets_let_through():
    # Zeros on huge inputs: within the large-but-finite "extreme" accuracy budget, not the emulation's.
    huge = next(
        c
        for c in (dataclasses.replace(CASE, distribution="fp16_limit", seed=s) for s in range(100))
        if c.make_values()[0].float().abs().max() > 1e4
    )
    r = int8(bk.int8_zeros_when_huge, huge)
    assert r.verdicts["error_budget"] is True and r.failed_property == "emulation", r.message
    assert r.metrics["emul_rel_l2"] > 0.5
    # Output 0.8% small everywhere: INT8's accuracy budget cannot see it.
    r = int8(bk.int8_misscaled, CASE)
    assert r.verdicts["error_budget"] is True and r.failed_property == "emulation", r.message


def test_one_wrong_row_fails_worst_row_while_the_whole_tensor_passes():
    case = dataclasses.replace(CASE, hq=4, hkv=4, nq=128, nk=128, head_dim=64, seed=5)
    r = check(bk.last_row_misscaled, case)
    assert r.verdicts["error_budget"] is True, r.message
    assert r.failed_property == "worst_row" and r.metrics["worst_row_rel_l2"] > 10 * r.metrics["rel_l2"]


def test_output_sharing_memory_fails_output_fresh():
    r = check(bk.output_buffer_reused)
    assert r.failed_property == "output_fresh" and "reused buffer" in r.message
    r = check(lambda q, k, v, **kw: q.copy_(bk.correct_fp32(q, k, v, **kw)))
    assert r.verdicts["output_fresh"] is False and "shares memory" in r.message


@pytest.mark.parametrize("layout", ["bnhd", "fused", "kv_cache"])
def test_layouts_reach_the_kernel_and_catch_layout_bugs(layout):
    case = dataclasses.replace(CASE, layout=layout)
    seen = []

    def spy(q, k, v, **kw):
        seen.append((q.stride(), k.stride()))
        return bk.correct_fp32(q, k, v, **kw)

    r = check(spy, case)
    assert r.status == "pass", r.message
    (q_stride, k_stride), *_ = seen
    assert q_stride[-1] == k_stride[-1] == 1
    if layout == "kv_cache":
        assert k_stride[1] == (CASE.nk + KV_CACHE_SPARE) * CASE.head_dim
    else:
        assert q_stride[2] > CASE.head_dim  # tokens are not adjacent: (B, N, H, D) memory
    r = check(bk.assumes_contiguous, case)
    assert r.failed_property in ("finite", "error_budget"), r.message


def test_reading_past_the_kv_cache_sees_nan():
    r = check(bk.keys_from_stride, dataclasses.replace(CASE, layout="kv_cache"))
    assert r.failed_property == "finite"
    assert check(bk.keys_from_stride, CASE).status == "pass"


def test_writing_outside_the_views_fails_inputs_unchanged():
    def scribbles(q, k, v, **kw):
        # Writes one element just past the last key of the cache (inside the same allocation).
        k.as_strided((1,), (1,), k.storage_offset() + k.shape[2] * k.stride(2)).fill_(0)
        return bk.correct_fp32(q, k, v, **kw)

    r = check(scribbles, dataclasses.replace(CASE, layout="kv_cache"))
    assert r.failed_property == "inputs_unchanged" and "outside" in r.message
