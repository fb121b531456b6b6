"""The registry the harness consumes: names, lookups, spec fields, budgets, dequantize functions."""

from __future__ import annotations

import math

import pytest
import torch

import kernels
from kernels.reference import attention_reference
from kernels.registry import DISTRIBUTION_FAMILIES, REGISTRY, ErrorBudget, KernelSpec, get_spec
from tests.kernels.cases import on_device, rel_l2

EXPECTED = {
    "fp16",
    "int8",
    "int8_qk",
    "int8_qk_smooth",
    "sage_fp8",
    "sage_qk_int8",
    "int4",
    "int4_seed",
    "mixed",
}


def test_registry_names_and_lookup():
    assert set(REGISTRY) == EXPECTED
    assert kernels.REGISTRY is REGISTRY
    for name, spec in REGISTRY.items():
        assert get_spec(name) is spec and spec.name == name


@pytest.mark.parametrize("bad", ["INT8", "", "fp8", None, 3])
def test_get_spec_unknown_names_the_methods(bad):
    with pytest.raises(ValueError) as info:
        get_spec(bad)
    for name in EXPECTED:
        assert name in str(info.value)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spec_fields(name):
    spec = REGISTRY[name]
    assert isinstance(spec, KernelSpec) and callable(spec.fn)
    assert set(spec.bits) == {"q", "k", "p", "v"}
    assert spec.head_dims == (32, 64, 96, 128, 256)
    assert spec.dtypes == (torch.float16, torch.bfloat16)
    assert spec.supports(96, torch.bfloat16) and not spec.supports(80, torch.float16)
    assert not spec.supports(64, torch.float32)
    assert spec.description and spec.source.startswith("kernels/")
    for dtype in spec.dtypes:
        for family in (*DISTRIBUTION_FAMILIES, "default", "unknown-family"):
            budget = spec.budget_for(family, dtype)
            assert isinstance(budget, ErrorBudget)
            # Every budget is a finite claim; INT8 Q/K on logits ~1e10 gets a large one (registry says why).
            limits = (budget.max_rel_l2, budget.max_abs, budget.row_limit)
            assert all(math.isfinite(x) and x > 0 for x in limits)
            assert budget.max_rel_l2 < (3 if family == "extreme" and name != "fp16" else 1)
        emul = spec.emulation_budget_for(dtype)
        # Whole tensor: fp32-accumulation sized. A row may move by a few P steps (int8, sage_fp8: the
        # registry says why): by up to an eighth of its size, a quarter for int8, whose P steps of
        # |v|/127 land in rows an attention sink makes small (0.087 found on an H200).
        assert math.isfinite(emul.max_rel_l2) and 0 < emul.max_rel_l2 <= 1.5e-2
        assert math.isfinite(emul.row_limit) and 0 < emul.row_limit <= (0.25 if name == "int8" else 0.125)
    assert callable(spec.emulate)
    assert (spec.dequantize is None) == (name == "fp16")
    qk_bits = {"fp16": (16, 16), "int4": (4, 4), "int4_seed": (8, 4), "mixed": (4, 4)}
    q_bits, k_bits = qk_bits.get(name, (8, 8))
    assert (spec.bits["q"], spec.bits["k"]) == (q_bits, k_bits)


def test_fp16_budget_is_the_issue_bound_and_bf16_is_looser():
    spec = REGISTRY["fp16"]
    assert spec.budget_for("gaussian", torch.float16).max_rel_l2 == 2e-3
    assert spec.budget_for("gaussian").max_rel_l2 == 2e-3
    assert spec.budget_for("gaussian", torch.bfloat16).max_rel_l2 > 2e-3


@pytest.mark.parametrize("name", ["int8", "int8_qk", "int8_qk_smooth", "sage_qk_int8"])
def test_dequantize_separates_quantization_from_arithmetic(name):
    spec = REGISTRY[name]
    g = torch.Generator().manual_seed(11)
    q = on_device(torch.randn(1, 4, 45, 64, generator=g).half())
    k = on_device((torch.randn(1, 2, 70, 64, generator=g) + 1.5).half())
    v = on_device(torch.randn(1, 2, 70, 64, generator=g).half())
    dq, dk, dv = spec.dequantize(q, k, v, causal=True)
    for t, orig in zip((dq, dk, dv), (q, k, v), strict=True):
        assert t.dtype == torch.float32 and t.shape == orig.shape
    out = spec.fn(q, k, v, causal=True)
    full_error = rel_l2(out, attention_reference(q, k, v, causal=True))
    arithmetic_error = rel_l2(out, attention_reference(dq, dk, dv, causal=True))
    # Quantizing Q and K is the main error source; what is left is the kernel's own arithmetic:
    # fp16 rounding of P and the output (int8_qk), plus P at 1/127 steps (int8).
    assert arithmetic_error < full_error
    assert arithmetic_error <= (2e-2 if name == "int8" else 2e-3)


def test_length_budgets_tighten_short_rows_only():
    spec = REGISTRY["int8"]
    short = spec.budget_for("outliers", torch.float16, 1000)
    mid = spec.budget_for("outliers", torch.float16, 3000)
    long = spec.budget_for("outliers", torch.float16, 16384)
    assert short.max_rel_l2 < mid.max_rel_l2 < long.max_rel_l2
    # Without a length the claim that holds at every length applies; families no bucket names too.
    assert spec.budget_for("outliers", torch.float16) == long
    assert spec.budget_for("gaussian", torch.float16, 100) == spec.budget_for("gaussian", torch.float16)


def test_emulations_set_for_the_sage_methods():
    for name in ("sage_fp8", "sage_qk_int8"):
        assert callable(REGISTRY[name].emulate) and callable(REGISTRY[name].dequantize)


@pytest.mark.parametrize("bad", [math.inf, math.nan, -1.0, "1e-2", None])
def test_no_budget_can_be_infinite_or_nan(bad):
    with pytest.raises(ValueError, match="finite number"):
        ErrorBudget(bad, 1.0)
    with pytest.raises(ValueError, match="finite number"):
        ErrorBudget(1e-2, bad)
    if bad is not None:
        with pytest.raises(ValueError, match="max_row_rel_l2"):
            ErrorBudget(1e-2, 1.0, bad)
