""":func:`kernels.quant_lowbit.quantize_groups` as one Triton kernel, bit for bit.

The INT4 attention methods (``int4``, ``int4_seed``, ``mixed``) quantize Q and K on every call. In torch
that is some fifty small kernels per operand (statistics, directed bf16 rounding, codes, packing),
which a short prefill spends more time launching than attending. Here one program takes a tile of
tokens of one (batch, head), each half of D in turn: the group statistics, the bf16 scale (rounded
up) and offset (rounded down), the codes against the rounded metadata, and the nibbles packed by
halves, in one pass. Every step is the torch reference's, in the same order and precision: fp32
differences, correctly rounded divisions (``div_rn``), codes rounded half to even. The launch turns
FP contraction off, so no multiply and add are fused into one rounding the reference does not make.
The torch function stays the reference (the emulations use it); tests hold the two bit-identical.
``kernels.kv_cache.quantize_kv`` takes this kernel too (a cache is quantized once, but a long one took
milliseconds of torch).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels._validate import check_quantizer_operand
from kernels.backend import interpreting
from kernels.quant_lowbit import META_DTYPE, GroupQuantized, check_group

# Adding then subtracting 1.5 * 2^23 rounds an fp32 of magnitude below 2^22 to an integer, half to even
# (torch.round's rule), in two exact-width additions.
_ROUND_MAGIC = tl.constexpr(12582912.0)


@triton.jit
def _bf16_directed(x, UP: tl.constexpr):
    """fp32 ``x`` rounded to a bf16 value (kept in fp32) towards +inf (``UP``) or -inf: drop the low 16
    bits (towards zero), then one bf16 ulp away from zero where bits were dropped and zero was the
    wrong direction (``kernels.quant_lowbit._round_meta``)."""
    bits = x.to(tl.int32, bitcast=True)
    kept = bits & -65536
    wrong_way = (x > 0) if UP else (x < 0)
    away = (bits != kept) & wrong_way
    return (kept + tl.where(away, 65536, 0)).to(tl.float32, bitcast=True)


@triton.jit
def _quantize_half(
    x, valid, BITS: tl.constexpr, SYMMETRIC: tl.constexpr, BLOCK_T: tl.constexpr, GPH_P: tl.constexpr,
    G: tl.constexpr,
):  # fmt: skip
    """One half tile (BLOCK_T, GPH_P * G) of fp32 values: codes (same shape, fp32 integers), and each
    group's scale and offset (BLOCK_T, GPH_P). ``valid`` masks the padding channels out of the
    statistics."""
    TOP: tl.constexpr = (1 << BITS) - 1
    xg = tl.reshape(x, (BLOCK_T, GPH_P, G))
    ok = tl.reshape(valid, (BLOCK_T, GPH_P, G))
    if SYMMETRIC:
        HALF_RANGE: tl.constexpr = 1 << (BITS - 1)
        amax = tl.max(tl.where(ok, tl.abs(xg), 0.0), axis=2)
        denom = tl.full(amax.shape, HALF_RANGE - 1, tl.float32)
        scale = _bf16_directed(tl.math.div_rn(amax, denom), True)
        offset = -HALF_RANGE * scale
    else:
        lo = tl.min(tl.where(ok, xg, float("inf")), axis=2)
        hi = tl.max(tl.where(ok, xg, float("-inf")), axis=2)
        # Padding groups (never stored) get finite statistics.
        lo = tl.where(lo == float("inf"), 0.0, lo)
        hi = tl.where(hi == float("-inf"), 0.0, hi)
        offset = _bf16_directed(lo, False)
        scale = _bf16_directed(tl.math.div_rn(hi - offset, tl.full(hi.shape, TOP, tl.float32)), True)
    # Any NaN in a group makes its metadata NaN, as torch's aminmax does, so it never dequantizes to a
    # finite value.
    nan = tl.max(tl.where(ok & (xg != xg), 1, 0), axis=2) > 0
    scale = tl.where(nan, float("nan"), scale)
    offset = tl.where(nan, float("nan"), offset)
    one = tl.full(scale.shape, 1.0, tl.float32)
    inv = tl.where(scale > 0, tl.math.div_rn(one, tl.where(scale > 0, scale, 1.0)), 0.0)
    y = (xg - offset[:, :, None]) * inv[:, :, None]
    y = (y + _ROUND_MAGIC) - _ROUND_MAGIC
    codes = tl.minimum(tl.maximum(y, 0.0), TOP)
    return tl.reshape(codes, (BLOCK_T, GPH_P * G)), scale, offset


@triton.jit
def _quantize_groups_kernel(
    X, C, CODES, META, stride_xb, stride_xh, stride_xn, H, N, NUM_T_BLOCKS,
    HAS_CENTER: tl.constexpr, BITS: tl.constexpr, SYMMETRIC: tl.constexpr, HALF: tl.constexpr,
    G: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_H: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    bh = (pid // NUM_T_BLOCKS).to(tl.int64)
    b = bh // H
    h = bh % H
    offs_t = (pid % NUM_T_BLOCKS) * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_h = tl.arange(0, BLOCK_H)
    t_ok = offs_t < N
    h_ok = offs_h < HALF
    valid = t_ok[:, None] & h_ok[None, :]
    GPH: tl.constexpr = HALF // G
    # A group as wide as the half (V of the KV cache; D = 96 makes it 48) spans the padded half tile.
    G_TILE: tl.constexpr = BLOCK_H if G == HALF else G
    GPH_P: tl.constexpr = BLOCK_H // G_TILE
    x_ptrs = X + b * stride_xb + h * stride_xh + offs_t[:, None].to(tl.int64) * stride_xn + offs_h[None, :]
    # fp32 throughout: exact for fp16/bf16 inputs, and the interpreter keeps bf16 as raw bits.
    x_lo = tl.load(x_ptrs, mask=valid, other=0.0).to(tl.float32)
    x_hi = tl.load(x_ptrs + HALF, mask=valid, other=0.0).to(tl.float32)
    if HAS_CENTER:
        x_lo = x_lo - tl.load(C + bh * 2 * HALF + offs_h, mask=h_ok, other=0.0)[None, :]
        x_hi = x_hi - tl.load(C + bh * 2 * HALF + HALF + offs_h, mask=h_ok, other=0.0)[None, :]
    c_lo, s_lo, z_lo = _quantize_half(x_lo, valid, BITS, SYMMETRIC, BLOCK_T, GPH_P, G_TILE)
    c_hi, s_hi, z_hi = _quantize_half(x_hi, valid, BITS, SYMMETRIC, BLOCK_T, GPH_P, G_TILE)
    row = bh * N + offs_t.to(tl.int64)
    if BITS == 4:
        packed = c_lo.to(tl.uint8) | (c_hi.to(tl.uint8) << 4)
        tl.store(CODES + row[:, None] * HALF + offs_h[None, :], packed, mask=valid)
    else:
        base = CODES + row[:, None] * (2 * HALF) + offs_h[None, :]
        tl.store(base, c_lo.to(tl.uint8), mask=valid)
        tl.store(base + HALF, c_hi.to(tl.uint8), mask=valid)
    # META: (..., N, 2 * GPH, 2) bf16, each group's (scale, offset) side by side; the low half's groups
    # first. The values are bf16 already (low 16 bits zero), so the cast is exact.
    offs_g = tl.arange(0, GPH_P)
    m_ok = t_ok[:, None] & (offs_g[None, :] < GPH)
    m_ptrs = META + row[:, None] * (4 * GPH) + 2 * offs_g[None, :]
    tl.store(m_ptrs, s_lo.to(tl.bfloat16), mask=m_ok)
    tl.store(m_ptrs + 1, z_lo.to(tl.bfloat16), mask=m_ok)
    tl.store(m_ptrs + 2 * GPH, s_hi.to(tl.bfloat16), mask=m_ok)
    tl.store(m_ptrs + 2 * GPH + 1, z_hi.to(tl.bfloat16), mask=m_ok)


def quantize_groups_fused(
    x: torch.Tensor,
    *,
    bits: int,
    group: int,
    symmetric: bool = False,
    center: torch.Tensor | None = None,
) -> GroupQuantized:
    """:func:`kernels.quant_lowbit.quantize_groups` of a (B, H, N, D) fp16/bf16/fp32 tensor (last dim
    contiguous) in one kernel, bit-identical. ``group`` D/2 or a power of two dividing it (every group in
    one half of D); ``center`` None or an fp32 (B, H, 1, D) tensor subtracted first (K smoothing)."""
    check_quantizer_operand(x, "x")
    B, H, N, D = x.shape
    check_group(D, group, bits)
    if group != D // 2 and ((D // 2) % group or group & (group - 1)):
        raise ValueError(
            f"group: expected half the head dim ({D // 2}) or a power of two dividing it, got {group}"
        )
    if center is not None and (
        center.shape != (B, H, 1, D) or center.dtype != torch.float32 or center.device != x.device
    ):
        raise ValueError(
            f"center: expected a float32 tensor of shape {(B, H, 1, D)} on {x.device}, got "
            f"{center.dtype} {tuple(center.shape)} on {center.device}"
        )
    half = D // 2
    codes = torch.empty((B, H, N, half if bits == 4 else D), dtype=torch.uint8, device=x.device)
    meta = torch.empty((B, H, N, D // group, 2), dtype=META_DTYPE, device=x.device)
    if codes.numel():
        block_h = triton.next_power_of_2(half)
        block_t = 16 if interpreting() else max(1, min(64, 4096 // block_h))
        num_t = triton.cdiv(N, block_t)
        _quantize_groups_kernel[(num_t * B * H,)](
            x, center.contiguous() if center is not None else x, codes, meta,
            x.stride(0), x.stride(1), x.stride(2), H, N, num_t,
            HAS_CENTER=center is not None, BITS=bits, SYMMETRIC=symmetric, HALF=half, G=group,
            BLOCK_T=block_t, BLOCK_H=block_h,
            # The reference rounds (x - offset) * inv and the rounding additions one by one.
            enable_fp_fusion=False,
        )  # fmt: skip
    return GroupQuantized(codes, meta, bits, group, D)


__all__ = ["quantize_groups_fused"]
