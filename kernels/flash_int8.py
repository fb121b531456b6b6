"""INT8 FlashAttention forward passes: ``int8`` (fully INT8) and ``int8_qk`` (INT8 Q·K^T, fp16/bf16 P·V).

Numerics, following INT-FlashAttention:

* Q and K are quantized per token to symmetric INT8 (``kernels.quant.quantize_per_token``); Q·K^T is
  an INT8 dot with int32 accumulation, dequantized by ``q_scale[i] * k_scale[j]``, where q's scale
  also carries ``sm_scale * log2(e)`` so the softmax runs on ``exp2``.
* The online softmax (running maximum, denominator, rescaling) is fp32.
* ``int8``: P lies in [0, 1] after subtracting the running maximum. Each block row (one query, one
  tile of BLOCK_N keys) is quantized at steps of its own largest weight / 127, so the block's top key
  is 127 and small weights of a diffuse row survive (issue 14: at the old fixed 1/127 steps of the
  running maximum they rounded to zero and the error grew with Nk). V is quantized per channel (one
  scale per (b, h, d) over the tokens). P·V is an INT8 dot with int32 accumulation, converted and
  multiplied by the block row's step. The denominator sums the same integers times the same step, so
  numerator and denominator describe the same weights; the fused epilogue applies ``v_scale[d] / l``.
* ``int8_qk``: P is rounded to the input dtype and multiplied with the unquantized V (fp32
  accumulation); the denominator sums the rounded P.
* ``smooth_k=True`` subtracts the per-(b, h) mean of K over the tokens inside the quantizer (the
  caller's K is never written). Softmax cannot see a per-row constant, and q·mean is constant along
  the row, so the result is unchanged in exact arithmetic while a common offset no longer eats the
  INT8 range of K.
* A KV head whose per-token INT8 Q would blur its logits (heavy-tailed or huge queries,
  :data:`kernels.quant.Q_NOISE_MAX`) is flagged by the first launch (after its loop) and computed again by
  a second launch with Q in its input dtype against the same INT8 K codes (exact in fp16 and bf16).

Rows that see no key (bottom-right causal with Nq > Nk) return zeros.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels import quant
from kernels._validate import HEAD_DIMS, AttentionShape, check_attention_inputs, interpreting, upcast_dots
from kernels.launch import (
    LOG2E,
    WIDE_CHUNK,
    block_config,
    grid_for,
    make_output,
    program_block,
    strided_grid,
    wide_item,
    wide_items,
)
from kernels.quant import flag_noisy_rows, load_q_as_given

# 2^-100: below it a block row of P is dropped (see the int8 P quantization below).
P_FLOOR = tl.constexpr(2.0**-100)


@triton.jit
def _int8_inner(
    acc,
    l_i,
    m_i,
    q,
    qs,
    k_base,
    ks_base,
    v_base,
    k_offs,
    v_offs,
    stride_vn,
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
    PV_INT8: tl.constexpr,
    UPCAST: tl.constexpr,
    V_DTYPE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    Q_FLOAT: tl.constexpr,
):
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        if MASKED:
            k = tl.load(k_base + k_offs, mask=cols[:, None] < Nk, other=0)
            ks = tl.load(ks_base + offs_n, mask=cols < Nk, other=0.0)
            v = tl.load(v_base + v_offs, mask=(cols[:, None] < Nk) & (offs_d[None, :] < D), other=0)
        else:
            # K8 rows are zero-padded to BLOCK_D in memory: no head-dim mask needed.
            k = tl.load(k_base + k_offs)
            ks = tl.load(ks_base + offs_n)
            v = tl.load(v_base + v_offs, mask=offs_d[None, :] < D, other=0)
        if Q_FLOAT:
            # A noisy head (second launch): Q in its input dtype, K's codes exact in that dtype.
            s = tl.dot(q, tl.trans(k.to(q.dtype))) * qs[:, None] * ks[None, :]
        else:
            s = tl.dot(q, tl.trans(k), out_dtype=tl.int32).to(tl.float32) * qs[:, None] * ks[None, :]
        if MASKED:
            valid = cols[None, :] < Nk
            if CAUSAL:
                valid = valid & (cols[None, :] <= offs_m[:, None] + (Nk - Nq))
            s = tl.where(valid, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        # A row that has seen only masked keys keeps m = -inf; subtract 0 instead so exp2 gives 0, not NaN.
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.math.exp2(m_i - m_use)
        # Clamped at 0: an FMA-contracted `s - m` can be positive at huge logits (see flash_fp16.py).
        p = tl.math.exp2(tl.minimum(s - m_use[:, None], 0.0))
        if PV_INT8:
            # P per block row at steps of (the row's largest weight in this key block) / 127: a row
            # spread thinly over many keys keeps its small weights (at fixed 1/127 steps of the running
            # maximum they rounded to zero). Round half up; numerator and denominator use the same
            # integers times the same step.
            # A block row whose best weight is below 2^-100 of the running maximum adds nothing an fp32
            # sum can see, and 127 / p_top would overflow to inf (then inf/NaN codes ruin the row's
            # denominator; found by the emulation check): such a block row contributes zeros.
            p_top = tl.max(p, axis=1)
            keep = p_top > P_FLOOR
            step = tl.where(keep, p_top * (1.0 / 127.0), 0.0)
            p_q = tl.floor(p * tl.where(keep, 127.0 / tl.where(keep, p_top, 1.0), 0.0)[:, None] + 0.5)
            l_i = l_i * alpha + tl.sum(p_q, axis=1) * step
            # The INT8 dot accumulates in int32, so it cannot accumulate into the fp32 acc directly.
            pv = tl.dot(p_q.to(tl.int8), v, out_dtype=tl.int32).to(tl.float32)
            acc = acc * alpha[:, None] + pv * step[:, None]
        else:
            p_lo = p.to(V_DTYPE)
            if UPCAST:
                p_lo = p_lo.to(tl.float32)
                v = v.to(tl.float32)
            l_i = l_i * alpha + tl.sum(p_lo.to(tl.float32), axis=1)
            acc = tl.dot(p_lo, v, acc * alpha[:, None])
        m_i = m_new
        # Only the scalar 64-bit base pointers move: no index product can overflow however long the
        # sequence, and the per-element offsets stay loop-invariant int32 (few registers).
        k_base += BLOCK_N * BLOCK_D
        ks_base += BLOCK_N
        v_base += BLOCK_N * stride_vn
    return acc, l_i, m_i, k_base, ks_base, v_base


# Sizes are not specialized on value 1 / divisibility: fewer compiled variants, and it avoids a
# ptxas (CUDA 13.0) crash seen on one such variant on the H200.
@triton.jit(do_not_specialize=["Hq", "Hkv", "GROUP", "Nq", "Nk", "NUM_M_BLOCKS", "NUM_ITEMS"])
def _flash_int8_kernel(
    Q, Q8, QS, K8, KS, KN, FLAGS, V, VS, O,
    stride_qb, stride_qh, stride_qn, stride_vb, stride_vh, stride_vn, stride_vd,
    Hq, Hkv, GROUP, Nq, Nk, D, qk_scale, NUM_M_BLOCKS, NUM_ITEMS,
    CAUSAL: tl.constexpr, PV_INT8: tl.constexpr, UPCAST: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, NOISY_PASS: tl.constexpr,
):  # fmt: skip
    # NOISY_PASS: the second launch, which redoes the query blocks of the KV heads the first one flagged
    # (kernels.quant.Q_NOISE_MAX) with Q in its input dtype; the others' blocks cost a load of their
    # head's flag. A strided grid over the NUM_ITEMS query blocks (kernels.launch.wide_items).
    if NOISY_PASS:
        for chunk in range(0, NUM_ITEMS, tl.num_programs(0) * WIDE_CHUNK):
            if wide_items(FLAGS, chunk, NUM_ITEMS, NUM_M_BLOCKS, Hq, GROUP, WIDE_CHUNK):
                for j in range(0, WIDE_CHUNK):
                    run, bh, b, h, start_m, bh_kv = wide_item(
                        FLAGS, chunk, j, NUM_ITEMS, NUM_M_BLOCKS, Hq, GROUP, BLOCK_M
                    )
                    if run:
                        _flash_int8_program(
                            Q, Q8, QS, K8, KS, KN, FLAGS, V, VS, O, stride_qb, stride_qh, stride_qn,
                            stride_vb, stride_vh, stride_vn, stride_vd, Hq, Hkv, GROUP, Nq, Nk, D, qk_scale,
                            bh, b, h, start_m, bh_kv, CAUSAL, PV_INT8, UPCAST, BLOCK_M, BLOCK_N, BLOCK_D,
                            NOISY_PASS,
                        )  # fmt: skip
    else:
        bh, b, h, start_m = program_block(NUM_M_BLOCKS, Hq, BLOCK_M)
        _flash_int8_program(
            Q, Q8, QS, K8, KS, KN, FLAGS, V, VS, O, stride_qb, stride_qh, stride_qn, stride_vb, stride_vh,
            stride_vn, stride_vd, Hq, Hkv, GROUP, Nq, Nk, D, qk_scale, bh, b, h, start_m,
            b * Hkv + h // GROUP, CAUSAL, PV_INT8, UPCAST, BLOCK_M, BLOCK_N, BLOCK_D, NOISY_PASS,
        )  # fmt: skip


@triton.jit
def _flash_int8_program(
    Q, Q8, QS, K8, KS, KN, FLAGS, V, VS, O,
    stride_qb, stride_qh, stride_qn, stride_vb, stride_vh, stride_vn, stride_vd,
    Hq, Hkv, GROUP, Nq, Nk, D, qk_scale, bh, b, h, start_m, bh_kv,
    CAUSAL: tl.constexpr, PV_INT8: tl.constexpr, UPCAST: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, NOISY_PASS: tl.constexpr,
):  # fmt: skip
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)

    if NOISY_PASS:
        # The caller's Q and the row factor sm_scale * log2(e) alone.
        q, qs = load_q_as_given(
            Q + b * stride_qb + h * stride_qh, stride_qn, offs_m, Nq, offs_d, D, qk_scale, UPCAST
        )
    else:
        # Q8/K8 are contiguous int8 padded to BLOCK_D columns; QS/KS contiguous fp32 per token.
        q_ptrs = Q8 + bh * Nq * BLOCK_D + offs_m[:, None].to(tl.int64) * BLOCK_D + offs_d[None, :]
        q = tl.load(q_ptrs, mask=offs_m[:, None] < Nq, other=0)
        qs = tl.load(QS + bh * Nq + offs_m, mask=offs_m < Nq, other=0.0) * qk_scale
    k_base = K8 + bh_kv * Nk * BLOCK_D
    ks_base = KS + bh_kv * Nk
    v_base = V + b * stride_vb + (h // GROUP) * stride_vh
    k_offs = offs_n[:, None] * BLOCK_D + offs_d[None, :]
    v_offs = offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    # Bottom-right causal: query i sees key j iff j <= i + Nk - Nq (see flash_fp16 for the split).
    if CAUSAL:
        hi = tl.minimum(Nk, start_m + BLOCK_M + Nk - Nq)
        full = tl.maximum(tl.minimum(Nk, start_m + Nk - Nq + 1), 0)
    else:
        hi = Nk
        full = Nk
    full = (full // BLOCK_N) * BLOCK_N
    acc, l_i, m_i, k_base, ks_base, v_base = _int8_inner(
        acc, l_i, m_i, q, qs, k_base, ks_base, v_base, k_offs, v_offs, stride_vn, offs_m, offs_n, offs_d,
        0, full, Nq, Nk, D, False, CAUSAL, PV_INT8, UPCAST, O.dtype.element_ty, BLOCK_N, BLOCK_D,
        NOISY_PASS,
    )  # fmt: skip
    acc, l_i, m_i, k_base, ks_base, v_base = _int8_inner(
        acc, l_i, m_i, q, qs, k_base, ks_base, v_base, k_offs, v_offs, stride_vn, offs_m, offs_n, offs_d,
        full, hi, Nq, Nk, D, True, CAUSAL, PV_INT8, UPCAST, O.dtype.element_ty, BLOCK_N, BLOCK_D,
        NOISY_PASS,
    )  # fmt: skip

    # Fused dequantization of P·V: P's steps are already in acc and l, V's per-channel scale multiplies
    # each output column. Rows that see no key have l = 0: zeros.
    inv_l = 1.0 / tl.where(l_i > 0, l_i, 1.0)
    if PV_INT8:
        vs = tl.load(VS + bh_kv * D + offs_d, mask=offs_d < D, other=0.0)
        out = acc * inv_l[:, None] * vs[None, :]
    else:
        out = acc * inv_l[:, None]
    o_ptrs = O + bh * Nq * D + offs_m[:, None].to(tl.int64) * D + offs_d[None, :]
    tl.store(o_ptrs, out.to(O.dtype.element_ty), mask=(offs_m[:, None] < Nq) & (offs_d[None, :] < D))
    if not NOISY_PASS:
        # A row whose rounding would blur its logits flags its KV head for the second launch, which
        # overwrites this output there. In the epilogue, relaxed: an acq_rel atomic in the prologue held
        # back the loop's first loads (int8_qk at 1k keys 6 % slower on an H200).
        flag_noisy_rows(FLAGS, KN, bh_kv, qs)


def _quantize_qk(
    q: torch.Tensor, k: torch.Tensor, smooth_k: bool, block_d: int, k_norm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token INT8 Q and K, zero-padded to ``block_d`` columns so the kernel loads whole rows; each
    head's longest (centered) key's norm goes to ``k_norm`` (zeros, B x Hkv)."""
    center = torch.mean(k, dim=2, dtype=torch.float32) if smooth_k and k.size(2) > 0 else None
    q8, qs = quant.quantize_per_token(q)
    k8, ks = quant.quantize_per_token(k, center=center, norm_out=k_norm)
    D = q.size(-1)
    if block_d != D:
        q8 = torch.nn.functional.pad(q8, (0, block_d - D))
        k8 = torch.nn.functional.pad(k8, (0, block_d - D))
    return q8, qs, k8, ks


