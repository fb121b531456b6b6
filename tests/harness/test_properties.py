"""check_case: each property catches its kind of wrong kernel, and a correct kernel passes all."""

import dataclasses
import json
import math

import torch

from harness.search.cases import Case
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
    assert all(r.verdicts[p] is True for p in PROPERTIES)
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
        "lowbit fuzz --kernel k=tests.harness.broken_kernels:correct_fp32 --case "
    )


def test_same_bits_distinguishes_signed_zero_and_nan_payloads():
    a = torch.tensor([0.0, 1.0], dtype=torch.float16)
    assert same_bits(a, a.clone())
    assert not same_bits(a, torch.tensor([-0.0, 1.0], dtype=torch.float16))
    n = torch.tensor([math.nan], dtype=torch.float16)
    assert same_bits(n, n.clone())
