"""``sage_qk_int8`` and ``sage_fp8`` on Hopper: the same methods with TMA descriptors and warp specialization.

Same numerics as the pointer kernel of :mod:`kernels.flash_sage_fp8` (INT8 Q·K^T with per-token Q and
per-block K scales; P·V in q's dtype with fp32 accumulation, or in e4m3 against V^T with per-channel V
scales and two-level accumulation), so the same float64 emulations judge both.
What changes is how it runs:

* Q is quantized by a launch of its own (:func:`quantize_q`), with the rounding the pointer kernel's
  prologue uses; Triton 3.6's Hopper warp specialization crashes on work on the Q tile in registers
  before the loop (docs/perf.md "v7"), so the attention kernel reads INT8 Q and its row factors
  ``c = q_scale · sm_scale · log2(e)`` by TMA. That launch also flags noisy KV heads
  (:data:`kernels.quant.Q_NOISE_MAX`), which the second launch computes with the caller's Q.
* K (INT8, smoothed, padded to whole key blocks by :func:`kernels.flash_sage_fp8.quantize_kv`) and V
  (the caller's, one 2-D descriptor per head: rows past Nk read as zeros) arrive by TMA; the output is
  stored by TMA, which clips at Nq and D. Each key block's scale is one scalar load.
* Non-causal: ``tl.range(..., warp_specialize=True)``: one producer warp group and two consumer groups
  of 64 query rows; the first launch is persistent (one program per SM walks the query blocks), except
  ``sage_fp8``'s from :data:`FP8_PERSISTENT_MAX_KEYS` keys. Causal: not warp-specialized (the pass
  miscompiles row-dependent masks, "v7"): full key blocks, then the masked diagonal band.
* Exponent: per block, ``mr = max_j raw_ij`` (an exact int32) and ``x = (raw - mr) · c + shift``, as in
  the pointer kernel, so the key holding the maximum gets exactly ``exp2(shift)`` whatever the
  compiler contracts; FP fusion stays on. The warp-specialized (non-causal) loop forms it as one FMA,
  ``raw · c + (shift - mr · c)``: in the heads that launch computes for good the logits are bounded
  (:data:`kernels.quant.UNFLAGGED_LOGIT_MAX`), and flagged heads are redone with the exact form.

Device-side descriptors need a scratch allocation per launch
(:func:`kernels.flash_fp16_tma._ensure_allocator`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from kernels._validate import interpreting, upcast_dots
from kernels.flash_fp16_tma import _ensure_allocator
from kernels.fp8_round import round_e4m3_fp32
from kernels.launch import (
    LOG2E,
    WIDE_CHUNK,
    grid_for,
    item_block,
    program_block,
    strided_grid,
    wide_item,
    wide_items,
)
from kernels.quant import flag_noisy_rows, load_q_as_given, load_round_per_token_int8, sage_exponent

# Masked raw dot values: below any real INT8 dot (|raw| <= 127 * 127 * 256 < 2^22).
_RAW_MASKED = tl.constexpr(-(2**30))
# Masked float dots of the second launch (Q in its input dtype): below any real one (< 2^38), finite, so
# a fully masked row's raw - max is 0, not inf - inf, and times a row factor still finite.
_DOT_MASKED = tl.constexpr(-(2.0**64))


@dataclass(frozen=True)
class SageTmaTiles:
    block_m: int
    num_warps: int
    num_stages: int
    # Keys per loop step; None: the K-scale block (a step must not straddle two K scales; sage_fp8's
    # must be the block).
    block_n: int | None = None


# Per causal: (BLOCK_M, num_warps, num_stages); BLOCK_N is the K-scale block of the method's config
# (kernels.flash_sage_fp8.config_for), so both kernels read the same quantized K. Non-causal:
# num_warps is a consumer group's, the compiled kernel has 12 warps. Timed on an H200 at head dim 128
# (docs/perf.md "v13").
SAGE_TMA_TILES: dict[bool, SageTmaTiles] = {
    False: SageTmaTiles(128, 4, 2),
    True: SageTmaTiles(128, 8, 3),
}
# Non-causal first launches walk the query blocks on one program per SM. On an H200 (head dim 128):
# 1.14-1.16x at B 16 / 1k keys, 1.04-1.05x at B 4 / 4k, 1.08-1.09x at B 8 / 2k, 1.02x at B 2 / 8k, and
# sage_qk_int8 the same at 16k; but sage_fp8 at 16k keys ran 2 % slower than with a program per block
# (704 against 719-733), so from there it keeps one (docs/perf.md "v16").
FP8_PERSISTENT_MAX_KEYS = 16384
# Padded head dims the TMA kernel runs: where it was measured faster than the pointer kernel.
SAGE_TMA_BLOCK_D: tuple[int, ...] = (128,)


# The second launch's tiles (flagged heads): the first launch's rows per program (its query-block items),
# not warp-specialized. It holds the caller's fp16/bf16 Q tile, twice the INT8 one: compiled for sm_90a,
# sage_qk_int8 spills 8-16 bytes on 2 or 3 stages (255 registers), none on 1 (211-235). On an H200 a
# call with every head flagged (16k keys) took 12.3 ms on 3 stages against 20.5 on 1, so 3 it is.
SAGE_TMA_WIDE_TILES = SageTmaTiles(128, 8, 3)


def tiles_for(causal: bool, interpret: bool, *, wide_pass: bool = False) -> SageTmaTiles:
    """The TMA kernel's tiles (``wide_pass``: the second launch's); small ones (32 rows, one stage) in the
    CPU interpreter."""
    if interpret:
        return SageTmaTiles(32, 4, 1)
    return SAGE_TMA_WIDE_TILES if wide_pass else SAGE_TMA_TILES[causal]


@triton.jit
def _quantize_q_kernel(
    Q, Q8, QC, KN, WH, stride_qb, stride_qh, stride_qn, Hq, GROUP, Nq, NQ_PAD, D, qk_scale, NUM_M_BLOCKS,
    FLAG: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    # One program per (b, h, block of rows). Per-token INT8 with the rounding of
    # kernels.quant.quantize_per_token (and of the pointer kernel's prologue); padded rows and columns
    # are written as zeros, so the attention kernel reads whole tiles.
    pid = tl.program_id(0)
    bh = (pid // NUM_M_BLOCKS).to(tl.int64)
    b = bh // Hq
    h = bh % Hq
    offs_m = (pid % NUM_M_BLOCKS) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    q8, q_scale = load_round_per_token_int8(
        Q + b * stride_qb + h * stride_qh, stride_qn, offs_m, Nq, offs_d, D
    )
    c = q_scale * qk_scale
    tl.store(Q8 + (bh * NQ_PAD + offs_m[:, None]) * BLOCK_D + offs_d[None, :], q8)
    tl.store(QC + bh * NQ_PAD + offs_m, c)
    if FLAG:
        # A row whose rounding would blur its logits flags its KV head (the pointer kernel's test).
        flag_noisy_rows(WH, KN, b * (Hq // GROUP) + h // GROUP, c)


@triton.jit
def _sage_tma_block(
    acc, l_i, m_i, q_op, c_row, dk, dv, KS, KSH, start_n, offs_m, offs_n, Nq, Nk,
    MASK: tl.constexpr, WIDE: tl.constexpr, UPCAST: tl.constexpr, P_DTYPE: tl.constexpr,
    PV_FP8: tl.constexpr, FP8: tl.constexpr, BLOCK_N: tl.constexpr, K_BLOCK: tl.constexpr,
    FMA_EXP: tl.constexpr,
):  # fmt: skip
    # One key block of the online softmax. MASK: 0 none, 1 the ragged end, 2 bottom-right causal.
    # WIDE: the second launch (a flagged head): q_op is Q in its input dtype, and each key's codes carry
    # its 2^shift (0 outside wide blocks), exact in fp16 and bf16, as in the pointer kernel.
    # FMA_EXP (the warp-specialized loop): the first launch forms the exponent as one FMA, raw * c +
    # (shift - bmax), off by at most 2^-9 at the maximum (kernels.quant.UNFLAGGED_LOGIT_MAX): non-causal
    # 16k keys 3 % (sage_qk_int8) and 8 % (sage_fp8) faster on an H200; the causal loops ran 1-4 % slower
    # with it and keep the exact form (docs/perf.md "v16").
    k = dk.load([start_n, 0])
    ks = tl.load(KS + start_n // K_BLOCK)
    if WIDE:
        masked = _DOT_MASKED
        pow2 = ((tl.load(KSH + start_n + offs_n) + 127) << 23).to(tl.float32, bitcast=True)
        raw = tl.dot(q_op, (k.to(tl.float32) * pow2[:, None]).to(q_op.dtype).T)
    else:
        masked = _RAW_MASKED
        raw = tl.dot(q_op, k.T, out_dtype=tl.int32)
    if MASK == 1:
        raw = tl.where((start_n + offs_n)[None, :] < Nk, raw, masked)
    if MASK == 2:
        cols = start_n + offs_n
        valid = (cols[None, :] < Nk) & (cols[None, :] <= offs_m[:, None] + (Nk - Nq))
        raw = tl.where(valid, raw, masked)
    c = c_row * tl.abs(ks)  # a wide block's scale is negated (its flag)
    mr = tl.max(raw, axis=1)
    bmax = mr.to(tl.float32) * c
    if MASK != 0:
        bmax = tl.where(mr > masked, bmax, float("-inf"))
    m_new = tl.maximum(m_i, bmax)
    # A row that has seen only masked keys keeps m = -inf; subtract 0 instead so exp2 gives 0, not NaN.
    m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = tl.math.exp2(m_i - m_use)
    # The block holding the running maximum gets shift 8 by selection (see the pointer kernel): P is
    # p · 256, as the emulation has it; the epilogue's division by l cancels the factor.
    shift = tl.where(bmax >= m_use, 0.0, bmax - m_use) + 8.0
    x = sage_exponent(raw, mr, bmax, c, shift, FMA_EXP and not WIDE)
    if MASK != 0:
        x = tl.where(raw > masked, x, float("-inf"))
    p = tl.math.exp2(x)
    if PV_FP8:
        # sage_fp8: P (p · 256) rounded to e4m3 against V^T's e4m3 tile (keys contiguous: transposed it
        # is the K-major operand Hopper's FP8 MMA needs); the denominator sums P unrounded. Each block's
        # MMA sum is added to the fp32 accumulator (two-level; the FP8 MMA accumulator keeps ~22 bits).
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = dv.load([0, start_n]).T
        if FP8:
            p_op = p.to(tl.float8e4nv)
        else:
            p_op = round_e4m3_fp32(p)
            v = v.to(tl.float32)
        acc = acc * alpha[:, None] + tl.dot(p_op, v)
    else:
        p_op = p.to(P_DTYPE)
        if p_op.dtype == tl.bfloat16:
            # bf16: the denominator sums the P that multiplies V, so its 8-bit rounding cancels.
            l_i = l_i * alpha + tl.sum(p_op.to(tl.float32), axis=1)
        else:
            l_i = l_i * alpha + tl.sum(p, axis=1)
        v = dv.load([start_n, 0])
        if UPCAST:
            p_op = p_op.to(tl.float32)
            v = v.to(tl.float32)
        acc = tl.dot(p_op, v, acc * alpha[:, None])
    return acc, l_i, m_new


@triton.jit(do_not_specialize=["Hq", "GROUP", "Nq", "Nk", "NUM_M_BLOCKS", "NUM_ITEMS"])
def _sage_tma_kernel(
    Q, Q8, QC, K8, KS, KSH, WH, V, VS, O,
    stride_qb, stride_qh, stride_qn, stride_vb, stride_vh, stride_vn,
    Hq, GROUP, Nq, NQ_PAD, Nk, NK_PAD, D, qk_scale, NUM_M_BLOCKS, NUM_ITEMS,
    MASK: tl.constexpr, CAUSAL: tl.constexpr, UPCAST: tl.constexpr, PV_FP8: tl.constexpr,
    FP8: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    K_BLOCK: tl.constexpr, WIDE_PASS: tl.constexpr,
):  # fmt: skip
    # WIDE_PASS: the second launch, which redoes the query blocks of flagged KV heads (a wide K block,
    # kernels.flash_sage_fp8.K_WIDE_MIN, or a noisy Q row, kernels.quant.Q_NOISE_MAX) with the caller's Q
    # and loops that apply each key's shift; the others' blocks cost a load of their head's flag. Triton
    # 3.6 warp-specializes a loop only if it is the kernel's one loop and has no branch, and the branch
    # cost the causal loop 55 registers, so the first launch ignores the shifts (in a flagged head its
    # output is overwritten); its warp-specialized loop skips a flagged head's key blocks (an empty
    # range: still specialized), the causal one does not (29 registers).
    Hkv = Hq // GROUP
    if WIDE_PASS:
        # A strided grid over the NUM_ITEMS query blocks (kernels.launch.wide_items).
        for chunk in range(0, NUM_ITEMS, tl.num_programs(0) * WIDE_CHUNK):
            if wide_items(WH, chunk, NUM_ITEMS, NUM_M_BLOCKS, Hq, GROUP, WIDE_CHUNK):
                for j in range(0, WIDE_CHUNK):
                    run, bh, b, h, start_m, bh_kv = wide_item(
                        WH, chunk, j, NUM_ITEMS, NUM_M_BLOCKS, Hq, GROUP, BLOCK_M
                    )
                    if run:
                        _sage_tma_program(
                            Q, Q8, QC, K8, KS, KSH, WH, V, VS, O, stride_qb, stride_qh, stride_qn,
                            stride_vb, stride_vh, stride_vn, Hq, GROUP, Nq, NQ_PAD, Nk, NK_PAD, D, qk_scale,
                            bh, b, h, start_m, bh_kv,
                            MASK, CAUSAL, UPCAST, PV_FP8, FP8, BLOCK_M, BLOCK_N, BLOCK_D, K_BLOCK, WIDE_PASS,
                        )  # fmt: skip
    elif CAUSAL:
        bh, b, h, start_m = program_block(NUM_M_BLOCKS, Hq, BLOCK_M)
        _sage_tma_program(
            Q, Q8, QC, K8, KS, KSH, WH, V, VS, O, stride_qb, stride_qh, stride_qn, stride_vb, stride_vh,
            stride_vn, Hq, GROUP, Nq, NQ_PAD, Nk, NK_PAD, D, qk_scale, bh, b, h, start_m,
            b * Hkv + h // GROUP,
            MASK, CAUSAL, UPCAST, PV_FP8, FP8, BLOCK_M, BLOCK_N, BLOCK_D, K_BLOCK, WIDE_PASS,
        )  # fmt: skip
    else:
        # Persistent, as the fp16 TMA kernel (kernels.flash_fp16_tma): one program per SM walks the
        # NUM_ITEMS query blocks, the warp-specialized key loop nested in the walk (docs/perf.md "v16").
        for item in tl.range(tl.program_id(0), NUM_ITEMS, tl.num_programs(0)):
            bh, b, h, start_m = item_block(item, NUM_M_BLOCKS, Hq, BLOCK_M)
            _sage_tma_program(
                Q, Q8, QC, K8, KS, KSH, WH, V, VS, O, stride_qb, stride_qh, stride_qn, stride_vb,
                stride_vh, stride_vn, Hq, GROUP, Nq, NQ_PAD, Nk, NK_PAD, D, qk_scale, bh, b, h, start_m,
                b * Hkv + h // GROUP,
                MASK, CAUSAL, UPCAST, PV_FP8, FP8, BLOCK_M, BLOCK_N, BLOCK_D, K_BLOCK, WIDE_PASS,
            )  # fmt: skip


@triton.jit
def _sage_tma_program(
    Q, Q8, QC, K8, KS, KSH, WH, V, VS, O,
    stride_qb, stride_qh, stride_qn, stride_vb, stride_vh, stride_vn,
    Hq, GROUP, Nq, NQ_PAD, Nk, NK_PAD, D, qk_scale, bh, b, h, start_m, bh_kv,
    MASK: tl.constexpr, CAUSAL: tl.constexpr, UPCAST: tl.constexpr, PV_FP8: tl.constexpr,
    FP8: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    K_BLOCK: tl.constexpr, WIDE_PASS: tl.constexpr,
):  # fmt: skip
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)

    dk = tl.make_tensor_descriptor(
        K8 + bh_kv * NK_PAD * BLOCK_D,
        shape=[NK_PAD, BLOCK_D],
        strides=[BLOCK_D, 1],
        block_shape=[BLOCK_N, BLOCK_D],
    )
    if PV_FP8:
        # V^T quantized by kernels.flash_sage_fp8.quantize_kv: (BLOCK_D, NK_PAD) per head, zero padded.
        dv = tl.make_tensor_descriptor(
            V + bh_kv * BLOCK_D * NK_PAD,
            shape=[BLOCK_D, NK_PAD],
            strides=[NK_PAD, 1],
            block_shape=[BLOCK_D, BLOCK_N],
        )
    else:
        dv = tl.make_tensor_descriptor(
            V + b * stride_vb + (h // GROUP) * stride_vh,
            shape=[Nk, D],
            strides=[stride_vn, 1],
            block_shape=[BLOCK_N, BLOCK_D],
        )
    do = tl.make_tensor_descriptor(
        O + bh * Nq * D, shape=[Nq, D], strides=[D, 1], block_shape=[BLOCK_M, BLOCK_D]
    )
    ks = KS + bh_kv * (NK_PAD // K_BLOCK)
    ksh = KSH + bh_kv * NK_PAD
    if WIDE_PASS:
        # A flagged head: the caller's Q (not warp-specialized, so a pointer load), the row factor
        # sm_scale * log2(e) alone.
        q_op, c_row = load_q_as_given(
            Q + b * stride_qb + h * stride_qh,
            stride_qn,
            offs_m,
            Nq,
            tl.arange(0, BLOCK_D),
            D,
            qk_scale,
            UPCAST,
        )
    else:
        dq = tl.make_tensor_descriptor(
            Q8 + bh * NQ_PAD * BLOCK_D,
            shape=[NQ_PAD, BLOCK_D],
            strides=[BLOCK_D, 1],
            block_shape=[BLOCK_M, BLOCK_D],
        )
        dc = tl.make_tensor_descriptor(QC + bh * NQ_PAD, shape=[NQ_PAD], strides=[1], block_shape=[BLOCK_M])
        q_op = dq.load([start_m, 0])
        c_row = dc.load([start_m])

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    p_dtype = O.dtype.element_ty
    if CAUSAL:
        # Bottom-right causal, not warp-specialized: blocks every row sees in full, unmasked, then the
        # diagonal band; blocks past `hi` are never visited.
        hi = tl.minimum(Nk, start_m + BLOCK_M + Nk - Nq)
        full = (tl.maximum(tl.minimum(Nk, start_m + Nk - Nq + 1), 0) // BLOCK_N) * BLOCK_N
        for start_n in tl.range(0, full, BLOCK_N):
            acc, l_i, m_i = _sage_tma_block(
                acc, l_i, m_i, q_op, c_row, dk, dv, ks, ksh, start_n, offs_m, offs_n, Nq, Nk, 0, WIDE_PASS,
                UPCAST, p_dtype, PV_FP8, FP8, BLOCK_N, K_BLOCK, False,
            )  # fmt: skip
        for start_n in tl.range(full, hi, BLOCK_N):
            acc, l_i, m_i = _sage_tma_block(
                acc, l_i, m_i, q_op, c_row, dk, dv, ks, ksh, start_n, offs_m, offs_n, Nq, Nk, 2, WIDE_PASS,
                UPCAST, p_dtype, PV_FP8, FP8, BLOCK_N, K_BLOCK, False,
            )  # fmt: skip
    elif WIDE_PASS:
        for start_n in tl.range(0, Nk, BLOCK_N):
            acc, l_i, m_i = _sage_tma_block(
                acc, l_i, m_i, q_op, c_row, dk, dv, ks, ksh, start_n, offs_m, offs_n, Nq, Nk, MASK, 1,
                UPCAST, p_dtype, PV_FP8, FP8, BLOCK_N, K_BLOCK, False,
            )  # fmt: skip
    else:
        # One loop, no branch in it (see WIDE_PASS); a wide head's loop is empty here, the second launch
        # computes it. MASK masks the ragged end on every block.
        n_end = tl.where(tl.load(WH + bh_kv) != 0, 0, Nk)
        for start_n in tl.range(0, n_end, BLOCK_N, warp_specialize=True):
            acc, l_i, m_i = _sage_tma_block(
                acc, l_i, m_i, q_op, c_row, dk, dv, ks, ksh, start_n, offs_m, offs_n, Nq, Nk, MASK, 0,
                UPCAST, p_dtype, PV_FP8, FP8, BLOCK_N, K_BLOCK, True,
            )  # fmt: skip

    inv_l = 1.0 / tl.where(l_i > 0, l_i, 1.0)
    if PV_FP8:
        # V's per-channel scales (amax / 448) multiply each column; P's factor 256 cancels in 1 / l.
        dvs = tl.make_tensor_descriptor(
            VS + bh_kv * BLOCK_D, shape=[BLOCK_D], strides=[1], block_shape=[BLOCK_D]
        )
        out = acc * (dvs.load([0])[None, :] * inv_l[:, None])
    else:
        out = acc * inv_l[:, None]
    do.store([start_m, 0], out.to(O.dtype.element_ty))


def quantize_q(
    q: torch.Tensor,
    block_m: int,
    block_d: int,
    qk_scale: float,
    *,
    k_norm: torch.Tensor | None = None,
    wide_heads: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token INT8 Q for the TMA kernel: ``(q8, c)``.

    ``q8``: int8 (B·Hq, Nq_pad, block_d), zero padded to whole ``block_m`` row blocks and ``block_d``
    columns; ``c``: float32 (B·Hq, Nq_pad), ``amax / 127 · qk_scale`` per row (``qk_scale`` is
    sm_scale · log2(e)). ``q`` is only read. With ``k_norm`` and ``wide_heads`` (a
    :class:`kernels.flash_sage_fp8.QuantizedKV`'s, B x Hkv) it also sets ``wide_heads`` to 1 for each
    noisy KV head (:data:`kernels.quant.Q_NOISE_MAX`).
    """
    B, H, Nq, D = q.shape
    nq_pad = triton.cdiv(Nq, block_m) * block_m
    # Rows per program of this launch: 64 of the attention tile's 128 took 70 us against 89 (B 16, H 32,
    # 1k queries, head dim 128, H200; the same bits): a 128-row tile held 255 registers on 4 warps.
    rows = min(block_m, 64)
    num_rows = nq_pad // rows
    q8 = torch.empty((B * H, nq_pad, block_d), dtype=torch.int8, device=q.device)
    c = torch.empty((B * H, nq_pad), dtype=torch.float32, device=q.device)
    flag = k_norm is not None and wide_heads is not None
    group = H // wide_heads.size(1) if flag else 1
    _quantize_q_kernel[(B * H * num_rows,)](
        q, q8, c, k_norm if flag else c, wide_heads if flag else c,
        q.stride(0), q.stride(1), q.stride(2), H, group, Nq, nq_pad, D, qk_scale, num_rows,
        FLAG=flag, BLOCK_M=rows, BLOCK_D=block_d,
    )  # fmt: skip
    return q8, c


