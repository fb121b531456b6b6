"""FlashAttention-2 forward pass for fp16/bf16 inputs: the baseline every low-bit method is measured against.

Numerics: Q·K^T is a tensor-core dot of the input dtype with fp32 accumulation; the online softmax
keeps its running maximum (in raw dot units) and denominator in fp32 and scales the difference to the
maximum by ``sm_scale * log2(e)`` so that the softmax uses ``exp2``; P is rounded to the input dtype for
the P·V dot (fp32 accumulation). The denominator sums P before that rounding for fp16 and the rounded
values for bf16 (whose 8-bit rounding then cancels between numerator and denominator).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels._validate import HEAD_DIMS, check_attention_inputs, interpreting, upcast_dots
from kernels.flash_fp16_tma import (
    flash_attention_fp16_tma,
    launch_fp16_tma,
    prefer_tma,
    tma_config,
    tma_eligible,
)
from kernels.launch import LOG2E, block_config, grid_for, make_output, program_block


@triton.jit
def _fp16_inner(
    acc,
    l_i,
    m_i,
    q,
    k_base,
    v_base,
    k_offs,
    v_offs,
    stride_kn,
    stride_vn,
    offs_m,
    offs_n,
    offs_d,
    lo,
    hi,
    Nq,
    Nk,
    D,
    qk_scale,
    MASKED: tl.constexpr,
    CAUSAL: tl.constexpr,
    EVEN_D: tl.constexpr,
    UPCAST: tl.constexpr,
    V_DTYPE: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        if MASKED:
            kv_mask = (cols[:, None] < Nk) & (offs_d[None, :] < D)
            k = tl.load(k_base + k_offs, mask=kv_mask, other=0.0)
            v = tl.load(v_base + v_offs, mask=kv_mask, other=0.0)
        elif EVEN_D:
            k = tl.load(k_base + k_offs)
            v = tl.load(v_base + v_offs)
        else:
            k = tl.load(k_base + k_offs, mask=offs_d[None, :] < D, other=0.0)
            v = tl.load(v_base + v_offs, mask=offs_d[None, :] < D, other=0.0)
        if UPCAST:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        # Scores and the running maximum stay in raw dot units and the scale multiplies the difference:
        # `s - m` is exactly 0 at the maximum and <= 0 elsewhere however the compiler contracts, so the
        # key holding the maximum gets exactly exp2(0) = 1 with FP fusion on. (`s * scale - m` fused
        # into one FMA exceeded the rounded maximum by up to half an ulp of the logit, 128 at logits
        # ~3e9: exp2 gave inf, then NaN; found by the fuzzer on an H200.)
        s = tl.dot(q, tl.trans(k))
        if MASKED:
            valid = cols[None, :] < Nk
            if CAUSAL:
                valid = valid & (cols[None, :] <= offs_m[:, None] + (Nk - Nq))
            s = tl.where(valid, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        # A row that has seen only masked keys keeps m = -inf; subtract 0 instead so exp2 gives 0, not NaN.
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.math.exp2((m_i - m_use) * qk_scale)
        p32 = tl.math.exp2((s - m_use[:, None]) * qk_scale)
        # P is rounded to the input dtype for the dot; under UPCAST it is rounded and widened back.
        p = p32.to(V_DTYPE)
        if p.dtype == tl.float16:
            # fp16: the denominator sums P before its rounding (FlashAttention's choice): converting each
            # rounded score back cost 5-13 % on an H200 (docs/perf.md "v12"), and a row of V = 1 gives
            # 1 within one rounding of P.
            l_i = l_i * alpha + tl.sum(p32, axis=1)
        else:
            # bf16: the denominator sums the P that multiplies V, so P's 8-bit rounding cancels and a row
            # of V = 1 gives exactly 1.
            l_i = l_i * alpha + tl.sum(p.to(tl.float32), axis=1)
        if UPCAST:
            p = p.to(tl.float32)
        # Rescale, then let the dot accumulate into acc in place (no second accumulator in registers).
        acc = tl.dot(p, v, acc * alpha[:, None])
        m_i = m_new
        # Only the scalar 64-bit base pointers move: no index product can overflow however long the
        # sequence, and the per-element offsets stay loop-invariant int32 (few registers).
        k_base += BLOCK_N * stride_kn
        v_base += BLOCK_N * stride_vn
    return acc, l_i, m_i, k_base, v_base


# Sizes are not specialized on value 1 / divisibility: fewer compiled variants, and it avoids a
# ptxas (CUDA 13.0) crash seen on one such variant on the H200.
@triton.jit(do_not_specialize=["Hq", "GROUP", "Nq", "Nk", "NUM_M_BLOCKS"])
def _flash_fp16_kernel(
    Q,
    K,
    V,
    O,
    stride_qb,
    stride_qh,
    stride_qn,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_vb,
    stride_vh,
    stride_vn,
    Hq,
    GROUP,
    Nq,
    Nk,
    D,
    qk_scale,
    NUM_M_BLOCKS,
    CAUSAL: tl.constexpr,
    EVEN_D: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    bh, b, h, start_m = program_block(NUM_M_BLOCKS, Hq, BLOCK_M)
    h_kv = h // GROUP
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)

    q_ptrs = Q + b * stride_qb + h * stride_qh + offs_m[:, None].to(tl.int64) * stride_qn + offs_d[None, :]
    q = tl.load(q_ptrs, mask=(offs_m[:, None] < Nq) & (offs_d[None, :] < D), other=0.0)
    if UPCAST:
        q = q.to(tl.float32)
    k_base = K + b * stride_kb + h_kv * stride_kh
    v_base = V + b * stride_vb + h_kv * stride_vh
    k_offs = offs_n[:, None] * stride_kn + offs_d[None, :]
    v_offs = offs_n[:, None] * stride_vn + offs_d[None, :]

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    # Bottom-right causal: query i sees key j iff j <= i + Nk - Nq. Key blocks every row of this query
    # block sees in full need no mask; the rest (diagonal band, ragged end) are masked; beyond `hi` no
    # row sees anything and the loop never visits them.
    if CAUSAL:
        hi = tl.minimum(Nk, start_m + BLOCK_M + Nk - Nq)
        full = tl.maximum(tl.minimum(Nk, start_m + Nk - Nq + 1), 0)
    else:
        hi = Nk
        full = Nk
    full = (full // BLOCK_N) * BLOCK_N
    acc, l_i, m_i, k_base, v_base = _fp16_inner(
        acc, l_i, m_i, q, k_base, v_base, k_offs, v_offs, stride_kn, stride_vn, offs_m, offs_n, offs_d,
        0, full, Nq, Nk, D, qk_scale, False, CAUSAL, EVEN_D, UPCAST, V.dtype.element_ty, BLOCK_N,
    )  # fmt: skip
    acc, l_i, m_i, k_base, v_base = _fp16_inner(
        acc, l_i, m_i, q, k_base, v_base, k_offs, v_offs, stride_kn, stride_vn, offs_m, offs_n, offs_d,
        full, hi, Nq, Nk, D, qk_scale, True, CAUSAL, EVEN_D, UPCAST, V.dtype.element_ty, BLOCK_N,
    )  # fmt: skip

    # Rows that see no key (causal, Nq > Nk) have l = 0 and acc = 0: they return zeros.
    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    o_ptrs = O + bh * Nq * D + offs_m[:, None].to(tl.int64) * D + offs_d[None, :]
    tl.store(o_ptrs, out.to(O.dtype.element_ty), mask=(offs_m[:, None] < Nq) & (offs_d[None, :] < D))


def flash_attention_fp16(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    sm_scale: float | None = None,
    kernel: str = "auto",
) -> torch.Tensor:
    """Exact attention (up to fp16/bf16 rounding) with a FlashAttention-2 style Triton kernel.

    ``q`` (B, Hq, Nq, D), ``k``/``v`` (B, Hkv, Nk, D), Hq % Hkv == 0, fp16 or bf16, D in
    :data:`HEAD_DIMS`, last dimension contiguous. Returns a contiguous (B, Hq, Nq, D) tensor in q's
    dtype. ``causal`` is bottom-right aligned; query rows that see no key are zero. On sm_90 GPUs with
    TMA-aligned operands, the shapes where :func:`kernels.flash_fp16_tma.prefer_tma` measured the TMA
    kernel faster run it (``kernel="auto"``); ``kernel="pointer"`` always runs the pointer kernel and
    ``kernel="tma"`` always the TMA one (a clear error where it cannot run).
    """
    if kernel not in ("auto", "pointer", "tma"):
        raise ValueError(f"kernel: expected 'auto', 'pointer' or 'tma', got {kernel!r}")
    shape = check_attention_inputs(
        q, k, v, causal=causal, sm_scale=sm_scale, head_dims=HEAD_DIMS, method="fp16"
    )
    o, done = make_output(q, shape)
    if done:
        return o
    if kernel == "tma":
        return flash_attention_fp16_tma(q, k, v, causal=causal, sm_scale=sm_scale)
    # On Hopper the TMA kernel is the same method (same numerics up to fp32 summation order and the
    # denominator's rounding) where it was measured faster; everything else runs the pointer kernel.
    if (
        kernel == "auto"
        and not interpreting()
        and prefer_tma(shape.head_dim, shape.n_k, causal)
        and tma_eligible(q, k, v, o)
    ):
        launch_fp16_tma(q, k, v, o, shape, cfg=tma_config(shape.head_dim, causal), causal=causal)
        return o
    cfg = block_config("fp16", shape.head_dim, interpreting())
    grid, num_m = grid_for(shape, cfg.block_m)
    _flash_fp16_kernel[grid](
        q, k, v, o,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        shape.heads_q, shape.group, shape.n_q, shape.n_k, shape.head_dim,
        shape.sm_scale * LOG2E, num_m,
        CAUSAL=causal,
        EVEN_D=cfg.block_d == shape.head_dim,
        UPCAST=upcast_dots(q),
        BLOCK_M=cfg.block_m,
        BLOCK_N=cfg.block_n,
        BLOCK_D=cfg.block_d,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )  # fmt: skip
    return o
