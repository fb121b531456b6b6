"""``sage_fp8``: INT8 Q·K^T with per-block K scales and FP8 (e4m3) P·V, built for Hopper tensor cores.

Numerics (SageAttention-2 style, written for Triton):

* K smoothing: the per-(b, h) mean of K over the tokens is subtracted before quantizing (softmax cannot
  see ``q·mean``, a constant along each row). The caller's K is only read.
* K is quantized to INT8 with **one scale per block** of ``BLOCK_N`` keys (the kernel's key tile), so
  a logit costs one multiply: ``s = raw · c_i`` with ``c_i = q_scale[i] · k_scale[block] · sm_scale ·
  log2(e)`` (softmax runs on ``exp2``).
* A **wide** block (one key at least 2^``K_WIDE_MIN`` below the block's largest by absmax: heavy-tailed
  keys) would leave such keys a few codes; there each key's codes carry 2^e (e <= 7), and the dot
  against them is scaled back by 2^-e. The block's scale is stored negated as the flag. The kernels
  ignore the shifts in their first launch (no branch in its loop); a second launch redoes only the
  flagged heads. Gaussian keys have none.
* Q is quantized per token to INT8 **inside the attention kernel's prologue** (no launch, no HBM copy).
  Where that rounding would blur a KV head's logits (a **noisy** head, :data:`kernels.quant.Q_NOISE_MAX`:
  heavy-tailed or huge queries), the first launch's prologue flags the head too. The second
  launch computes every flagged head with Q in its input dtype (fp16/bf16 dots) against the INT8 K
  codes times each key's 2^(7 - e), exact in that dtype, and the block scale.
* The running row maximum is kept from the raw integer dot: per block ``mr = max_j raw_ij`` (exact, an
  int32), the exponent is ``(raw - mr) · c + (mr · c - m)``. The first factor is an exact integer, so
  the key that holds the maximum gets exactly ``exp2(0)`` however the compiler contracts the
  multiply-add (the FMA-contraction bug of huge logits cannot occur, and no launch needs
  ``enable_fp_fusion=False``). ``sage_fp8``'s first launch forms it as one FMA instead, ``raw · c +
  (shift - mr · c)``, safe there because a head it computes for good has bounded logits
  (:data:`kernels.quant.UNFLAGGED_LOGIT_MAX`); the second launch keeps the exact form.
* P is computed as ``p · 256`` (the ``+ 8`` in the exponent is free), so weights down to ~2^-17 of the
  row maximum stay representable when P is rounded to e4m3 (its smallest subnormal is 2^-9).
* V is quantized to e4m3 with **one scale per channel** (``amax / 448``), stored transposed (K-major,
  ``(B, H, D, Nk)``) as Hopper's FP8 MMA needs for the second operand. P·V is an FP8 dot with fp32
  accumulation; with ``two_level`` each key block's partial sum is added to the fp32 accumulator in
  registers instead of being accumulated inside the MMA (whose accumulator keeps ~22 bits).
* The denominator sums the unrounded ``p · 256`` in fp32; the epilogue applies ``v_scale[d] / l``.

K and V are quantized by one fused launch (:func:`quantize_kv`) after two torch reductions (the K mean
and the V channel absmax). Rows that see no key (bottom-right causal with Nq > Nk) return zeros.

CPU interpreter: Triton 3.6's interpreter mis-rounds fp8 casts (a mantissa carry into the next binade
is dropped), so under ``TRITON_INTERPRET=1`` the same kernels round P and V to the e4m3 grid in fp32
arithmetic (:func:`kernels.fp8_round.round_e4m3_fp32`, round to nearest even, saturating at 448), V is
stored as fp16 (every e4m3 value is exact in fp16) and the P·V dot runs in fp32. The operands are the
same values the GPU's FP8 MMA multiplies; only the cast instruction differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from kernels._validate import HEAD_DIMS, check_attention_inputs, interpreting, upcast_dots
from kernels.flash_fp16_tma import tma_eligible
from kernels.flash_sage_tma import SAGE_TMA_BLOCK_D, launch_sage_tma
from kernels.fp8_round import round_e4m3_fp32
from kernels.launch import (
    LOG2E,
    WIDE_CHUNK,
    grid_for,
    make_output,
    program_block,
    strided_grid,
    wide_item,
    wide_items,
)
from kernels.quant import flag_noisy_rows, load_q_as_given, load_round_per_token_int8, sage_exponent

FP8_MAX = 448.0
# P is produced as p * 2^P_EXP (exact: a shift of the exp2 argument).
P_EXP = 8.0
# Sentinel for masked raw dot values of the first launch: below any real INT8 dot (|raw| <= 127 * 127 *
# 256 < 2^22).
_RAW_MASKED = tl.constexpr(-(2**30))
# The same for the second launch's float dots: below any (|q| <= 65504, codes <= 16256, D <= 256: < 2^38),
# finite, so a fully masked row's raw - max is 0, not inf - inf, and times a row factor still finite.
_DOT_MASKED = tl.constexpr(-(2.0**64))
# A "wide" key block: one whose smallest nonzero key (by absmax) is at least 2^K_WIDE_MIN below its
# largest, so one block scale would leave that key a few codes (a Pareto-tailed key flattens its block's
# other scores). In a wide block each key's codes carry 2^e, 0 <= e <= K_SHIFT_MAX, below the block's
# scale; the second launch multiplies each key's codes by 2^(K_SHIFT_MAX - e), its stored scale carries
# 2^-K_SHIFT_MAX and is negated as the flag. Codes times 2^7 at most (|c| <= 16256) are exact in fp16
# and bf16, that launch's dot dtypes. Other blocks (every Gaussian block measured) keep one scale and no
# shift: their numerics and speed are unchanged.
K_SHIFT_MAX = tl.constexpr(7)
K_SHIFT_SCALE = tl.constexpr(2.0**-K_SHIFT_MAX.value)
K_WIDE_MIN = tl.constexpr(3)


@dataclass(frozen=True)
class SageConfig:
    block_m: int
    block_n: int
    block_d: int
    num_warps: int
    num_stages: int
    two_level: bool


# GPU tiles per (FP8 P·V?, padded head dim, key-length bucket): (BLOCK_M, BLOCK_N, num_warps,
# num_stages, two_level). Chosen by the sweeps of bench/sweep_sage.py on an H100 (docs/perf.md, v3);
# the first bucket that holds the call's key count applies.
_ANY = 1 << 62
GPU_TILES: dict[tuple[bool, int, int], tuple[int, int, int, int, bool]] = {
    # FP8 P·V: two-level accumulation everywhere. Accumulating inside the FP8 MMA lost up to 43 % of a
    # uniform row's sum at 16k keys (constant tokens: the MMA accumulator stopped growing near 2^30),
    # and 6 % at 4k; with one MMA sum per key block added in fp32 the cost measured 0-5 %.
    (True, 32, _ANY): (64, 128, 4, 3, True),
    (True, 64, _ANY): (64, 128, 4, 3, True),
    # Head dim 128 on an H200 (docs/perf.md "v12"): one warp group per program (two programs per SM)
    # ran 4-5 % faster than 128 rows on 8 warps at 1k and 4k keys, non-causal (causal 4k: equal), but
    # 3 % slower at 16k causal. The key tile, hence the K scales and the output bits, is the same.
    (True, 128, 4096): (64, 128, 4, 3, True),
    (True, 128, _ANY): (128, 128, 8, 3, True),
    (True, 256, _ANY): (64, 64, 4, 2, True),
    (False, 32, _ANY): (64, 64, 4, 3, False),
    (False, 64, _ANY): (64, 64, 4, 3, False),
    (False, 128, _ANY): (128, 128, 8, 3, False),
    (False, 256, _ANY): (128, 64, 8, 2, False),
}


def config_for(head_dim: int, n_k: int, *, pv_fp8: bool = True, interpret: bool | None = None) -> SageConfig:
    """Tiles for a head dim and a number of keys (the shape bucket, not the exact length).

    The K scales are per ``block_n`` keys, so the quantizer and the attention kernel must use the same
    config; the emulations in :mod:`kernels.emulation` call this too.
    """
    interpret = interpreting() if interpret is None else interpret
    block_d = max(32, triton.next_power_of_2(head_dim))
    if interpret:
        # Same accumulation path as the GPU config (two-level for FP8 P·V), small tiles.
        return SageConfig(32, 32, block_d, 4, 1, pv_fp8)
    for (fp8, d, bound), (bm, bn, warps, stages, two) in sorted(GPU_TILES.items()):
        if fp8 == pv_fp8 and d == block_d and n_k <= bound:
            return SageConfig(bm, bn, block_d, warps, stages, two)
    raise ValueError(f"head dim: expected one of {', '.join(map(str, HEAD_DIMS))}, got {head_dim}")


@triton.jit
def _pow2_below(top, x):
    """The largest e in [0, K_SHIFT_MAX] with x * 2^e <= top, for positive fp32 ``x`` and ``top``:
    exponent difference less one where x's mantissa exceeds top's (exact, no division)."""
    tb = top.to(tl.int32, bitcast=True)
    xb = x.to(tl.int32, bitcast=True)
    e = ((tb >> 23) & 0xFF) - ((xb >> 23) & 0xFF) - ((tb & 0x7FFFFF) < (xb & 0x7FFFFF)).to(tl.int32)
    return tl.minimum(tl.maximum(e, 0), K_SHIFT_MAX)


@triton.jit
def _quantize_kv_kernel(
    K,
    V,
    KC,
    VA,
    K8,
    KS,
    KSH,
    WH,
    KN,
    VT,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_vb,
    stride_vh,
    stride_vn,
    Hkv,
    Nk,
    NK_PAD,
    D,
    NUM_N_BLOCKS,
    FP8: tl.constexpr,
    QUANT_V: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    # One program per (b, h, key block): K block -> INT8 with one scale, V block -> e4m3 transposed.
    # Padded rows (Nk..NK_PAD) and columns (D..BLOCK_D) are written as zeros so the attention kernel
    # loads whole tiles without masks.
    pid = tl.program_id(0)
    bh = (pid // NUM_N_BLOCKS).to(tl.int64)
    nb = pid % NUM_N_BLOCKS
    b = bh // Hkv
    h = bh % Hkv
    offs_n = nb * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (offs_n[:, None] < Nk) & (offs_d[None, :] < D)
    dmask = offs_d < D

    k = tl.load(
        K + b * stride_kb + h * stride_kh + offs_n[:, None].to(tl.int64) * stride_kn + offs_d[None, :],
        mask=mask,
        other=0.0,
    ).to(tl.float32)
    center = tl.load(KC + bh * D + offs_d, mask=dmask, other=0.0)
    k = tl.where(mask, k - center[None, :], 0.0)
    # The head's longest smoothed key (L2), for the noisy-head test (kernels.quant.Q_NOISE_MAX). Compiled
    # for sm_90a: with V, taken here (197 registers; taken after the stores, 255 and a spill); without V,
    # after the stores (8 bytes of spill under the 168 cap; taken here, 24).
    if QUANT_V:
        norm = tl.sqrt(tl.max(tl.sum(k * k, axis=1), axis=0))
    amax_key = tl.max(tl.abs(k), axis=1)
    amax = tl.max(amax_key, axis=0)
    amax_safe = tl.where(amax > 0, amax, 1.0)
    inv = tl.where(amax > 0, tl.math.div_rn(amax_safe * 0.0 + 127.0, amax_safe), 0.0)
    # Each key's power of two 2^e: the largest with amax_key * 2^e <= amax (e <= K_SHIFT_MAX), from the
    # fp32 bits (no division), as kernels.emulation computes it; all-zero keys (padding included) take
    # e = 0. Used only if the block is wide (K_WIDE_MIN).
    e = tl.where(amax_key > 0, _pow2_below(amax, amax_key), 0)
    wide = tl.max(e, axis=0) >= K_WIDE_MIN
    # inv * 2^e is exact, so k * (inv * 2^e) rounds as (k * inv) * 2^e: one multiply per code.
    kq = k * (inv * ((tl.where(wide, e, 0) + 127) << 23).to(tl.float32, bitcast=True))[:, None]
    kq = tl.where(kq >= 0, tl.floor(kq + 0.5), -tl.floor(-kq + 0.5))
    kq = tl.minimum(tl.maximum(kq, -127.0), 127.0)
    tl.store(K8 + (bh * NK_PAD + offs_n[:, None]) * BLOCK_D + offs_d[None, :], kq.to(tl.int8))
    tl.store(KSH + bh * NK_PAD + offs_n, tl.where(wide, K_SHIFT_MAX - e, 0))
    scale = tl.math.div_rn(amax, amax * 0.0 + 127.0)
    tl.store(KS + bh * NUM_N_BLOCKS + nb, tl.where(wide, -(scale * K_SHIFT_SCALE), scale))
    if not QUANT_V:
        norm = tl.sqrt(tl.max(tl.sum(k * k, axis=1), axis=0))
    # Head facts for later launches only (relaxed: no ordering within this one is needed).
    tl.atomic_max(WH + bh, 1, mask=wide, sem="relaxed")
    tl.atomic_max(KN + bh, norm, sem="relaxed")
    if QUANT_V:
        v = tl.load(
            V + b * stride_vb + h * stride_vh + offs_n[:, None].to(tl.int64) * stride_vn + offs_d[None, :],
            mask=mask,
            other=0.0,
        ).to(tl.float32)
        vamax = tl.load(VA + bh * D + offs_d, mask=dmask, other=0.0)
        vinv = tl.where(
            vamax > 0,
            tl.math.div_rn(tl.full(vamax.shape, 448.0, tl.float32), tl.where(vamax > 0, vamax, 1.0)),
            0.0,
        )
        vq = v * vinv[None, :]
        vt_ptrs = VT + (bh * BLOCK_D + offs_d[None, :]) * NK_PAD + offs_n[:, None]
        if FP8:
            tl.store(vt_ptrs, vq.to(tl.float8e4nv))
        else:
            tl.store(vt_ptrs, round_e4m3_fp32(vq).to(tl.float16))


@triton.jit
def _sage_fp8_inner(
    acc,
    l_i,
    m_i,
    q_op,
    c_row,
    k_base,
    ks_base,
    sh_base,
    v_base,
    k_offs,
    v_offs,
    v_step,
    offs_m,
    offs_n,
    offs_d,
    lo,
    hi,
    Nq,
    Nk,
    D,
    MASKED: tl.constexpr,
    CAUSAL: tl.constexpr,
    WIDE: tl.constexpr,
    PV_FP8: tl.constexpr,
    FP8: tl.constexpr,
    UPCAST: tl.constexpr,
    TWO_LEVEL: tl.constexpr,
    V_DTYPE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    for start_n in range(lo, hi, BLOCK_N):
        k = tl.load(k_base + k_offs)
        ks = tl.load(ks_base)
        if WIDE:
            # The second launch: q_op is Q in its input dtype, and each key's codes carry its 2^shift (0
            # outside wide blocks, K_WIDE_MIN), so every dot lands on the block's grid. Codes times 2^7 at
            # most are exact in fp16 and bf16; the products are exact in the fp32 accumulator.
            masked = _DOT_MASKED
            pow2 = ((tl.load(sh_base + offs_n) + 127) << 23).to(tl.float32, bitcast=True)
            raw = tl.dot(q_op, tl.trans((k.to(tl.float32) * pow2[:, None]).to(q_op.dtype)))
        else:
            masked = _RAW_MASKED
            raw = tl.dot(q_op, tl.trans(k), out_dtype=tl.int32)
        if MASKED:
            cols = start_n + offs_n
            valid = cols[None, :] < Nk
            if CAUSAL:
                valid = valid & (cols[None, :] <= offs_m[:, None] + (Nk - Nq))
            raw = tl.where(valid, raw, masked)
        c = c_row * tl.abs(ks)  # a wide block's scale is negated (its flag)
        mr = tl.max(raw, axis=1)
        bmax = mr.to(tl.float32) * c
        if MASKED:
            bmax = tl.where(mr > masked, bmax, float("-inf"))
        m_new = tl.maximum(m_i, bmax)
        # A row that has seen only masked keys keeps m = -inf; subtract 0 instead so exp2 gives 0, not NaN.
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.math.exp2(m_i - m_use)
        # (raw - mr) is an exact integer <= 0 (in the second launch a float, exactly 0 at the maximum),
        # so the row maximum's exponent is exactly `shift`. The block that holds the running maximum
        # gets shift = 8 by selection, not by subtracting: the compiler
        # may contract `mr * c - m` into one FMA whose unrounded product differs from the rounded `bmax`
        # by up to half an ulp of the logit (~1e3 at logits ~3e10), which would give exp2 overflow or a
        # vanished maximum. Other blocks are below the maximum by at least half an ulp either way.
        shift = tl.where(bmax >= m_use, 0.0, bmax - m_use) + 8.0
        # sage_fp8's first launch forms it as one FMA (kernels.quant.sage_exponent): 2-3 % faster on an
        # H200, while sage_qk_int8's pointer kernel ran 1-2 % slower with it (docs/perf.md "v16").
        x = sage_exponent(raw, mr, bmax, c, shift, PV_FP8 and not WIDE)
        if MASKED:
            x = tl.where(valid, x, float("-inf"))
        p = tl.math.exp2(x)
        if PV_FP8:
            l_i = l_i * alpha + tl.sum(p, axis=1)
            # V^T tile (BLOCK_D, BLOCK_N), keys contiguous: transposed in registers it is the K-major
            # second operand the FP8 MMA needs.
            v = tl.trans(tl.load(v_base + v_offs))
            if FP8:
                p_op = p.to(tl.float8e4nv)
            else:
                p_op = round_e4m3_fp32(p)
                v = v.to(tl.float32)
        else:
            # The caller's V in its own dtype; padded keys are not in memory, so the ragged end is masked.
            if MASKED:
                kv_mask = ((start_n + offs_n)[:, None] < Nk) & (offs_d[None, :] < D)
                v = tl.load(v_base + v_offs, mask=kv_mask, other=0.0)
            else:
                v = tl.load(v_base + v_offs, mask=offs_d[None, :] < D, other=0.0)
            p_op = p.to(V_DTYPE)
            if p_op.dtype == tl.bfloat16:
                # The denominator sums the P that multiplies V: its 8-bit rounding then cancels between
                # numerator and denominator (unrounded, rel-L2 rose from 1.08e-2 to 1.16e-2).
                l_i = l_i * alpha + tl.sum(p_op.to(tl.float32), axis=1)
            else:
                # fp16 P: the denominator sums P before its rounding (FlashAttention's choice), with no
                # measurable change in error; converting every score back to fp32 cost 4-6 % at head
                # dim 128 and 12-14 % at 64 on an H200 (docs/perf.md "v12").
                l_i = l_i * alpha + tl.sum(p, axis=1)
            if UPCAST:
                p_op = p_op.to(tl.float32)
                v = v.to(tl.float32)
        if TWO_LEVEL:  # noqa: SIM108 (two accumulation strategies, each with its own comment)
            # Each block's partial sum leaves the MMA accumulator and is added in full fp32.
            acc = acc * alpha[:, None] + tl.dot(p_op, v)
        else:
            # Accumulate inside the MMA (Hopper's FP8 MMA keeps ~22 bits of the fp32 accumulator).
            acc = tl.dot(p_op, v, acc * alpha[:, None])
        m_i = m_new
        k_base += BLOCK_N * BLOCK_D
        ks_base += 1
        sh_base += BLOCK_N
        v_base += v_step
    return acc, l_i, m_i, k_base, ks_base, sh_base, v_base


@triton.jit(do_not_specialize=["Hq", "Hkv", "GROUP", "Nq", "Nk", "NUM_M_BLOCKS", "NUM_ITEMS"])
def _sage_fp8_kernel(
    Q,
    K8,
    KS,
    KSH,
    WH,
    KN,
    VT,
    VS,
    O,
    stride_qb,
    stride_qh,
    stride_qn,
    stride_vb,
    stride_vh,
    stride_vn,
    Hq,
    Hkv,
    GROUP,
    Nq,
    Nk,
    NK_PAD,
    D,
    qk_scale,
    NUM_M_BLOCKS,
    NUM_ITEMS,
    CAUSAL: tl.constexpr,
    PV_FP8: tl.constexpr,
    FP8: tl.constexpr,
    UPCAST: tl.constexpr,
    TWO_LEVEL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    WIDE_PASS: tl.constexpr,
):
    # WIDE_PASS: the second launch, which redoes the query blocks of flagged KV heads (a wide K block,
    # K_WIDE_MIN, or a noisy Q row, quant.Q_NOISE_MAX) with Q in its input dtype and each key's shift
    # applied; the others' blocks cost a load of their head's flag. Applying the shifts in the first
    # launch's loop costs registers it has none to spare for (it spills at head dim 128), so that launch
    # ignores them (in a flagged head its output is overwritten).
    if WIDE_PASS:
        # A strided grid over the NUM_ITEMS query blocks (kernels.launch.wide_items).
        for chunk in range(0, NUM_ITEMS, tl.num_programs(0) * WIDE_CHUNK):
            if wide_items(WH, chunk, NUM_ITEMS, NUM_M_BLOCKS, Hq, GROUP, WIDE_CHUNK):
                for j in range(0, WIDE_CHUNK):
                    run, bh, b, h, start_m, bh_kv = wide_item(
                        WH, chunk, j, NUM_ITEMS, NUM_M_BLOCKS, Hq, GROUP, BLOCK_M
                    )
                    if run:
                        _sage_fp8_program(
                            Q, K8, KS, KSH, WH, KN, VT, VS, O, stride_qb, stride_qh, stride_qn, stride_vb,
                            stride_vh, stride_vn, Hq, Hkv, GROUP, Nq, Nk, NK_PAD, D, qk_scale, bh, b, h,
                            start_m, bh_kv,
                            CAUSAL, PV_FP8, FP8, UPCAST, TWO_LEVEL, BLOCK_M, BLOCK_N, BLOCK_D, WIDE_PASS,
                        )  # fmt: skip
    else:
        bh, b, h, start_m = program_block(NUM_M_BLOCKS, Hq, BLOCK_M)
        _sage_fp8_program(
            Q, K8, KS, KSH, WH, KN, VT, VS, O, stride_qb, stride_qh, stride_qn, stride_vb, stride_vh,
            stride_vn, Hq, Hkv, GROUP, Nq, Nk, NK_PAD, D, qk_scale, bh, b, h, start_m, b * Hkv + h // GROUP,
            CAUSAL, PV_FP8, FP8, UPCAST, TWO_LEVEL, BLOCK_M, BLOCK_N, BLOCK_D, WIDE_PASS,
        )  # fmt: skip


@triton.jit
def _sage_fp8_program(
    Q,
    K8,
    KS,
    KSH,
    WH,
    KN,
    VT,
    VS,
    O,
    stride_qb,
    stride_qh,
    stride_qn,
    stride_vb,
    stride_vh,
    stride_vn,
    Hq,
    Hkv,
    GROUP,
    Nq,
    Nk,
    NK_PAD,
    D,
    qk_scale,
    bh,
    b,
    h,
    start_m,
    bh_kv,
    CAUSAL: tl.constexpr,
    PV_FP8: tl.constexpr,
    FP8: tl.constexpr,
    UPCAST: tl.constexpr,
    TWO_LEVEL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    WIDE_PASS: tl.constexpr,
):
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)

    q_rows = Q + b * stride_qb + h * stride_qh
    if WIDE_PASS:
        # A wide or noisy head: Q in its input dtype, the row factor sm_scale * log2(e) alone.
        q_op, c_row = load_q_as_given(q_rows, stride_qn, offs_m, Nq, offs_d, D, qk_scale, UPCAST)
    else:
        # Prologue: per-token INT8 Q (the rounding of kernels.quant.quantize_per_token), scale folded
        # with sm_scale * log2(e). A row whose rounding would blur its logits (quant.Q_NOISE_MAX) flags its
        # KV head for the second launch, which overwrites this launch's output there. The test takes
        # sage_fp8's 64-row tile from 16 to 40 bytes of spill (sm_90a) wherever it sits, after the loop
        # too: 3-4 % at 1k-4k keys on an H200 (docs/perf.md "v15").
        q_op, q_scale = load_round_per_token_int8(q_rows, stride_qn, offs_m, Nq, offs_d, D)
        c_row = q_scale * qk_scale
        flag_noisy_rows(WH, KN, bh_kv, c_row)

    k_base = K8 + bh_kv * NK_PAD * BLOCK_D
    ks_base = KS + bh_kv * (NK_PAD // BLOCK_N)
    sh_base = KSH + bh_kv * NK_PAD
    k_offs = offs_n[:, None] * BLOCK_D + offs_d[None, :]
    if PV_FP8:
        v_base = VT + bh_kv * BLOCK_D * NK_PAD
        v_offs = offs_d[:, None] * NK_PAD + offs_n[None, :]
        v_step = BLOCK_N
    else:
        v_base = VT + b * stride_vb + (h // GROUP) * stride_vh
        v_offs = offs_n[:, None] * stride_vn + offs_d[None, :]
        v_step = BLOCK_N * stride_vn

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    # Bottom-right causal: query i sees key j iff j <= i + Nk - Nq. Blocks every row sees in full run
    # unmasked; the diagonal band and the ragged end are masked; blocks past `hi` are skipped.
    if CAUSAL:
        hi = tl.minimum(Nk, start_m + BLOCK_M + Nk - Nq)
        full = tl.maximum(tl.minimum(Nk, start_m + Nk - Nq + 1), 0)
    else:
        hi = Nk
        full = Nk
    full = (full // BLOCK_N) * BLOCK_N
    acc, l_i, m_i, k_base, ks_base, sh_base, v_base = _sage_fp8_inner(
        acc, l_i, m_i, q_op, c_row, k_base, ks_base, sh_base, v_base, k_offs, v_offs, v_step, offs_m, offs_n,
        offs_d,
        0, full, Nq, Nk, D, False, CAUSAL, WIDE_PASS, PV_FP8, FP8, UPCAST, TWO_LEVEL, O.dtype.element_ty,
        BLOCK_N, BLOCK_D,
    )  # fmt: skip
    acc, l_i, m_i, k_base, ks_base, sh_base, v_base = _sage_fp8_inner(
        acc, l_i, m_i, q_op, c_row, k_base, ks_base, sh_base, v_base, k_offs, v_offs, v_step, offs_m, offs_n,
        offs_d,
        full, hi, Nq, Nk, D, True, CAUSAL, WIDE_PASS, PV_FP8, FP8, UPCAST, TWO_LEVEL, O.dtype.element_ty,
        BLOCK_N, BLOCK_D,
    )  # fmt: skip

    # P was scaled by 2^8 in both acc and l; V's per-channel scale multiplies each column.
    inv_l = 1.0 / tl.where(l_i > 0, l_i, 1.0)
    if PV_FP8:
        vs = tl.load(VS + bh_kv * BLOCK_D + offs_d)
        out = acc * (vs[None, :] * inv_l[:, None])
    else:
        out = acc * inv_l[:, None]
    o_ptrs = O + bh * Nq * D + offs_m[:, None].to(tl.int64) * D + offs_d[None, :]
    tl.store(o_ptrs, out.to(O.dtype.element_ty), mask=(offs_m[:, None] < Nq) & (offs_d[None, :] < D))


@dataclass(frozen=True)
class QuantizedKV:
    """K and V as the ``sage_*`` kernels read them (see :func:`quantize_kv`)."""

    k8: torch.Tensor  # int8 (B, Hkv, Nk_pad, BLOCK_D), K - mean, zero padded
    # float32 (B, Hkv, Nk_pad / BLOCK_N), one scale per key block; a wide block's (K_WIDE_MIN) is negated
    # and carries 2^-K_SHIFT_MAX.
    k_scale: torch.Tensor
    k_shift: torch.Tensor  # int32 (B, Hkv, Nk_pad), per key K_SHIFT_MAX - e in a wide block, else 0
    # int32 (B, Hkv): 1 where the head holds a wide block, else 0; the attention kernels' Q side also
    # sets 1 for a noisy head (kernels.quant.Q_NOISE_MAX), so a QuantizedKV serves one attention call.
    wide_heads: torch.Tensor
    k_norm: torch.Tensor  # float32 (B, Hkv), the L2 norm of the head's longest smoothed key
    v_t: torch.Tensor | None  # e4m3 (fp16 in the interpreter) (B, Hkv, BLOCK_D, Nk_pad), V / v_scale
    v_scale: torch.Tensor | None  # float32 (B, Hkv, BLOCK_D), amax / 448 per channel (0 in padding)


def _quantize_kv_options(cfg: SageConfig, quant_v: bool) -> dict:
    """K alone in 128 x 128 tiles: 168 registers (no spill) keep three programs per SM; the per-key powers
    of two took ptxas to 179, two per SM, and the launch 25 % longer on an H200. Smaller tiles need
    fewer, and a cap there made the launch 25 % slower (docs/perf.md "v14")."""
    if quant_v or interpreting() or cfg.block_n * cfg.block_d < 128 * 128:
        return {}
    return {"maxnreg": 168}


def quantize_kv(k: torch.Tensor, v: torch.Tensor, cfg: SageConfig, *, quant_v: bool = True) -> QuantizedKV:
    """Smooth and quantize K (INT8, one scale per ``cfg.block_n`` keys) and V (e4m3, per channel).

    ``k``, ``v``: (B, Hkv, Nk, D) fp16/bf16 with a contiguous last dimension, Nk >= 1. One torch
    reduction per operand (K's mean over tokens, V's absmax per channel) and one Triton launch for both;
    ``k`` and ``v`` are only read. With ``quant_v=False`` V is left alone (``v_t``, ``v_scale`` None).
    """
    B, H, Nk, D = k.shape
    fp8 = not interpreting()
    num_n = triton.cdiv(Nk, cfg.block_n)
    nk_pad = num_n * cfg.block_n
    if nk_pad * cfg.block_d >= 2**31:
        # In-tile offsets into one head's quantized K and V^T are int32.
        raise ValueError(
            f"k: expected at most {(2**31 - 1) // cfg.block_d} keys per head at head dim {D}, got {Nk}"
        )
    center = torch.mean(k, dim=2, dtype=torch.float32).contiguous()
    k8 = torch.empty((B, H, nk_pad, cfg.block_d), dtype=torch.int8, device=k.device)
    ks = torch.empty((B, H, num_n), dtype=torch.float32, device=k.device)
    ksh = torch.empty((B, H, nk_pad), dtype=torch.int32, device=k.device)
    # The per-head flags and key norms from one zeros launch (all-zero bits are 0.0 in fp32).
    heads = torch.zeros((2, B, H), dtype=torch.int32, device=k.device)
    wide_heads, k_norm = heads[0], heads[1].view(torch.float32)
    if quant_v:
        vamax = torch.linalg.vector_norm(v, ord=float("inf"), dim=2, dtype=torch.float32).contiguous()
        v_dtype = torch.float8_e4m3fn if fp8 else torch.float16
        v_t = torch.empty((B, H, cfg.block_d, nk_pad), dtype=v_dtype, device=k.device)
    else:
        vamax, v_t = center, k8
    _quantize_kv_kernel[(num_n * B * H,)](
        k, v, center, vamax, k8, ks, ksh, wide_heads, k_norm, v_t,
        k.stride(0), k.stride(1), k.stride(2), v.stride(0), v.stride(1), v.stride(2),
        H, Nk, nk_pad, D, num_n,
        FP8=fp8, QUANT_V=quant_v, BLOCK_N=cfg.block_n, BLOCK_D=cfg.block_d,
        **_quantize_kv_options(cfg, quant_v),
    )  # fmt: skip
    if not quant_v:
        return QuantizedKV(k8, ks, ksh, wide_heads, k_norm, None, None)
    v_scale = torch.zeros((B, H, cfg.block_d), dtype=torch.float32, device=k.device)
    v_scale[..., :D] = vamax / FP8_MAX
    return QuantizedKV(k8, ks, ksh, wide_heads, k_norm, v_t, v_scale)


def launch_attention(
    q, v, qkv: QuantizedKV, o, shape, *, causal: bool, cfg: SageConfig, pv_fp8: bool
) -> None:
    """The attention launch alone, on K/V already quantized by :func:`quantize_kv` with ``cfg``."""
    grid, num_m = grid_for(shape, cfg.block_m)
    v_op = qkv.v_t if pv_fp8 else v
    # The second launch redoes the heads with a wide K block or a noisy Q row (see _sage_fp8_kernel).
    for wide_pass in (False, True):
        _sage_fp8_kernel[strided_grid(grid[0], o.device) if wide_pass else grid](
            q, qkv.k8, qkv.k_scale, qkv.k_shift, qkv.wide_heads, qkv.k_norm, v_op,
            qkv.v_scale if pv_fp8 else qkv.k_scale, o,
            q.stride(0), q.stride(1), q.stride(2), v.stride(0), v.stride(1), v.stride(2),
            shape.heads_q, shape.heads_kv, shape.group, shape.n_q, shape.n_k, qkv.k8.size(2), shape.head_dim,
            shape.sm_scale * LOG2E, num_m, grid[0],
            CAUSAL=causal,
            PV_FP8=pv_fp8,
            FP8=not interpreting(),
            UPCAST=upcast_dots(q),
            TWO_LEVEL=cfg.two_level,
            BLOCK_M=cfg.block_m,
            BLOCK_N=cfg.block_n,
            BLOCK_D=cfg.block_d,
            WIDE_PASS=wide_pass,
            num_warps=cfg.num_warps,
            num_stages=cfg.num_stages,
        )  # fmt: skip


def _attention(
    q,
    k,
    v,
    *,
    causal,
    sm_scale,
    pv_fp8: bool,
    method: str,
    config: SageConfig | None,
    kernel: str = "pointer",
):
    shape = check_attention_inputs(
        q, k, v, causal=causal, sm_scale=sm_scale, head_dims=HEAD_DIMS, method=method
    )
    o, done = make_output(q, shape)
    if done:
        return o
    cfg = config or config_for(shape.head_dim, shape.n_k, pv_fp8=pv_fp8)
    # The TMA kernel reads V (sage_qk_int8: the caller's; sage_fp8: quantize_kv's V^T) and writes O by
    # TMA; Q goes through its own quantizer's pointer loads, so its strides are free.
    tma_operands = (o,) if pv_fp8 else (v, o)
    if kernel == "auto":
        use_tma = config is None and prefer_tma_sage(pv_fp8, cfg.block_d, causal, shape, *tma_operands)
        kernel = "tma" if use_tma else "pointer"
    if kernel == "tma" and not interpreting() and not tma_eligible(*tma_operands):
        want = (
            "an sm_90 GPU" if pv_fp8 else "an sm_90 GPU and a V with 16-byte aligned data pointer and strides"
        )
        raise ValueError(f"kernel='tma': expected {want}, got {v.device} with V strides {v.stride()}")
    if kernel == "tma" and cfg.block_d not in SAGE_TMA_BLOCK_D:
        raise ValueError(
            f"head dim: kernel='tma' runs head dims padding to {SAGE_TMA_BLOCK_D} (96, 128), "
            f"got {shape.head_dim}"
        )
    qkv = quantize_kv(k, v, cfg, quant_v=pv_fp8)
    if kernel == "tma":
        launch_sage_tma(
            q, qkv.v_t if pv_fp8 else v, qkv.k8, qkv.k_scale, qkv.k_shift, qkv.wide_heads, qkv.k_norm,
            qkv.v_scale, o, shape, block_n=cfg.block_n, block_d=cfg.block_d, causal=causal,
        )  # fmt: skip
    else:
        launch_attention(q, v, qkv, o, shape, causal=causal, cfg=cfg, pv_fp8=pv_fp8)
    return o


def prefer_tma_sage(pv_fp8: bool, block_d: int, causal: bool, shape, *tensors: torch.Tensor) -> bool:
    """Whether ``sage_qk_int8`` (``pv_fp8`` False) or ``sage_fp8`` takes the TMA kernel (``kernel="auto"``)
    for ``shape`` (an :class:`~kernels._validate.AttentionShape`): on an sm_90 GPU with operands TMA
    accepts, head dims padding to 128, where an H200 measured it faster (perf.md v13).

    ``sage_qk_int8`` (docs/bench/bench_sage_tma_v13_h200.md): non-causal from 4k keys (1.15x at 4k,
    1.19x at 16k, 1.15x with 128 queries on 16k keys; head dim 96 1.27x) or from 2^28 query-key pairs
    over the batch and heads (1.04x at B 16, H 32, 1k keys). Smaller calls keep the pointer kernel: Q's
    own launch cost B 2, H 8, 1k keys 8 % (`lowbit check`). Causal from 16k queries (1.05x; 8k 1.00x,
    4k 0.95x, 1k 0.84x: the causal kernel is not warp-specialized).

    ``sage_fp8`` (docs/bench/bench_sage_tma_fp8_v13_h200.md): non-causal from 16k queries and 16k keys
    (1.04x, head dim 96 1.05x); its pointer kernel stays ahead elsewhere (4k 0.95x, 1k 0.86x, 128
    queries on 16k keys 0.98x, causal 0.83-0.89x).
    """
    if interpreting() or block_d not in SAGE_TMA_BLOCK_D:
        return False
    if pv_fp8:
        wanted = not causal and shape.n_q >= 16384 and shape.n_k >= 16384
    elif causal:
        wanted = shape.n_q >= 16384
    else:
        wanted = shape.n_k >= 4096 or shape.batch * shape.heads_q * shape.n_q * shape.n_k >= 1 << 28
    return wanted and tma_eligible(*tensors)


def _check_kernel(kernel) -> None:
    if kernel not in ("auto", "pointer", "tma"):
        raise ValueError(f"kernel: expected 'auto', 'pointer' or 'tma', got {kernel!r}")


def flash_attention_sage_fp8(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    sm_scale: float | None = None,
    config: SageConfig | None = None,
    kernel: str = "auto",
) -> torch.Tensor:
    """INT8 Q·K^T (per-token Q, per-block K after smoothing) and FP8 e4m3 P·V (per-channel V scales).

    ``q`` (B, Hq, Nq, D), ``k``/``v`` (B, Hkv, Nk, D), Hq % Hkv == 0, fp16 or bf16, D in
    :data:`HEAD_DIMS`, last dimension contiguous (other strides free). Scales: Q per token, computed
    in the kernel; K one fp32 scale per ``BLOCK_N`` keys of K minus its per-head mean; V one fp32 scale
    per (b, h, d), ``amax / 448``; P is ``p · 256`` rounded to e4m3. Quantization is part of the call
    (two torch reductions and one Triton launch before the attention kernel). ``config`` overrides the
    tile choice (for sweeps). Returns a contiguous (B, Hq, Nq, D) tensor in q's dtype. ``kernel``: as
    for :func:`flash_attention_sage_qk_int8` (the TMA kernel reads quantize_kv's V^T).
    """
    _check_kernel(kernel)
    return _attention(
        q, k, v, causal=causal, sm_scale=sm_scale, pv_fp8=True, method="sage_fp8", config=config,
        kernel=kernel,
    )  # fmt: skip


def flash_attention_sage_qk_int8(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    sm_scale: float | None = None,
    config: SageConfig | None = None,
    kernel: str = "auto",
) -> torch.Tensor:
    """The Q·K^T half of :func:`flash_attention_sage_fp8` with P·V in q's dtype (fp32 accumulation).

    Same shapes, dtypes, head dims and K/Q scales as :func:`flash_attention_sage_fp8`; V is read in
    place, unquantized, and P is rounded to q's dtype for the dot; the denominator sums P unrounded for
    fp16 and rounded for bf16 (whose 8-bit rounding then cancels).

    ``kernel``: ``"pointer"`` runs the portable kernel (Q quantized in its prologue); ``"tma"`` the
    Hopper kernel of :mod:`kernels.flash_sage_tma` (Q quantized by a launch of its own, TMA loads, warp
    specialized when not causal; same numerics), a ValueError where it cannot run (not sm_90, operands
    TMA refuses, head dims other than 96/128); the CPU interpreter runs both. ``"auto"`` takes the TMA
    kernel where :func:`prefer_tma_sage` says so and no ``config`` is given.
    """
    _check_kernel(kernel)
    return _attention(
        q, k, v, causal=causal, sm_scale=sm_scale, pv_fp8=False, method="sage_qk_int8", config=config,
        kernel=kernel,
    )  # fmt: skip