def launch_sage_tma(
    q, v, k8: torch.Tensor, k_scale: torch.Tensor, k_shift: torch.Tensor, wide_heads: torch.Tensor,
    k_norm: torch.Tensor, v_scale: torch.Tensor | None, o, shape, *, block_n: int, block_d: int,
    causal: bool,
) -> None:  # fmt: skip
    """Quantize Q (:func:`quantize_q`, flagging noisy heads in ``wide_heads``) and launch the TMA kernel
    (:func:`launch_sage_tma_kernel`) on K (and V) already quantized by
    :func:`kernels.flash_sage_fp8.quantize_kv` with ``block_n`` keys per K scale."""
    tiles = tiles_for(causal, interpreting())
    q8, c = quantize_q(
        q, tiles.block_m, block_d, shape.sm_scale * LOG2E, k_norm=k_norm, wide_heads=wide_heads
    )
    launch_sage_tma_kernel(
        q, q8, c, v, k8, k_scale, k_shift, wide_heads, v_scale, o, shape,
        block_n=block_n, block_d=block_d, causal=causal, upcast=upcast_dots(q),
    )  # fmt: skip


def launch_sage_tma_kernel(
    q, q8, c, v, k8: torch.Tensor, k_scale: torch.Tensor, k_shift: torch.Tensor, wide_heads: torch.Tensor,
    v_scale: torch.Tensor | None, o, shape, *, block_n: int, block_d: int, causal: bool,
    upcast: bool = False,
) -> None:  # fmt: skip
    """The attention launch alone, on Q from :func:`quantize_q` (with :func:`tiles_for`'s ``block_m``)
    and K (and V) from :func:`kernels.flash_sage_fp8.quantize_kv`: ``q`` the caller's (B, Hq, Nq, D)
    Q (read by the second launch), ``k8`` (B, Hkv, Nk_pad, block_d) int8, ``k_scale`` (B, Hkv, Nk_pad /
    block_n) fp32 (negated for a wide block), ``k_shift`` (B, Hkv, Nk_pad) int32 (each key's left shift
    in a wide block), ``wide_heads`` (B, Hkv) int32 (1 for a head holding a wide block or, after
    :func:`quantize_q` with the flags, a noisy one). A second launch of the kernel (``WIDE_PASS``) redoes
    the flagged heads with ``q`` in its own dtype; with none it costs a launch of two programs per SM
    that read the head flags.

    ``v_scale`` None: ``sage_qk_int8``, ``v`` is the caller's (B, Hkv, Nk, D) V in q's dtype and must
    pass :func:`kernels.flash_fp16_tma.tma_eligible` on a GPU. Else ``sage_fp8``: ``v`` is quantize_kv's
    V^T (B, Hkv, block_d, Nk_pad), e4m3 (fp16 holding e4m3 values in the interpreter), and ``v_scale``
    (B, Hkv, block_d) fp32. ``o`` is a contiguous (B, Hq, Nq, D) output. ``upcast``: dots in fp32 (the
    interpreter's bf16, :func:`kernels._validate.upcast_dots`)."""
    _ensure_allocator()
    tiles = tiles_for(causal, interpreting())
    grid, num_m = grid_for(shape, tiles.block_m)
    pv_fp8 = v_scale is not None
    step = tiles.block_n or block_n
    if block_n % step or (pv_fp8 and step != block_n):
        # sage_fp8 rounds P to e4m3 against the running maximum of each step, as its emulation does per
        # K-scale block; a shorter step moves that maximum and the roundings (1e-2 in the interpreter).
        want = (
            f"the K-scale block {block_n} (sage_fp8)"
            if pv_fp8
            else f"a divisor of the K-scale block {block_n}"
        )
        raise ValueError(f"tiles.block_n: expected {want}, got {step}")
    args = (
        q, q8, c, k8, k_scale, k_shift, wide_heads, v, v_scale if pv_fp8 else k_scale, o,
        q.stride(0), q.stride(1), q.stride(2), v.stride(0), v.stride(1), v.stride(2),
        shape.heads_q, shape.group, shape.n_q, q8.size(1), shape.n_k, k8.size(2), shape.head_dim,
        shape.sm_scale * LOG2E, num_m, grid[0],
    )  # fmt: skip
    meta = dict(
        MASK=shape.n_k % step != 0,
        CAUSAL=causal,
        UPCAST=upcast,
        PV_FP8=pv_fp8,
        FP8=pv_fp8 and not interpreting(),
        BLOCK_M=tiles.block_m,
        BLOCK_N=step,
        BLOCK_D=block_d,
        K_BLOCK=block_n,
    )
    # Non-causal first launches are persistent, one program per SM walking the query blocks, except
    # sage_fp8's from FP8_PERSISTENT_MAX_KEYS keys (a program per block: each program's loop runs once).
    persistent = not causal and not (pv_fp8 and shape.n_k >= FP8_PERSISTENT_MAX_KEYS)
    first = strided_grid(grid[0], o.device, per_sm=1) if persistent else grid
    _sage_tma_kernel[first](
        *args, **meta, WIDE_PASS=False, num_warps=tiles.num_warps, num_stages=tiles.num_stages
    )
    # Flagged heads (a wide K block or a noisy Q row), redone with the caller's Q, applying each key's
    # shift, by loops that are not warp-specialized (same rows per program).
    wide = tiles_for(causal, interpreting(), wide_pass=True)
    _sage_tma_kernel[strided_grid(grid[0], o.device)](
        *args, **meta, WIDE_PASS=True, num_warps=wide.num_warps, num_stages=wide.num_stages
    )