def _launch(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    shape: AttentionShape,
    *,
    causal: bool,
    pv_int8: bool,
    smooth_k: bool,
    method: str,
) -> torch.Tensor:
    o, done = make_output(q, shape)
    if done:
        return o
    cfg = block_config(method, shape.head_dim, interpreting())
    # The per-head key norms and noisy flags from one zeros launch (all-zero bits are 0.0 in fp32).
    heads = torch.zeros((2, shape.batch, shape.heads_kv), dtype=torch.int32, device=q.device)
    k_norm, noisy = heads[0].view(torch.float32), heads[1]
    q8, qs, k8, ks = _quantize_qk(q, k, smooth_k, cfg.block_d, k_norm)
    if pv_int8:
        v_op, vs = quant.quantize_per_channel(v)
    else:
        v_op, vs = v, qs
    grid, num_m = grid_for(shape, cfg.block_m)
    # The second launch redoes the KV heads the first flags as noisy (see _flash_int8_kernel).
    for noisy_pass in (False, True):
        _flash_int8_kernel[strided_grid(grid[0], o.device) if noisy_pass else grid](
            q, q8, qs, k8, ks, k_norm, noisy, v_op, vs, o,
            q.stride(0), q.stride(1), q.stride(2),
            v_op.stride(0), v_op.stride(1), v_op.stride(2), v_op.stride(3),
            shape.heads_q, shape.heads_kv, shape.group, shape.n_q, shape.n_k, shape.head_dim,
            shape.sm_scale * LOG2E, num_m, grid[0],
            CAUSAL=causal,
            PV_INT8=pv_int8,
            UPCAST=upcast_dots(q),
            BLOCK_M=cfg.block_m,
            BLOCK_N=cfg.block_n,
            BLOCK_D=cfg.block_d,
            NOISY_PASS=noisy_pass,
            num_warps=cfg.num_warps,
            num_stages=cfg.num_stages,
            # No FMA contraction: fused into one FMA, `s * scale - m` rounds differently from the maximum m
            # it subtracts, so the top key of a row with huge logits could get p = 2^-32 instead of 1 and
            # vanish in the P cast (rows of zeros; found by the fuzzer on an H200). Costs one extra
            # multiply per score element.
            enable_fp_fusion=False,
        )  # fmt: skip
    return o


