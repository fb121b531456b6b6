"""Triton quantizers against their torch references: exact integers and scales, zero guards, layouts."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import quant
from tests.kernels.cases import on_device


def _x(seed, shape, dtype):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * torch.rand((*shape[:-1], 1), generator=g) * 5
    return on_device(x.to(dtype))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("d", [32, 96, 256])
def test_per_token_matches_reference_exactly(dtype, d):
    x = _x(d, (2, 3, 37, d), dtype)
    x[0, 1, 5] = 0  # an all-zero (padding) token
    q, s = quant.quantize_per_token(x)
    q_ref, s_ref = quant.quantize_per_token_reference(x)
    assert q.dtype == torch.int8 and q.shape == x.shape and q.is_contiguous()
    assert s.dtype == torch.float32 and s.shape == x.shape[:-1]
    assert torch.equal(q, q_ref)
    assert torch.equal(s, s_ref)
    assert s[0, 1, 5] == 0 and not q[0, 1, 5].any()
    assert int(q.abs().amax(dim=-1).min()) in (0, 127)
    # Rounding error of every element is at most half a step.
    err = (quant.dequantize_per_token(q, s) - x.float()).abs()
    assert (err <= s[..., None] * 0.5 * (1 + 1e-5) + 1e-12).all()


def test_per_token_center_is_subtracted_without_touching_input():
    x = _x(1, (1, 2, 20, 64), torch.float16) + 4.0
    before = x.clone()
    center = x.float().mean(dim=2)
    q, s = quant.quantize_per_token(x, center=center)
    q_ref, s_ref = quant.quantize_per_token_reference(x, center=center)
    assert torch.equal(x, before)
    assert torch.equal(q, q_ref) and torch.equal(s, s_ref)
    plain_q, plain_s = quant.quantize_per_token(x)
    centered = x.float() - center[:, :, None]
    err_c = (quant.dequantize_per_token(q, s) - centered).norm()
    err_p = (quant.dequantize_per_token(plain_q, plain_s) - x.float()).norm()
    assert err_c < err_p  # the offset no longer eats the INT8 range


def test_per_token_strided_input():
    base = _x(2, (2, 50, 4, 64), torch.bfloat16)
    x = base.transpose(1, 2)[:, :, ::3]
    q, s = quant.quantize_per_token(x)
    q_ref, s_ref = quant.quantize_per_token_reference(x)
    assert torch.equal(q, q_ref) and torch.equal(s, s_ref)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("n", [1, 70, 129])
def test_per_channel_matches_reference_exactly(dtype, n):
    x = _x(n, (2, 2, n, 96), dtype)
    x[1, 0, :, 7] = 0  # an all-zero channel
    q, s = quant.quantize_per_channel(x)
    q_ref, s_ref = quant.quantize_per_channel_reference(x)
    assert q.shape == x.shape and q.stride(2) == 1  # token index contiguous for the P·V dot
    assert s.shape == (2, 2, 96)
    assert torch.equal(q, q_ref)
    assert torch.equal(s, s_ref)
    assert s[1, 0, 7] == 0 and not q[1, 0, :, 7].any()
    err = (quant.dequantize_per_channel(q, s) - x.float()).abs()
    assert (err <= s[:, :, None, :] * 0.5 * (1 + 1e-5) + 1e-12).all()


def test_per_channel_strided_input():
    x = _x(3, (1, 3, 40, 64), torch.float16)[:, :, 1::2, :48]
    q, s = quant.quantize_per_channel(x)
    q_ref, s_ref = quant.quantize_per_channel_reference(x)
    assert torch.equal(q, q_ref) and torch.equal(s, s_ref)


def test_all_zero_tensor_gives_zero_scales_and_no_nan():
    x = on_device(torch.zeros(1, 2, 9, 32, dtype=torch.float16))
    q, s = quant.quantize_per_token(x)
    qc, sc = quant.quantize_per_channel(x)
    for t in (q, qc):
        assert not t.any()
    for t in (s, sc):
        assert torch.equal(t, torch.zeros_like(t))
    assert torch.equal(quant.dequantize_per_token(q, s), torch.zeros(x.shape, device=x.device))


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.zeros(2, 3, 4), "4-d"),
        (torch.zeros(1, 1, 4, 8, dtype=torch.int32), "dtype"),
        (torch.zeros(1, 1, 8, 4).transpose(-1, -2), "contiguous"),
    ],
)
def test_bad_input_raises(x, match):
    x = on_device(x)
    with pytest.raises(ValueError, match=match):
        quant.quantize_per_token(x)
    with pytest.raises(ValueError, match=match):
        quant.quantize_per_channel(x)


def test_bad_center_raises():
    x = on_device(torch.zeros(1, 2, 4, 32, dtype=torch.float16))
    with pytest.raises(ValueError, match="center"):
        quant.quantize_per_token(x, center=on_device(torch.zeros(1, 2, 16)))


@pytest.mark.parametrize("centered", [False, True])
def test_per_token_norm_out_is_each_heads_longest_token(centered):
    """``norm_out`` holds each head's longest (centered) token's L2 norm, as the torch reference has it up
    to fp32 summation order; the codes and scales are those of the call without it."""
    x = _x(3, (2, 3, 45, 96), torch.float16)
    x[1, 2, 7] *= 40.0  # one long token in one head
    center = x.float().mean(dim=2) if centered else None
    norm = on_device(torch.zeros(2, 3))
    q, s = quant.quantize_per_token(x, center=center, norm_out=norm)
    q_plain, s_plain = quant.quantize_per_token(x, center=center)
    assert torch.equal(q, q_plain) and torch.equal(s, s_plain)
    ref = quant.longest_token_reference(x, center)
    assert torch.allclose(norm, ref, rtol=1e-6)
    assert int(norm.argmax()) == 1 * 3 + 2


def test_bad_norm_out_raises():
    x = on_device(torch.zeros(1, 2, 4, 32, dtype=torch.float16))
    with pytest.raises(ValueError, match=r"norm_out: expected a contiguous float32 tensor of shape \(1, 2\)"):
        quant.quantize_per_token(x, norm_out=on_device(torch.zeros(2, 1)))
    with pytest.raises(ValueError, match="norm_out"):
        quant.quantize_per_token(x, norm_out=on_device(torch.zeros(1, 2, dtype=torch.float64)))


def test_noisy_heads_flags_by_the_fp32_product():
    """A KV head is noisy when any of its query rows' q_scale · qk_scale · k_norm passes Q_NOISE_BOUND
    (GQA 2: query heads 2 and 3 read KV head 1); the test is on the product, not each factor."""
    bound = quant.Q_NOISE_BOUND.value
    q_scale = torch.full((1, 6, 4), 0.5)
    q_scale[0, 3, 2] = 2.0
    k_norm = torch.tensor([[bound * 3.0, bound * 1.5, bound * 1.5]])
    # KV head 0: 0.5 * 3 = 1.5 bounds (every row); head 1: one row at 2.0 * 1.5 = 3; head 2: 0.75.
    flags = quant.noisy_heads(q_scale, k_norm, 1.0)
    assert flags.tolist() == [[True, True, False]]
    assert quant.noisy_heads(q_scale, k_norm, 0.25).tolist() == [[False, False, False]]
    assert quant.noisy_heads(q_scale[:, :, :0], k_norm, 1.0).tolist() == [[False, False, False]]


def test_unflagged_logit_bound_covers_every_head_dim():
    """UNFLAGGED_LOGIT_MAX is above the bound the comment derives, at every supported head dim."""
    from kernels._validate import HEAD_DIMS

    for d in HEAD_DIMS:
        bound = 127 * d**0.5 * (1 + d**0.5 / 254) * quant.Q_NOISE_BOUND.value
        assert bound < quant.UNFLAGGED_LOGIT_MAX, d


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    head_dim=st.sampled_from([32, 64, 128, 256]),
    margin=st.floats(0.9, 1.1),
    n_k=st.integers(2, 70),
    seed=st.integers(0, 2**16),
)
def test_heads_the_noisy_rule_leaves_have_bounded_logits(head_dim, margin, n_k, seed):
    """The largest logits the sage methods can meet, in float64: queries of equal magnitudes aligned
    with the longest key (|q8| = 127 sqrt(D)), scaled so the noisy test sits at ``margin`` of its bound.
    In every head the rule leaves to the first launch, |raw · c| stays below UNFLAGGED_LOGIT_MAX, where
    that launch's one-FMA exponent is safe; heads past the bound are flagged."""
    from kernels.emulation import quantize_sage_fp8, sage_q

    g = torch.Generator().manual_seed(seed)
    d = head_dim
    # Keys within 2^3 of each other by absmax (no wide block, kernels.flash_sage_fp8.K_WIDE_MIN), the
    # longest of equal magnitudes, so its codes are all +-127 too.
    k = torch.randn(1, 2, n_k, d, generator=g) * 12.0
    sign = torch.where(torch.rand(2, d, generator=g) < 0.5, -1.0, 1.0)
    k[0, :, 0] = sign * 40.0
    kv = quantize_sage_fp8(k.half(), k.half(), 32)
    sm = d**-0.5
    scale = sm * 1.4426950408889634
    # c · |k| = (a / 127) · scale · k_norm = margin · Q_NOISE_BOUND
    a = margin * quant.Q_NOISE_BOUND.value * 127 / (scale * kv.k_norm[0].double())
    q = (sign[:, None, :] * a[:, None, None]).expand(2, 3, d).reshape(1, 2, 3, d).half()
    values, scales = sage_q(q, kv, scale)
    logits = values @ kv.k_int.transpose(-1, -2) * scales[..., None] * kv.k_scale[:, :, None, :] * scale
    flagged = kv.wide_heads | quant.noisy_heads(quant.quantize_per_token_reference(q)[1], kv.k_norm, scale)
    unflagged = ~flagged[0]
    if margin < 0.999:
        assert unflagged.all()
    if margin > 1.001:
        assert flagged.all()
    worst = logits[0][unflagged].abs().amax().item() if unflagged.any() else 0.0
    assert worst < quant.UNFLAGGED_LOGIT_MAX
    if unflagged.any():
        # The inputs reach the regime the bound is about (94-98 % of it at margin 1).
        assert worst > 0.8 * margin * 127 * d**0.5 * quant.Q_NOISE_BOUND.value
