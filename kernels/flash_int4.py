"""INT4 FlashAttention forward passes with fused dequantization: ``int4`` and ``int4_seed``.

* ``int4``: Q and K at 4 bits, asymmetric (min/max) per group of 32 channels along D (16 where half of
  D needs it: D = 32, 96), packed two per byte by halves (:mod:`kernels.quant_lowbit`); K is smoothed
  (its per-head mean over the tokens removed in a copy: softmax cannot see it). Asymmetric groups
  measured 15-25% lower output error than symmetric ones at the same bits (bench/kv_layouts.py).
* ``int4_seed``: the second seed paper's scheme as a reference point, done with unpacking and the
  zero point applied: Q at 8 bits symmetric (one scale per token and half of D), K at 4 bits
  asymmetric in groups of 32 along D, no K smoothing.

In the inner loop each K tile is loaded as packed codes (a quarter of the bytes of fp16, half of INT8)
with its bf16 scales and offsets, unpacked with a mask and a shift, dequantized in registers
(``code · scale + offset`` in fp32, rounded to q's dtype) and fed to fp16/bf16 tensor-core dots split
over the two halves of D; Q is dequantized the same way once per program. No separate dequantization
pass touches memory. The dot itself is fp16, not INT8: Hopper has no INT4 MMA, and per-group scales would
need one INT8 dot per 32-channel group plus a rescale of the whole score tile on the CUDA cores per
group, which costs more than the INT8 tensor cores save. So INT4 here saves memory traffic and
storage, not multiply throughput; prefill is compute-bound and gains nothing from it (docs/perf.md).
The online softmax is fp32; P is rounded to q's dtype for the P·V dot with the unquantized V (fp32
accumulation), and the denominator sums the rounded P.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from kernels._validate import HEAD_DIMS, AttentionShape, check_attention_inputs, upcast_dots
from kernels.backend import interpreting
from kernels.group_quant import quantize_groups_fused
from kernels.kv_cache import _dequant_halves, default_kv_group
from kernels.launch import program_block
from kernels.quant_lowbit import GroupQuantized, dequantize_groups, quantize_groups
from kernels.reference import attention_reference

LOG2E = math.log2(math.e)

# (BLOCK_M, BLOCK_N, num_warps, num_stages) on the GPU per padded head dim.
GPU_TILES: dict[int, tuple[int, int, int, int]] = {
    32: (128, 64, 4, 3),
    64: (128, 64, 4, 3),
    128: (128, 64, 8, 3),
    256: (64, 32, 8, 2),
}


@triton.jit(do_not_specialize=["Hq", "Hkv", "GROUP", "Nq", "Nk", "NUM_M_BLOCKS"])
def _flash_int4_kernel(
    QC,
    QM,
    KC,
    KM,
    V,
    O,
    stride_vb,
    stride_vh,
    stride_vn,
    Hq,
    Hkv,
    GROUP,
    Nq,
    Nk,
    qk_scale,
    NUM_M_BLOCKS,
    CAUSAL: tl.constexpr,
    Q_BITS: tl.constexpr,
    Q_GSIZE: tl.constexpr,
    K_GSIZE: tl.constexpr,
    HALF: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    bh, b, h, start_m = program_block(NUM_M_BLOCKS, Hq, BLOCK_M)
    bh_kv = b * Hkv + h // GROUP
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_h = tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    D = 2 * HALF
    DOT_DTYPE: tl.constexpr = tl.float32 if UPCAST else O.dtype.element_ty

    QCW: tl.constexpr = HALF if Q_BITS == 4 else 2 * HALF
    QNG: tl.constexpr = 2 * HALF // Q_GSIZE
    q_lo, q_hi = _dequant_halves(
        QC + bh * Nq * QCW, QM + bh * Nq * QNG * 2, offs_m, offs_h, offs_m < Nq,
        Q_BITS, HALF, Q_GSIZE, QNG, DOT_DTYPE, BLOCK_M, BLOCK_H, tl.float32, UPCAST,
    )  # fmt: skip
    KNG: tl.constexpr = 2 * HALF // K_GSIZE
    kc = KC + bh_kv * Nk * HALF
    km = KM + bh_kv * Nk * KNG * 2
    v_base = V + b * stride_vb + (h // GROUP) * stride_vh

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    # Bottom-right causal: query i sees key j iff j <= i + Nk - Nq.
    hi = tl.minimum(Nk, start_m + BLOCK_M + Nk - Nq) if CAUSAL else Nk
    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        n_ok = cols < Nk
        k_lo, k_hi = _dequant_halves(
            kc, km, cols, offs_h, n_ok, 4, HALF, K_GSIZE, KNG, DOT_DTYPE, BLOCK_N, BLOCK_H, tl.float32, UPCAST
        )
        s = (tl.dot(q_lo, tl.trans(k_lo)) + tl.dot(q_hi, tl.trans(k_hi))) * qk_scale
        valid = n_ok[None, :]
        if CAUSAL:
            valid = valid & (cols[None, :] <= offs_m[:, None] + (Nk - Nq))
        s = tl.where(valid, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        # A row that has seen only masked keys keeps m = -inf: subtract 0 so exp2 gives 0, not NaN.
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.math.exp2(m_i - m_use)
        p = tl.math.exp2(tl.minimum(s - m_use[:, None], 0.0)).to(O.dtype.element_ty)
        v = tl.load(
            v_base + cols[:, None].to(tl.int64) * stride_vn + offs_d[None, :],
            mask=n_ok[:, None] & (offs_d[None, :] < D),
            other=0.0,
        )
        if UPCAST:
            p = p.to(tl.float32)
            v = v.to(tl.float32)
        l_i = l_i * alpha + tl.sum(p.to(tl.float32), axis=1)
        acc = tl.dot(p, v, acc * alpha[:, None])
        m_i = m_new

    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    o_ptrs = O + bh * Nq * D + offs_m[:, None].to(tl.int64) * D + offs_d[None, :]
    tl.store(o_ptrs, out.to(O.dtype.element_ty), mask=(offs_m[:, None] < Nq) & (offs_d[None, :] < D))


def _q8_group(head_dim: int) -> int:
    """Largest power of two dividing half of D: one Q scale per half row (two per half at D = 96)."""
    half = head_dim // 2
    return half & -half


def quantize_qk(
    q: torch.Tensor, k: torch.Tensor, *, q_bits: int, smooth_k: bool, fused: bool = False
) -> tuple[GroupQuantized, GroupQuantized]:
    """Q and K as the INT4 kernels store them (see the module doc); inputs are only read. ``fused``:
    with :func:`kernels.group_quant.quantize_groups_fused` (one kernel per operand, the same bits) instead
    of the torch reference, which the emulations keep."""
    D = q.size(-1)
    quantize = quantize_groups_fused if fused else quantize_groups
    q_group = default_kv_group(D, 4) if q_bits == 4 else _q8_group(D)
    qq = quantize(q, bits=q_bits, group=q_group, symmetric=q_bits == 8)
    center = k.float().mean(dim=2, keepdim=True) if smooth_k and k.size(2) > 0 else None
    qk = quantize(k, bits=4, group=default_kv_group(D, 4), center=center)
    return qq, qk


def _launch(q, k, v, shape: AttentionShape, *, causal: bool, q_bits: int, smooth_k: bool) -> torch.Tensor:
    s = shape
    out = q.new_empty((s.batch, s.heads_q, s.n_q, s.head_dim))
    if out.numel() == 0:
        return out
    if s.n_k == 0:
        return out.zero_()
    qq, qk = quantize_qk(q, k, q_bits=q_bits, smooth_k=smooth_k, fused=True)
    block_d = triton.next_power_of_2(s.head_dim)
    if interpreting():
        # Fewer, larger tiles: the interpreter's cost is per numpy operation more than per element.
        bm, bn, warps, stages = 64, 64, 4, 1
    else:
        bm, bn, warps, stages = GPU_TILES[block_d]
    num_m = triton.cdiv(s.n_q, bm)
    _flash_int4_kernel[(num_m * s.batch * s.heads_q,)](
        qq.codes, qq.meta, qk.codes, qk.meta, v, out,
        v.stride(0), v.stride(1), v.stride(2),
        s.heads_q, s.heads_kv, s.group, s.n_q, s.n_k, s.sm_scale * LOG2E, num_m,
        CAUSAL=causal, Q_BITS=q_bits, Q_GSIZE=qq.group, K_GSIZE=qk.group, HALF=s.head_dim // 2,
        UPCAST=upcast_dots(q), BLOCK_M=bm, BLOCK_N=bn,
        BLOCK_H=triton.next_power_of_2(s.head_dim // 2), BLOCK_D=block_d,
        num_warps=warps, num_stages=stages,
        # exp2(s - m) must give exactly 1 at the row maximum (see flash_int8.py).
        enable_fp_fusion=False,
    )  # fmt: skip
    return out


def flash_attention_int4(q, k, v, *, causal: bool = False, sm_scale: float | None = None) -> torch.Tensor:
    """INT4 Q and K (asymmetric groups of 32 along D, packed two per byte, K smoothed), fp16/bf16 P·V.

    ``q`` (B, Hq, Nq, D), ``k``/``v`` (B, Hkv, Nk, D), Hq % Hkv == 0, fp16 or bf16, D in 32, 64, 96,
    128, 256, last dimension contiguous. Codes uint8 (B, H, N, D/2), channel j in the low nibble and
    channel j + D/2 in the high nibble of byte j; bf16 scale and offset per (token, group). Returns a
    contiguous (B, Hq, Nq, D) tensor in q's dtype. Semantics as :func:`kernels.attention`.
    """
    shape = check_attention_inputs(
        q, k, v, causal=causal, sm_scale=sm_scale, head_dims=HEAD_DIMS, method="int4"
    )
    return _launch(q, k, v, shape, causal=causal, q_bits=4, smooth_k=True)


def flash_attention_int4_seed(
    q, k, v, *, causal: bool = False, sm_scale: float | None = None
) -> torch.Tensor:
    """The seed paper's scheme: Q 8-bit symmetric (per token and half of D), K 4-bit asymmetric in
    groups of 32 along D (packed, zero point applied), no smoothing; fp16/bf16 P·V. Shapes as
    :func:`flash_attention_int4`."""
    shape = check_attention_inputs(
        q, k, v, causal=causal, sm_scale=sm_scale, head_dims=HEAD_DIMS, method="int4_seed"
    )
    return _launch(q, k, v, shape, causal=causal, q_bits=8, smooth_k=False)


def _dequantized(q, k, *, q_bits: int, smooth_k: bool, dtype: torch.dtype):
    qq, qk = quantize_qk(q, k, q_bits=q_bits, smooth_k=smooth_k)
    # The kernel computes code * scale + offset in fp32 and rounds it to q's dtype for its dots.
    return (dequantize_groups(qq, torch.float32).to(q.dtype).to(dtype),
            dequantize_groups(qk, torch.float32).to(q.dtype).to(dtype))  # fmt: skip


def dequantize_int4(q, k, v, *, causal=False, sm_scale=None):
    """float32 Q, K (smoothed), V as the ``int4`` kernel sees them."""
    dq, dk = _dequantized(q, k, q_bits=4, smooth_k=True, dtype=torch.float32)
    return dq, dk, v.float()


def dequantize_int4_seed(q, k, v, *, causal=False, sm_scale=None):
    """float32 Q, K, V as the ``int4_seed`` kernel sees them."""
    dq, dk = _dequantized(q, k, q_bits=8, smooth_k=False, dtype=torch.float32)
    return dq, dk, v.float()


def emulate_int4(q, k, v, *, causal=False, sm_scale=None):
    """float64 emulation of ``int4``: its quantizers and rounding, then exact attention."""
    dq, dk = _dequantized(q, k, q_bits=4, smooth_k=True, dtype=torch.float64)
    return attention_reference(dq, dk, v, causal=causal, sm_scale=sm_scale)


def emulate_int4_seed(q, k, v, *, causal=False, sm_scale=None):
    """float64 emulation of ``int4_seed``."""
    dq, dk = _dequantized(q, k, q_bits=8, smooth_k=False, dtype=torch.float64)
    return attention_reference(dq, dk, v, causal=causal, sm_scale=sm_scale)
