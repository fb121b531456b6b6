"""Float64 emulations of the registered methods: their own quantizers and P steps, then exact arithmetic.

Each ``emulate_<method>(q, k, v, *, causal=False, sm_scale=None, block_n=None)`` takes the arguments of
:func:`kernels.attention` and returns a float64 ``(B, Hq, Nq, D)`` tensor: what the kernel computes if
every product, sum and exponential were exact. The harness judges a kernel against its emulation with a
tight budget (``kernels.spec.EMULATION_BUDGETS``) on every value family, so however large a method's
quantization error is, a kernel that drops a block, mis-scales or returns zeros is still caught.

What is replayed, per method:

* quantizers: the torch references of ``kernels.quant`` (the Triton quantizers' exact rounding: a true
  division ``127 / absmax`` in float32, round half away from zero, clamp, all-zero tokens to zeros);
  their integer codes and float32 scales are exact in float64.
* the online softmax, key block by key block with the kernel's own ``BLOCK_N`` (``kernels.launch``):
  P is rounded relative to the running maximum of the blocks seen so far, so its steps depend on the
  block schedule. ``fp16``/``int8_qk`` round P to the input dtype; ``int8`` per block row to steps of
  that row's largest weight / 127 (round half up). The denominator sums the rounded P, as the kernels do
  (``fp16`` with fp16 inputs: P before its rounding).
* ``int8``: V per channel in INT8, its scale applied after dividing by the denominator.
* ``int8_qk_smooth``: K minus its per-head mean over tokens (float32 mean, as the kernel takes it).
* Q of the INT8 methods: per-token INT8, except in noisy KV heads (``kernels.quant.noisy_heads``), which
  the kernels compute again with Q as given (:func:`int8_q_values`).

Only torch and ``kernels.quant``'s torch references are needed; nothing is compiled.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

LOG2E = math.log2(math.e)


def _block_n(method: str, head_dim: int, device: torch.device) -> int:
    from kernels.backend import interpreting
    from kernels.launch import block_config

    return block_config(method, head_dim, interpreting() or device.type != "cuda").block_n


def _expand(x: torch.Tensor, hq: int) -> torch.Tensor:
    """Query head h reads kv head h // (hq // hkv)."""
    return x.repeat_interleave(hq // x.shape[1], dim=1)


def _replay(
    q_val: torch.Tensor,
    k_val: torch.Tensor,
    v_val: torch.Tensor,
    *,
    scale: float,
    causal: bool,
    block_n: int,
    round_p: Callable[[torch.Tensor], torch.Tensor],
    sum_rounded: bool = True,
) -> torch.Tensor:
    """Online softmax over key blocks of ``block_n`` in float64, P rounded by ``round_p`` per block;
    the denominator sums the rounded P (``sum_rounded``) or P before its rounding.

    ``q_val`` (B, Hq, Nq, D), ``k_val``/``v_val`` (B, Hkv, Nk, D): float64 values the kernel multiplies
    (dequantized codes). Returns ``acc / l`` with rows that see no key set to zeros.
    """
    b, hq, nq, d = q_val.shape
    hkv, nk = k_val.shape[1], k_val.shape[2]
    dv = v_val.shape[3]
    out_shape = (b, hq, nq, dv)
    if q_val.numel() == 0 or nk == 0:
        return torch.zeros(out_shape, dtype=torch.float64, device=q_val.device)
    # (B, Hkv, group, N, D) against (B, Hkv, 1, Nk, D): the matmuls broadcast over the group instead of
    # copying K and V once per query head (a nightly GPU case's float64 K and V reach gigabytes).
    group = hq // hkv
    q_val = q_val.reshape(b, hkv, group, nq, d)
    kf, vf = k_val.unsqueeze(2), v_val.unsqueeze(2)
    rows = torch.arange(nq, device=q_val.device)[:, None]
    m = torch.full((b, hkv, group, nq, 1), -math.inf, dtype=torch.float64, device=q_val.device)
    l_sum = torch.zeros_like(m)
    acc = torch.zeros((b, hkv, group, nq, dv), dtype=torch.float64, device=q_val.device)
    for start in range(0, nk, block_n):
        stop = min(nk, start + block_n)
        # Logits in log2 units, as the kernels fold log2(e) into the scale and use exp2.
        s = (q_val @ kf[..., start:stop, :].transpose(-1, -2)) * (scale * LOG2E)
        if causal:
            cols = torch.arange(start, stop, device=q_val.device)[None, :]
            s = s.masked_fill(~(cols <= rows + (nk - nq)), -math.inf)
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        m_use = torch.where(torch.isneginf(m_new), 0.0, m_new)
        alpha = torch.exp2(m - m_use)
        p_exact = torch.exp2(s - m_use)
        p = round_p(p_exact)
        l_sum = l_sum * alpha + (p if sum_rounded else p_exact).sum(dim=-1, keepdim=True)
        acc = acc * alpha + p @ vf[..., start:stop, :]
        m = m_new
    out = torch.where(l_sum > 0, acc / torch.where(l_sum > 0, l_sum, 1.0), 0.0)
    return out.reshape(out_shape)


def _scale(q: torch.Tensor, sm_scale: float | None) -> float:
    return 1.0 / math.sqrt(q.shape[-1]) if sm_scale is None else float(sm_scale)


def _to_dtype(dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda p: p.to(dtype).double()


def round_p_per_block_row(p: torch.Tensor, levels: int = 127) -> torch.Tensor:
    """P per block row (one query, one key block) at steps of that row's largest weight / ``levels``,
    round half up: with 127, the codes 0..127 the ``int8`` kernel multiplies with V, times the step its
    numerator and denominator share. A block row whose best weight is at most 2^-100
    (kernels.flash_int8.P_FLOOR) contributes zeros."""
    top = p.amax(dim=-1, keepdim=True)
    keep = top > 2.0**-100
    step = torch.where(keep, top, 1.0) / levels
    return torch.where(keep, torch.floor(p / step + 0.5) * step, 0.0)


def _per_token(x: torch.Tensor, center: torch.Tensor | None = None) -> torch.Tensor:
    from kernels.quant import quantize_per_token_reference

    codes, scale = quantize_per_token_reference(x, center)
    return codes.double() * scale.double()[..., None]


def int8_q_values(q, k, *, sm_scale=None, center: torch.Tensor | None = None) -> torch.Tensor:
    """float64 Q as the INT8 kernels multiply it: per-token INT8 codes times their scales, or ``q`` itself
    in the KV heads whose rounding would blur their logits (:func:`kernels.quant.noisy_heads` against K's
    longest token, less ``center``)."""
    from kernels.quant import longest_token_reference, noisy_heads, quantize_per_token_reference

    codes, scale = quantize_per_token_reference(q)
    values = codes.double() * scale.double()[..., None]
    if k.size(2) == 0:
        return values
    noisy = noisy_heads(scale, longest_token_reference(k, center), _scale(q, sm_scale) * LOG2E)
    return torch.where(_expand(noisy, q.shape[1])[:, :, None, None], q.double(), values)


def emulate_fp16(q, k, v, *, causal=False, sm_scale=None, block_n: int | None = None) -> torch.Tensor:
    """``fp16``: Q, K, V as given; P rounded to the input dtype per key block; fp32 steps made exact. The
    denominator sums P before its rounding for fp16, the rounded P for bf16 (the pointer kernel)."""
    block_n = block_n or _block_n("fp16", q.shape[-1], q.device)
    return _replay(
        q.double(),
        k.double(),
        v.double(),
        scale=_scale(q, sm_scale),
        causal=causal,
        block_n=block_n,
        round_p=_to_dtype(q.dtype),
        sum_rounded=q.dtype == torch.bfloat16,
    )


def emulate_int8(q, k, v, *, causal=False, sm_scale=None, block_n: int | None = None) -> torch.Tensor:
    """``int8``: per-token INT8 Q/K (Q as given in noisy heads), P per block row at (its max)/127,
    per-channel INT8 V."""
    from kernels.quant import quantize_per_channel_reference

    block_n = block_n or _block_n("int8", q.shape[-1], q.device)
    v_codes, v_scale = quantize_per_channel_reference(v)
    out = _replay(
        int8_q_values(q, k, sm_scale=sm_scale),
        _per_token(k),
        v_codes.double(),
        scale=_scale(q, sm_scale),
        causal=causal,
        block_n=block_n,
        round_p=round_p_per_block_row,
    )
    return out * _expand(v_scale.double(), q.shape[1])[:, :, None, :]


def emulate_int8_qk(
    q, k, v, *, causal=False, sm_scale=None, block_n: int | None = None, smooth_k: bool = False
) -> torch.Tensor:
    """``int8_qk``: per-token INT8 Q/K (K centered first with ``smooth_k``; Q as given in noisy heads), P
    rounded to the input dtype per key block, V as given."""
    method = "int8_qk_smooth" if smooth_k else "int8_qk"
    block_n = block_n or _block_n(method, q.shape[-1], q.device)
    center = torch.mean(k, dim=2, dtype=torch.float32) if smooth_k and k.size(2) > 0 else None
    return _replay(
        int8_q_values(q, k, sm_scale=sm_scale, center=center),
        _per_token(k, center),
        v.double(),
        scale=_scale(q, sm_scale),
        causal=causal,
        block_n=block_n,
        round_p=_to_dtype(q.dtype),
    )


def emulate_int8_qk_smooth(
    q, k, v, *, causal=False, sm_scale=None, block_n: int | None = None
) -> torch.Tensor:
    """``int8_qk_smooth``: :func:`emulate_int8_qk` with K smoothing."""
    return emulate_int8_qk(q, k, v, causal=causal, sm_scale=sm_scale, block_n=block_n, smooth_k=True)
