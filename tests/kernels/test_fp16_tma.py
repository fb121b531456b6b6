"""The Hopper TMA + warp-specialized fp16 kernel (kernels/flash_fp16_tma.py).

In the CPU interpreter the same kernel code runs (descriptors included; warp specialization is a
compiler pass and has no effect there); the GPU tests check the dispatch from ``flash_attention_fp16``.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings

import kernels.flash_fp16 as fp16_module
from kernels.flash_fp16 import flash_attention_fp16
from kernels.flash_fp16_tma import TMA_HEAD_DIMS, flash_attention_fp16_tma, prefer_tma, tma_eligible
from kernels.reference import attention_reference
from tests.kernels.cases import on_device, rel_l2, seeded_randn, tma_shapes


@settings(max_examples=25, deadline=None, derandomize=True)
@given(**tma_shapes(TMA_HEAD_DIMS))
@example(n_q=1, n_k=33, heads=(2, 1), batch=1, head_dim=96, bf16=False, bnhd=False, causal=False, seed=0)
@example(n_q=64, n_k=64, heads=(1, 1), batch=2, head_dim=128, bf16=True, bnhd=True, causal=True, seed=1)
@example(n_q=70, n_k=20, heads=(2, 1), batch=1, head_dim=32, bf16=False, bnhd=False, causal=True, seed=2)
# Non-causal launches are persistent: 24 query blocks walked by the interpreter's 4 programs, 6 each.
@example(n_q=70, n_k=50, heads=(4, 2), batch=2, head_dim=64, bf16=False, bnhd=True, causal=False, seed=3)
def test_matches_fp32_and_the_pointer_kernel(n_q, n_k, heads, batch, head_dim, bf16, bnhd, causal, seed):
    """Ragged ends (rows past Nq / Nk read as zeros by TMA), GQA, strided views, D padded to a power of 2,
    bottom-right causal (rows that see no key are zero)."""
    dtype = torch.bfloat16 if bf16 else torch.float16
    g = torch.Generator().manual_seed(seed)
    hq, hkv = heads
    q = seeded_randn(g, batch, hq, n_q, head_dim, dtype=dtype, bnhd=bnhd)
    k = seeded_randn(g, batch, hkv, n_k, head_dim, dtype=dtype, bnhd=bnhd)
    v = seeded_randn(g, batch, hkv, n_k, head_dim, dtype=dtype, bnhd=bnhd)
    out = flash_attention_fp16_tma(q, k, v, causal=causal)
    ref = attention_reference(q, k, v, causal=causal)
    assert out.shape == (batch, hq, n_q, head_dim) and out.is_contiguous()
    assert not torch.isnan(out).any()
    if causal and n_q > n_k:
        assert torch.all(out[:, :, : n_q - n_k] == 0)
    # P and O rounded to the input dtype: 2^-11 (fp16) or 2^-8 (bf16) per element, grown a little.
    assert rel_l2(out, ref) <= (8e-3 if bf16 else 1e-3)
    assert rel_l2(out, flash_attention_fp16(q, k, v, causal=causal, kernel="pointer")) <= (
        8e-3 if bf16 else 1e-3
    )


@pytest.mark.parametrize(("dtype", "ulp"), [(torch.float16, 2**-11), (torch.bfloat16, 2**-8)])
def test_rows_of_weights_sum_to_one_within_the_rounding_of_p(dtype, ulp):
    """V = 1: the denominator sums P before its rounding to the input dtype, the numerator the rounded P,
    so a row gives 1 within one rounding of P (the pointer kernel gives exactly 1 for bf16)."""
    g = torch.Generator().manual_seed(3)
    q, k = seeded_randn(g, 1, 4, 37, 64, dtype=dtype), seeded_randn(g, 1, 2, 70, 64, dtype=dtype)
    out = flash_attention_fp16_tma(q, k, torch.ones_like(k))
    assert (out.double() - 1).abs().max() <= ulp


def test_large_logits_pick_the_maximum_exactly():
    """Logits around 3e9: the maximum is kept in raw dot units, so its weight is exactly 1 with FP fusion
    on, and every row is one-hot on its max key (as in the pointer kernel)."""
    g = torch.Generator().manual_seed(7)
    q, k = seeded_randn(g, 1, 1, 8, 64, scale=6e3), seeded_randn(g, 1, 1, 40, 64, scale=6e3)
    v = seeded_randn(g, 1, 1, 40, 64)
    out = flash_attention_fp16_tma(q, k, v)
    winner = (q.double() @ k.double().transpose(-1, -2)).argmax(-1)
    assert torch.equal(out, v[0, 0, winner[0, 0]].unsqueeze(0).unsqueeze(0))


def test_an_unsupported_head_dim_is_refused_by_name():
    q = on_device(torch.zeros(1, 1, 4, 256, dtype=torch.float16))
    with pytest.raises(ValueError, match="head dim"):
        flash_attention_fp16_tma(q, q, q)


@pytest.mark.parametrize(
    ("head_dim", "n_k", "causal", "expected"),
    [
        (128, 1024, False, True),
        (96, 4096, False, True),
        (128, 1023, False, False),
        (128, 4096, True, True),
        (128, 2048, True, False),
        (64, 16384, True, False),
        (64, 4096, False, True),
        (64, 2048, False, False),
        (32, 1 << 20, False, False),
        (256, 1 << 20, False, False),
    ],
)
def test_dispatch_takes_tma_only_where_it_was_measured_faster(head_dim, n_k, causal, expected):
    assert prefer_tma(head_dim, n_k, causal) is expected


def test_cpu_tensors_are_never_tma_eligible():
    t = torch.zeros(1, 1, 8, 64, dtype=torch.float16)
    assert not tma_eligible(t)


@pytest.mark.gpu
@pytest.mark.parametrize("causal", [False, True])
def test_gpu_fp16_dispatches_to_tma_and_falls_back_only_on_layout(causal, monkeypatch):
    """On sm_90 an eligible call runs the TMA kernel (bitwise the forced launch); a tensor whose data
    pointer is not 16-byte aligned is refused by the forced launcher and served by the pointer kernel.
    With fp16 inputs both kernels may give the same bits, so the launches themselves are counted."""
    g = torch.Generator(device="cuda").manual_seed(5)
    q, k, v = (torch.randn(1, 4, 4096, 128, device="cuda", generator=g).half() for _ in range(3))
    if torch.cuda.get_device_capability()[0] != 9:
        assert not tma_eligible(q, k, v)
        with pytest.raises(ValueError, match="sm_90"):
            flash_attention_fp16_tma(q, k, v)
        return
    tma = flash_attention_fp16_tma(q, k, v, causal=causal)
    launches = []
    real = fp16_module.launch_fp16_tma
    monkeypatch.setattr(fp16_module, "launch_fp16_tma", lambda *a, **kw: launches.append(1) or real(*a, **kw))
    assert torch.equal(flash_attention_fp16(q, k, v, causal=causal), tma)
    assert len(launches) == 1
    flash_attention_fp16(q, k, v, causal=causal, kernel="pointer")
    assert len(launches) == 1
    flat = torch.randn(4 * 4096 * 128 + 1, device="cuda", generator=g).half()
    shifted = flat[1:].view(1, 4, 4096, 128)
    assert not tma_eligible(shifted)
    with pytest.raises(ValueError, match="16-byte aligned"):
        flash_attention_fp16_tma(shifted, k, v, causal=causal)
    ref = attention_reference(shifted, k, v, causal=causal, dtype=torch.float32)
    assert rel_l2(flash_attention_fp16(shifted, k, v, causal=causal), ref) <= 1e-3
    assert len(launches) == 1


def test_explicit_kernel_requests_never_fall_back():
    g = torch.Generator().manual_seed(2)
    q = seeded_randn(g, 1, 2, 20, 64)
    for empty in (q, q[:, :, :0]):  # an empty problem is no excuse for a bad argument
        with pytest.raises(ValueError, match="'auto', 'pointer' or 'tma'"):
            flash_attention_fp16(empty, q, q, kernel="cuda")
    for causal in (False, True):
        forced = flash_attention_fp16(q, q, q, causal=causal, kernel="tma")
        assert torch.equal(forced, flash_attention_fp16_tma(q, q, q, causal=causal))
    assert rel_l2(flash_attention_fp16(q, q, q, kernel="pointer"), attention_reference(q, q, q)) <= 1e-3