def flash_attention_int8(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    sm_scale: float | None = None,
) -> torch.Tensor:
    """Fully INT8 attention: INT8 Q·K^T and INT8 P·V, int32 accumulation, fused dequantization.

    ``q`` (B, Hq, Nq, D), ``k``/``v`` (B, Hkv, Nk, D), Hq % Hkv == 0, fp16 or bf16, D in
    :data:`HEAD_DIMS`, last dimension contiguous. Scales: Q, K per token (B, H, N); V per channel
    (B, Hkv, D); P per block row (its largest weight / 127). Returns a contiguous (B, Hq, Nq, D)
    tensor in q's dtype.
    """
    shape = check_attention_inputs(
        q, k, v, causal=causal, sm_scale=sm_scale, head_dims=HEAD_DIMS, method="int8"
    )
    return _launch(q, k, v, shape, causal=causal, pv_int8=True, smooth_k=False, method="int8")


def flash_attention_int8_qk(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    sm_scale: float | None = None,
    smooth_k: bool = False,
) -> torch.Tensor:
    """INT8 Q·K^T (per-token scales, int32 accumulation), P·V in q's dtype with fp32 accumulation.

    Same shapes, dtypes and head dims as :func:`flash_attention_int8`. ``smooth_k`` subtracts the
    per-(b, h) mean of K over the tokens before quantizing (on the fly; ``k`` is not modified).
    """
    method = "int8_qk_smooth" if smooth_k else "int8_qk"
    shape = check_attention_inputs(
        q, k, v, causal=causal, sm_scale=sm_scale, head_dims=HEAD_DIMS, method=method
    )
    return _launch(q, k, v, shape, causal=causal, pv_int8=False, smooth_k=smooth_k, method=method)


def flash_attention_int8_qk_smooth(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    sm_scale: float | None = None,
) -> torch.Tensor:
    """:func:`flash_attention_int8_qk` with K smoothing (per-head mean of K removed before quantizing)."""
    return flash_attention_int8_qk(q, k, v, causal=causal, sm_scale=sm_scale, smooth_k=True)
