"""The fp16/bf16 baseline (kernels/flash_fp16.py): what is specific to it beyond the every-method tests."""

from __future__ import annotations

import pytest
import torch

from kernels.flash_fp16 import flash_attention_fp16
from kernels.reference import attention_reference
from tests.kernels.cases import on_device, rel_l2


def _qkv(seed, hq, hkv, nq, nk, d, dtype):
    g = torch.Generator().manual_seed(seed)
    return tuple(
        on_device(torch.randn(1, h, n, d, generator=g).to(dtype)) for h, n in ((hq, nq), (hkv, nk), (hkv, nk))
    )


@pytest.mark.parametrize("causal", [False, True])
def test_bf16_rows_of_weights_sum_to_exactly_one(causal):
    """bf16, V = 1 gives exactly 1: the denominator sums the very (rounded) P that multiplies V."""
    q, k, _ = _qkv(3, 4, 2, 37, 70, 64, torch.bfloat16)
    v = torch.ones_like(k)
    out = flash_attention_fp16(q, k, v, causal=causal)
    assert torch.equal(out, torch.ones_like(out))


@pytest.mark.parametrize("causal", [False, True])
def test_fp16_rows_of_weights_sum_to_one_within_the_rounding_of_p(causal):
    """fp16, V = 1: the denominator sums P before its rounding, the numerator the rounded P, so a row
    gives 1 within one rounding of P (2^-11)."""
    q, k, _ = _qkv(3, 4, 2, 37, 70, 64, torch.float16)
    v = torch.ones_like(k)
    out = flash_attention_fp16(q, k, v, causal=causal)
    assert (out.double() - 1).abs().max() <= 2**-11


@pytest.mark.parametrize(
    ("d", "dtype", "bound"),
    [
        (32, torch.float16, 1e-3),
        (96, torch.float16, 1e-3),
        (256, torch.float16, 1e-3),
        (64, torch.bfloat16, 8e-3),
    ],
)
def test_error_is_that_of_rounding_p_and_the_output(d, dtype, bound):
    """fp32 softmax and accumulation: the error left is P and O rounded to the input dtype (2^-11 for
    fp16, 2^-8 for bf16, grown a little by the sum), well inside the registry's budget."""
    q, k, v = _qkv(d, 2, 1, 45, 77, d, dtype)
    out = flash_attention_fp16(q, k, v, causal=True)
    assert rel_l2(out, attention_reference(q, k, v, causal=True)) <= bound


def test_large_logits_stay_finite_and_pick_the_maximum():
    """Logits around 3e9 (the FMA-contraction bug found on the GPU): rows are one-hot on the max key."""
    g = torch.Generator().manual_seed(7)
    q = on_device((torch.randn(1, 1, 8, 64, generator=g) * 6e3).half())
    k = on_device((torch.randn(1, 1, 16, 64, generator=g) * 6e3).half())
    v = on_device(torch.randn(1, 1, 16, 64, generator=g).half())
    out = flash_attention_fp16(q, k, v)
    assert torch.isfinite(out).all()
    winner = (q.double() @ k.double().transpose(-1, -2)).argmax(-1)
    assert torch.equal(out, v[0, 0, winner[0, 0]].unsqueeze(0).unsqueeze(0))
