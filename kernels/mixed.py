"""``mixed``: per head, Q and K at 4, 8 or 16 bits, chosen by measured sensitivity; P·V in fp16/bf16.

The plan. Quantizing K moves every logit ``sm_scale · q · k`` by ``sm_scale · q · Δk``, whose variance
is ``sm_scale² Σ_d E[q_d²] E[Δk_d²]`` for the measured per-channel second moments of Q and of K's
quantization error (and symmetrically for Q). That is what the softmax sees, so it is the sensitivity:
each KV head takes the fewest bits (4, 8 or 16) that keep the standard deviation of its logit error
under 0.1 for every query head of its GQA group, then each query head does the same for its own
error. Gaussian heads (0.077 at 4 bits) stay at 4 bits; heads whose outlier channels move the logits
(an outlier stretches the step of its whole group, and large Q or K channels amplify every step) get
8 or 16. K is smoothed first (its per-head mean over the tokens removed; softmax cannot see it).
:func:`mixed_plan` returns the plan and :func:`format_plan` prints it.

The kernel reads one width per program (one query head, one block of queries) from the plan: Q is
dequantized once by a branch on its width, and every K tile by a branch on the KV head's width. The
branch is uniform across the program (a scalar condition), so no element ever branches. 4- and 8-bit
operands use the group layout of :mod:`kernels.quant_lowbit` (asymmetric groups of 32 along D, 4-bit
packed two per byte), dequantized in registers; 16-bit operands are read in place. Every head is
quantized at both widths before the launch (the kernel reads only the planned one): a prefill pays
that pass once, and it keeps the kernel's buffers uniform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from kernels._validate import HEAD_DIMS, check_attention_inputs, upcast_dots
from kernels.backend import interpreting
from kernels.group_quant import quantize_groups_fused
from kernels.kv_cache import _dequant_halves, default_kv_group
from kernels.launch import program_block
from kernels.quant_lowbit import GroupQuantized, dequantize_groups, quantize_groups
from kernels.reference import attention_reference

LOG2E = math.log2(math.e)
# Largest standard deviation of the logit error (after sm_scale) that each of Q's and K's quantization
# may add: Gaussian heads give 0.077 at 4 bits, so they stay at 4 bits (see the module doc).
MAX_LOGIT_ERROR = 0.1
GPU_TILES: dict[int, tuple[int, int, int, int]] = {
    32: (128, 64, 4, 3),
    64: (128, 64, 4, 3),
    128: (128, 64, 8, 3),
    256: (64, 32, 8, 2),
}


@dataclass(frozen=True)
class MixedPlan:
    """Widths per head: ``q_bits`` (B, Hq) and ``k_bits`` (B, Hkv), int32 in {4, 8, 16}, with the
    measured logit-error standard deviations behind them at 4 and 8 bits (``*_err4``, ``*_err8``)."""

    q_bits: torch.Tensor
    k_bits: torch.Tensor
    q_err4: torch.Tensor
    q_err8: torch.Tensor
    k_err4: torch.Tensor
    k_err8: torch.Tensor

    def counts(self) -> dict[str, dict[int, int]]:
        """How many heads got each width, for Q and for K."""
        return {
            name: {w: int((t == w).sum()) for w in (4, 8, 16)}
            for name, t in (("q", self.q_bits), ("k", self.k_bits))
        }


def _sq_error(x: torch.Tensor, qx: GroupQuantized) -> torch.Tensor:
    """Mean square quantization error per (b, h, channel), over the tokens."""
    return (dequantize_groups(qx, torch.float32) - x).pow(2).mean(dim=2)


def _widths(term4: torch.Tensor, term8: torch.Tensor) -> torch.Tensor:
    limit = MAX_LOGIT_ERROR**2
    bits = torch.full(term4.shape, 16, dtype=torch.int32, device=term4.device)
    bits = torch.where(term8 <= limit, 8, bits)
    return torch.where(term4 <= limit, 4, bits).to(torch.int32)


def _quantize_all(q: torch.Tensor, k: torch.Tensor, fused: bool = False):
    """Q and K at 4 and 8 bits (K smoothed), and the smoothed K in fp32. ``fused``: one Triton kernel
    per quantization (:mod:`kernels.group_quant`, the same bits) instead of the torch reference."""
    D = q.size(-1)
    quantize = quantize_groups_fused if fused else quantize_groups
    g4, g8 = default_kv_group(D, 4), default_kv_group(D, 8)
    center = k.float().mean(dim=2, keepdim=True) if k.size(2) > 0 else None
    kc = k.float() - center if center is not None else k.float()
    q4, q8 = quantize(q, bits=4, group=g4), quantize(q, bits=8, group=g8)
    k4 = quantize(k, bits=4, group=g4, center=center)
    k8 = quantize(k, bits=8, group=g8, center=center)
    return q4, q8, k4, k8, kc


def plan_summary(plan: MixedPlan) -> dict[str, float]:
    """The plan as numbers to store with a result: the share of query and key/value heads at each width
    (``q4``, ``q8``, ``q16``, ``k4``, ``k8``, ``k16``, over batch entries too) and the mean width of Q·K^T's
    operands (``qk_bits``: 4 when every head of both is at 4 bits)."""
    out: dict[str, float] = {}
    for name, bits in (("q", plan.q_bits), ("k", plan.k_bits)):
        total = max(bits.numel(), 1)
        for width in (4, 8, 16):
            out[f"{name}{width}"] = float((bits == width).sum()) / total
    q_mean = float(plan.q_bits.float().mean()) if plan.q_bits.numel() else 0.0
    k_mean = float(plan.k_bits.float().mean()) if plan.k_bits.numel() else 0.0
    out["qk_bits"] = (q_mean + k_mean) / 2
    return out


def inspect_mixed(q, k, v, *, causal=False, sm_scale=None) -> dict[str, float]:
    """:func:`plan_summary` of the plan ``mixed`` makes for these inputs (what the registry records)."""
    return plan_summary(mixed_plan(q, k, sm_scale))


def mixed_plan(
    q: torch.Tensor, k: torch.Tensor, sm_scale: float | None = None, *, _quantized=None
) -> MixedPlan:
    """The widths ``mixed`` uses for these inputs (shapes as :func:`kernels.attention`).

    Each operand's quantization moves a logit ``sm_scale · q · k`` by an error whose variance, for the
    partner's measured per-channel second moments, is ``sm_scale² Σ_d E[Δk_d²] E[q_d²]`` (K's error;
    Q's is symmetric). A KV head takes the fewest bits that keep this under :data:`MAX_LOGIT_ERROR`
    for every query head of its group; each query head then does the same for its own error. This is
    what the softmax sees: an outlier channel matters as much as it moves the logits.
    """
    D = q.size(-1)
    scale2 = (1.0 / D) if sm_scale is None else float(sm_scale) ** 2
    B, Hq = q.shape[:2]
    Hkv = k.size(1)
    group = Hq // Hkv
    qf = q.float()
    if k.size(2) == 0 or q.size(2) == 0:
        zq, zk = qf.new_zeros(B, Hq), qf.new_zeros(B, Hkv)
        return MixedPlan(_widths(zq, zq), _widths(zk, zk), zq, zq, zk, zk)
    q4, q8, k4, k8, kc = _quantize_all(q, k) if _quantized is None else _quantized
    q2 = qf.pow(2).mean(dim=2).reshape(B, Hkv, group, D)
    k2 = kc.pow(2).mean(dim=2)[:, :, None, :]

    def k_term(dk):  # (B, Hkv): the worst query head of the group
        return (scale2 * (q2 * dk[:, :, None, :]).sum(-1)).amax(dim=-1)

    def q_term(dq):  # (B, Hq)
        return (scale2 * (dq.reshape(B, Hkv, group, D) * k2).sum(-1)).reshape(B, Hq)

    kt4, kt8 = k_term(_sq_error(kc, k4)), k_term(_sq_error(kc, k8))
    qt4, qt8 = q_term(_sq_error(qf, q4)), q_term(_sq_error(qf, q8))
    return MixedPlan(_widths(qt4, qt8), _widths(kt4, kt8), qt4.sqrt(), qt8.sqrt(), kt4.sqrt(), kt8.sqrt())


def format_plan(plan: MixedPlan) -> str:
    """A readable table of the plan: one line per batch entry and operand, widths per head."""
    lines = []
    for name, bits, e4 in (("q", plan.q_bits, plan.q_err4), ("k", plan.k_bits, plan.k_err4)):
        for b in range(bits.size(0)):
            widths = " ".join(f"{int(w):>2}" for w in bits[b].tolist())
            worst = float(e4[b].max()) if e4.numel() else 0.0
            lines.append(f"{name} b={b}: bits per head [{widths}]  (worst logit error at 4 bits {worst:.3f})")
    counts = plan.counts()
    lines.append(
        "heads at 4/8/16 bits: " + ", ".join(f"{n} {c[4]}/{c[8]}/{c[16]}" for n, c in counts.items())
    )
    return "\n".join(lines)


@triton.jit
def _load_halves_16(base, rows, stride_n, offs_h, n_ok, HALF: tl.constexpr, OUT_DTYPE: tl.constexpr):
    ptrs = base + rows[:, None].to(tl.int64) * stride_n + offs_h[None, :]
    mask = n_ok[:, None] & (offs_h[None, :] < HALF)
    lo = tl.load(ptrs, mask=mask, other=0.0).to(OUT_DTYPE)
    hi = tl.load(ptrs + HALF, mask=mask, other=0.0).to(OUT_DTYPE)
    return lo, hi


@triton.jit
def _load_operand(
    c4, m4, c8, m8, x16, stride_n, width, rows, offs_h, n_ok,
    HALF: tl.constexpr, G4: tl.constexpr, G8: tl.constexpr, OUT_DTYPE: tl.constexpr,
    BLOCK: tl.constexpr, BLOCK_H: tl.constexpr, ROUND_BF16: tl.constexpr,
):  # fmt: skip
    # ``width`` is one scalar per program: the branch is uniform, never per element.
    if width == 4:
        lo, hi = _dequant_halves(
            c4, m4, rows, offs_h, n_ok, 4, HALF, G4, 2 * HALF // G4, OUT_DTYPE, BLOCK, BLOCK_H,
            tl.float32, ROUND_BF16,
        )  # fmt: skip
    elif width == 8:
        lo, hi = _dequant_halves(
            c8, m8, rows, offs_h, n_ok, 8, HALF, G8, 2 * HALF // G8, OUT_DTYPE, BLOCK, BLOCK_H,
            tl.float32, ROUND_BF16,
        )  # fmt: skip
    else:
        lo, hi = _load_halves_16(x16, rows, stride_n, offs_h, n_ok, HALF, OUT_DTYPE)
    return lo, hi


@triton.jit(do_not_specialize=["Hq", "Hkv", "GROUP", "Nq", "Nk", "NUM_M_BLOCKS"])
def _flash_mixed_kernel(
    QC4, QM4, QC8, QM8, Q16, KC4, KM4, KC8, KM8, K16, V, O, QPLAN, KPLAN,
    stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vn,
    Hq, Hkv, GROUP, Nq, Nk, qk_scale, NUM_M_BLOCKS,
    CAUSAL: tl.constexpr, G4: tl.constexpr, G8: tl.constexpr, HALF: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    bh, b, h, start_m = program_block(NUM_M_BLOCKS, Hq, BLOCK_M)
    bh_kv = b * Hkv + h // GROUP
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_h = tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    D = 2 * HALF
    DOT_DTYPE: tl.constexpr = tl.float32 if UPCAST else O.dtype.element_ty
    NG4: tl.constexpr = 2 * HALF // G4
    NG8: tl.constexpr = 2 * HALF // G8

    q_width = tl.load(QPLAN + bh)
    k_width = tl.load(KPLAN + bh_kv)
    q_lo, q_hi = _load_operand(
        QC4 + bh * Nq * HALF, QM4 + bh * Nq * NG4 * 2, QC8 + bh * Nq * D, QM8 + bh * Nq * NG8 * 2,
        Q16 + b * stride_qb + h * stride_qh, stride_qn, q_width, offs_m, offs_h, offs_m < Nq,
        HALF, G4, G8, DOT_DTYPE, BLOCK_M, BLOCK_H, UPCAST,
    )  # fmt: skip
    kc4 = KC4 + bh_kv * Nk * HALF
    km4 = KM4 + bh_kv * Nk * NG4 * 2
    kc8 = KC8 + bh_kv * Nk * D
    km8 = KM8 + bh_kv * Nk * NG8 * 2
    k16 = K16 + b * stride_kb + (h // GROUP) * stride_kh
    v_base = V + b * stride_vb + (h // GROUP) * stride_vh

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    hi = tl.minimum(Nk, start_m + BLOCK_M + Nk - Nq) if CAUSAL else Nk
    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        n_ok = cols < Nk
        k_lo, k_hi = _load_operand(
            kc4, km4, kc8, km8, k16, stride_kn, k_width, cols, offs_h, n_ok,
            HALF, G4, G8, DOT_DTYPE, BLOCK_N, BLOCK_H, UPCAST,
        )  # fmt: skip
        s = (tl.dot(q_lo, tl.trans(k_lo)) + tl.dot(q_hi, tl.trans(k_hi))) * qk_scale
        valid = n_ok[None, :]
        if CAUSAL:
            valid = valid & (cols[None, :] <= offs_m[:, None] + (Nk - Nq))
        s = tl.where(valid, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
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


def flash_attention_mixed(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    sm_scale: float | None = None,
    plan: MixedPlan | None = None,
) -> torch.Tensor:
    """Per-head mixed-precision Q·K^T (4, 8 or 16 bits per head, see :func:`mixed_plan`), fp16/bf16 P·V.

    Shapes, dtypes, head dims and semantics as :func:`kernels.attention`. ``plan`` (default: measured
    from these inputs) may be given to reuse or inspect one; its shapes must match (B, Hq) and (B, Hkv).
    """
    s = check_attention_inputs(q, k, v, causal=causal, sm_scale=sm_scale, head_dims=HEAD_DIMS, method="mixed")
    out = q.new_empty((s.batch, s.heads_q, s.n_q, s.head_dim))
    if out.numel() == 0:
        return out
    if s.n_k == 0:
        return out.zero_()
    quantized = _quantize_all(q, k, fused=True)
    q4, q8, k4, k8, _ = quantized
    if plan is None:
        plan = mixed_plan(q, k, sm_scale, _quantized=quantized)
    if plan.q_bits.shape != (s.batch, s.heads_q) or plan.k_bits.shape != (s.batch, s.heads_kv):
        raise ValueError(
            f"plan: expected widths of shapes {(s.batch, s.heads_q)} and {(s.batch, s.heads_kv)}, got "
            f"{tuple(plan.q_bits.shape)} and {tuple(plan.k_bits.shape)}"
        )
    for name, t in (("q_bits", plan.q_bits), ("k_bits", plan.k_bits)):
        if not bool(((t == 4) | (t == 8) | (t == 16)).all()):
            raise ValueError(f"plan: expected {name} values in 4, 8, 16, got {t.unique().tolist()}")
    q_plan = plan.q_bits.to(device=q.device, dtype=torch.int32).contiguous()
    k_plan = plan.k_bits.to(device=q.device, dtype=torch.int32).contiguous()
    block_d = triton.next_power_of_2(s.head_dim)
    # Interpreter: fewer, larger tiles (its cost is per numpy operation more than per element).
    bm, bn, warps, stages = (64, 64, 4, 1) if interpreting() else GPU_TILES[block_d]
    num_m = triton.cdiv(s.n_q, bm)
    _flash_mixed_kernel[(num_m * s.batch * s.heads_q,)](
        q4.codes, q4.meta, q8.codes, q8.meta, q, k4.codes, k4.meta, k8.codes, k8.meta, k, v, out,
        q_plan, k_plan,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        s.heads_q, s.heads_kv, s.group, s.n_q, s.n_k, s.sm_scale * LOG2E, num_m,
        CAUSAL=causal, G4=q4.group, G8=q8.group, HALF=s.head_dim // 2, UPCAST=upcast_dots(q),
        BLOCK_M=bm, BLOCK_N=bn, BLOCK_H=triton.next_power_of_2(s.head_dim // 2), BLOCK_D=block_d,
        num_warps=warps, num_stages=stages,
        # exp2(s - m) must give exactly 1 at the row maximum (see flash_int8.py).
        enable_fp_fusion=False,
    )  # fmt: skip
    return out


def dequantized_operands(q, k, *, sm_scale=None, plan: MixedPlan | None = None, dtype=torch.float64):
    """Q and K exactly as the kernel feeds them to its dots under ``plan`` (default: measured), in
    ``dtype``; 4- and 8-bit K heads come out smoothed."""
    quantized = _quantize_all(q, k)
    q4, q8, k4, k8, _ = quantized
    plan = mixed_plan(q, k, sm_scale, _quantized=quantized) if plan is None else plan

    def pick(x16, x4, x8, bits):
        # fp32 dequantization rounded to the input dtype, as in the kernel; 16-bit heads are the input.
        d4 = dequantize_groups(x4, torch.float32).to(q.dtype)
        d8 = dequantize_groups(x8, torch.float32).to(q.dtype)
        w = bits.to(x16.device)[:, :, None, None]
        return torch.where(w == 4, d4, torch.where(w == 8, d8, x16)).to(dtype)

    # A 16-bit K head is read unsmoothed: the same attention, since softmax ignores the mean.
    return pick(q, q4, q8, plan.q_bits), pick(k, k4, k8, plan.k_bits)


def dequantize_mixed(q, k, v, *, causal=False, sm_scale=None):
    """float32 Q, K, V as the ``mixed`` kernel sees them."""
    dq, dk = dequantized_operands(q, k, sm_scale=sm_scale, dtype=torch.float32)
    return dq, dk, v.float()


def emulate_mixed(q, k, v, *, causal=False, sm_scale=None):
    """float64 emulation of ``mixed``: its plan, quantizers and rounding, then exact attention."""
    dq, dk = dequantized_operands(q, k, sm_scale=sm_scale)
    return attention_reference(dq, dk, v, causal=causal, sm_scale=sm_scale)
