"""Contract properties of every method: inputs untouched, bit-identical reruns, strides, masking."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import REGISTRY, attention
from kernels.reference import attention_reference
from tests.kernels.cases import on_device, rel_l2, seeded_randn

METHODS = sorted(REGISTRY)


@pytest.mark.parametrize("method", METHODS)
def test_inputs_unchanged_and_reruns_bit_identical(method):
    g = torch.Generator().manual_seed(1)
    # A common offset on K makes smoothing (int8_qk_smooth) actually subtract something.
    q, k, v = (
        seeded_randn(g, 1, 4, 33, 64),
        seeded_randn(g, 1, 2, 47, 64) + 2.0,
        seeded_randn(g, 1, 2, 47, 64),
    )
    copies = [t.clone() for t in (q, k, v)]
    first = attention(q, k, v, causal=True, method=method)
    second = attention(q, k, v, causal=True, method=method)
    for t, c in zip((q, k, v), copies, strict=True):
        assert torch.equal(t, c)
    assert torch.equal(first, second)


@pytest.mark.parametrize("method", METHODS)
def test_strided_inputs_match_contiguous_copies(method):
    g = torch.Generator().manual_seed(2)
    # q in (B, N, H, D) layout seen as (B, H, N, D); k, v every other token of a longer buffer;
    # both keep the last dimension contiguous, which is all the API asks for.
    q = seeded_randn(g, 2, 19, 4, 32, dtype=torch.bfloat16).transpose(1, 2)
    k = seeded_randn(g, 2, 2, 90, 32, dtype=torch.bfloat16)[:, :, ::2]
    v = seeded_randn(g, 2, 2, 90, 48, dtype=torch.bfloat16)[:, :, 1::2, 8:40]
    assert not q.is_contiguous() and not k.is_contiguous() and not v.is_contiguous()
    strided = attention(q, k, v, causal=True, method=method)
    dense = attention(q.contiguous(), k.contiguous(), v.contiguous(), causal=True, method=method)
    assert torch.equal(strided, dense)
    ref = attention_reference(q, k, v, causal=True)
    assert rel_l2(strided, ref) <= REGISTRY[method].budget_for("gaussian", q.dtype).max_rel_l2


@pytest.mark.parametrize("method", METHODS)
def test_fully_masked_rows_are_zero_and_all_zero_tokens_are_safe(method):
    g = torch.Generator().manual_seed(3)
    q, k, v = seeded_randn(g, 1, 2, 40, 32), seeded_randn(g, 1, 2, 24, 32), seeded_randn(g, 1, 2, 24, 32)
    # Padding tokens: all-zero queries and keys (absmax 0 in the quantizers), an all-zero V channel.
    q[:, :, 30:] = 0
    k[:, :, 5:9] = 0
    v[..., 3] = 0
    out = attention(q, k, v, causal=True, method=method)
    assert torch.isfinite(out).all()
    assert torch.equal(out[:, :, :16], torch.zeros_like(out[:, :, :16]))
    ref = attention_reference(q, k, v, causal=True)
    assert rel_l2(out, ref) <= REGISTRY[method].budget_for("degenerate", q.dtype).max_rel_l2
    # A zero query attends uniformly over the keys it sees: the mean of the visible values.
    row = 35
    visible = row - 16 + 1
    expect = v[:, :, :visible].double().mean(dim=2)
    tol = 2e-3 if method == "fp16" else 3e-2
    assert (out[:, :, row].double() - expect).abs().max() <= tol


@pytest.mark.parametrize("method", METHODS)
def test_all_zero_keys_give_mean_of_values(method):
    g = torch.Generator().manual_seed(4)
    q, v = seeded_randn(g, 1, 1, 9, 64), seeded_randn(g, 1, 1, 20, 64)
    k = on_device(torch.zeros(1, 1, 20, 64, dtype=torch.float16))
    out = attention(q, k, v, method=method)
    expect = v.double().mean(dim=2, keepdim=True).expand_as(out)
    assert torch.isfinite(out).all()
    assert rel_l2(out, expect) <= REGISTRY[method].budget_for("degenerate", q.dtype).max_rel_l2


@pytest.mark.parametrize("method", METHODS)
def test_custom_sm_scale(method):
    g = torch.Generator().manual_seed(5)
    q, k, v = seeded_randn(g, 1, 2, 30, 96), seeded_randn(g, 1, 1, 50, 96), seeded_randn(g, 1, 1, 50, 96)
    out = attention(q, k, v, sm_scale=0.3, method=method)
    ref = attention_reference(q, k, v, sm_scale=0.3)
    assert rel_l2(out, ref) <= REGISTRY[method].budget_for("saturating", q.dtype).max_rel_l2
    assert rel_l2(out, attention_reference(q, k, v)) > 1e-2  # the scale was really used


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    method=st.sampled_from(METHODS),
    n_q=st.integers(1, 70),
    n_k=st.integers(1, 70),
    group=st.sampled_from([(1, 1), (2, 1), (4, 2), (8, 1)]),
    head_dim=st.sampled_from([32, 64, 96, 128, 256]),
    bf16=st.booleans(),
    causal=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_fuzz_small_shapes(method, n_q, n_k, group, head_dim, bf16, causal, seed):
    dtype = torch.bfloat16 if bf16 else torch.float16
    g = torch.Generator().manual_seed(seed)
    hq, hkv = group
    q = seeded_randn(g, 1, hq, n_q, head_dim, dtype=dtype)
    k = seeded_randn(g, 1, hkv, n_k, head_dim, dtype=dtype)
    v = seeded_randn(g, 1, hkv, n_k, head_dim, dtype=dtype)
    out = attention(q, k, v, causal=causal, method=method)
    ref = attention_reference(q, k, v, causal=causal)
    budget = REGISTRY[method].budget_for("gaussian", dtype)
    assert not torch.isnan(out).any()
    assert rel_l2(out, ref) <= budget.max_rel_l2
    assert (out.double() - ref).abs().max() <= budget.max_abs


def test_a_failing_inspect_is_a_note_not_a_failure():
    import dataclasses

    from harness.search.cases import Case
    from harness.search.properties import check_case
    from harness.search.targets import load_kernel
    from tests.conftest import DEVICE

    def broken(*args, **kwargs):
        raise RuntimeError("no plan")

    target = dataclasses.replace(load_kernel("fp16"), inspect=broken)
    case = Case.from_json(
        '{"batch":1,"causal":false,"distribution":"gaussian","dtype":"float16","head_dim":32,"hkv":1,'
        '"hq":1,"nk":16,"nq":16,"seed":1,"sm_scale":null}'
    )
    result = check_case(target, case, DEVICE)
    assert result.status == "pass" and "inspect raised RuntimeError: no plan" in result.message
