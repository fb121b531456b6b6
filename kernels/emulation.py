"""Float64 emulations of the low-bit methods: their own quantizers and P steps, then exact arithmetic.

Each function takes the arguments of :func:`kernels.attention` and returns a float64 (B, Hq, Nq, D)
tensor. The online softmax is replayed key block by key block with the kernel's own block size,
because a method that rounds P (to INT8 steps or to e4m3) rounds it relative to the running maximum
of the blocks seen so far; everything else (products, sums, exponentials) is exact in float64. A kernel
therefore differs from its emulation only by fp32 summation order and approximate ``exp2``, so tests can
hold it tightly to the emulation while the loose accuracy budgets hold it to the true attention.

Only torch is imported at module level; the block size comes from the kernel's config on first use.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

LOG2E = math.log2(math.e)
FP8_MAX = 448.0


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def _true_inverse(amax: torch.Tensor, qmax: float) -> torch.Tensor:
    safe = torch.where(amax > 0, amax, torch.ones_like(amax))
    return torch.where(amax > 0, torch.full_like(amax, qmax) / safe, torch.zeros_like(amax))


def round_e4m3(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded to the nearest float8 e4m3 value (ties to even), saturating at ±448, as float64."""
    return x.float().clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).double()


def _empty_result(q: torch.Tensor) -> torch.Tensor:
    return torch.zeros(q.shape, dtype=torch.float64, device=q.device)


def _causal_valid(cols: torch.Tensor, n_q: int, n_k: int, causal: bool, device) -> torch.Tensor:
    valid = (cols < n_k)[None, :]
    if causal:
        rows = torch.arange(n_q, device=device)[:, None]
        valid = valid & (cols[None, :] <= rows + (n_k - n_q))
    return valid


class SageKV(NamedTuple):
    """K and V as the sage kernels hold them (:func:`quantize_sage_fp8`); float64 unless said."""

    k_int: torch.Tensor  # (B, H, Nk, D) integers
    # (B, H, Nk): each block's scale; in a wide block over each key's power of two 2^e, e the most, up to
    # K_SHIFT_MAX, that keeps the key's codes within range
    k_scale: torch.Tensor
    v_e4m3: torch.Tensor  # (B, H, Nk, D) e4m3 values of v / v_scale
    v_scale: torch.Tensor  # (B, H, D), amax / 448
    wide_heads: torch.Tensor  # bool (B, H): the head holds a wide block
    k_norm: torch.Tensor  # float32 (B, H): the L2 norm of the head's longest smoothed key


def quantize_sage_fp8(k: torch.Tensor, v: torch.Tensor, block_n: int) -> SageKV:
    """K smoothed and INT8 per block of ``block_n`` keys, V e4m3 per channel, as the kernel stores them,
    with the per-head facts the kernels' second launch is decided by (:class:`SageKV`)."""
    from kernels.flash_sage_fp8 import K_SHIFT_MAX, K_WIDE_MIN
    from kernels.quant import longest_token_reference

    B, H, Nk, D = k.shape
    kc = k.float() - torch.mean(k, dim=2, dtype=torch.float32)[:, :, None, :]
    num_n = -(-Nk // block_n)
    pad = num_n * block_n - Nk
    kp = torch.nn.functional.pad(kc, (0, 0, 0, pad)).reshape(B, H, num_n, block_n, D)
    amax_key = kp.abs().amax(dim=4)
    amax = amax_key.amax(dim=3)
    inv = _true_inverse(amax, 127.0)
    # A wide block (kernels.flash_sage_fp8.K_WIDE_MIN): each key's power of two 2^e, the largest in
    # [0, K_SHIFT_MAX] with amax_key * 2^e <= amax, from the fp32 bits as the quantizer computes it
    # (exponent difference, less one where the key's mantissa exceeds the block's); all-zero keys take
    # e = 0. Other blocks: e = 0 for every key.
    tb = amax.view(torch.int32)[..., None]
    xb = amax_key.view(torch.int32)
    e = ((tb >> 23) & 0xFF) - ((xb >> 23) & 0xFF) - ((tb & 0x7FFFFF) < (xb & 0x7FFFFF)).int()
    e = torch.where(amax_key > 0, e.clamp(0, K_SHIFT_MAX.value), 0)
    wide = e.amax(dim=3) >= K_WIDE_MIN.value
    e = torch.where(wide[..., None], e, 0)
    pow2 = (e + 127).bitwise_left_shift(23).view(torch.float32)
    k_int = _round_half_away(kp * inv[..., None, None] * pow2[..., None]).clamp(-127, 127)
    k_int = k_int.reshape(B, H, num_n * block_n, D)[:, :, :Nk].double()
    key_scale = (amax / 127.0)[..., None] / pow2.double()
    k_scale = key_scale.reshape(B, H, num_n * block_n)[:, :, :Nk].double()
    vamax = v.float().abs().amax(dim=2)
    vinv = _true_inverse(vamax, FP8_MAX)
    v_e4m3 = round_e4m3(v.float() * vinv[:, :, None, :])
    k_norm = longest_token_reference(kc)
    return SageKV(k_int, k_scale, v_e4m3, (vamax / FP8_MAX).double(), wide.any(dim=2), k_norm)


def sage_q(q: torch.Tensor, kv: SageKV, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Q as the sage kernels multiply it, ``(values, scales)`` in float64: per-token INT8 codes and their
    scales, except in a flagged KV head (a wide K block, or a noisy query row: the kernels' fp32 test
    ``q_scale · scale · k_norm > kernels.quant.Q_NOISE_BOUND``), whose query heads the second launch
    computes with Q in its input dtype (scale 1). ``scale`` is sm_scale · log2(e)."""
    from kernels import quant

    q_int, q_scale = quant.quantize_per_token_reference(q)
    group = q.size(1) // kv.wide_heads.size(1)
    noisy = quant.noisy_heads(q_scale, kv.k_norm, scale)
    flagged = (kv.wide_heads | noisy).repeat_interleave(group, 1)[:, :, None]
    values = torch.where(flagged[..., None], q.double(), q_int.double())
    return values, torch.where(flagged, torch.ones_like(q_scale, dtype=torch.float64), q_scale.double())


def emulate_sage_fp8(q, k, v, *, causal=False, sm_scale=None, block_n: int | None = None) -> torch.Tensor:
    """Float64 emulation of ``sage_fp8`` (kernels/flash_sage_fp8.py): same quantizers, same P rounding.

    Q per token INT8 (in its input dtype in flagged heads, :func:`sage_q`); K minus its per-head mean,
    INT8 per block of ``block_n`` keys (default: the kernel's config for this shape and device); V e4m3
    per channel; per key block, with the running
    maximum ``m``: ``p = 2^(s - m + 8)`` summed unrounded into the denominator and rounded to e4m3 for
    P·V; output ``acc · v_scale / l``.
    """

    Hq, D = q.shape[1], q.shape[3]
    Hkv, Nk = k.shape[1], k.shape[2]
    if q.numel() == 0 or Nk == 0:
        return _empty_result(q)
    if block_n is None:
        block_n = _block_n_sage(q, k, True)
    scale = (1.0 / math.sqrt(D) if sm_scale is None else float(sm_scale)) * LOG2E
    kv = quantize_sage_fp8(k, v, block_n)
    q_val, q_scale = sage_q(q, kv, scale)
    group = Hq // Hkv
    acc, l_sum = sage_replay(
        q_val, q_scale, kv.k_int.repeat_interleave(group, 1), kv.k_scale.repeat_interleave(group, 1),
        kv.v_e4m3.repeat_interleave(group, 1), scale=scale, causal=causal, block_n=block_n,
        p_sum=lambda p: p, p_dot=round_e4m3,
    )  # fmt: skip
    out = acc * kv.v_scale.repeat_interleave(group, 1)[:, :, None, :]
    return out / torch.where(l_sum > 0, l_sum, torch.ones_like(l_sum))


def dequantize_sage_fp8(q, k, v, *, causal=False, sm_scale=None, pv_fp8=True):
    """float32 Q, K, V as ``sage_fp8`` sees them (K centered: softmax ignores the per-head mean; Q as
    :func:`sage_q` has it)."""
    from kernels import quant

    block_n = _block_n_sage(q, k, pv_fp8)
    if k.size(2) == 0:
        q_int, q_scale = quant.quantize_per_token_reference(q)
        return quant.dequantize_per_token(q_int, q_scale), k.float(), v.float()
    kv = quantize_sage_fp8(k, v, block_n)
    scale = (1.0 / math.sqrt(q.size(-1)) if sm_scale is None else float(sm_scale)) * LOG2E
    q_val, q_scale = sage_q(q, kv, scale)
    return (
        (q_val * q_scale[..., None]).float(),
        (kv.k_int * kv.k_scale[..., None]).float(),
        (kv.v_e4m3 * kv.v_scale[:, :, None, :]).float(),
    )


def _block_n_sage(q, k, pv_fp8: bool) -> int:
    from kernels.flash_sage_fp8 import config_for

    return config_for(q.size(-1), k.size(2), pv_fp8=pv_fp8, interpret=q.device.type != "cuda").block_n


def emulate_sage_qk_int8(q, k, v, *, causal=False, sm_scale=None, block_n: int | None = None):
    """Float64 emulation of ``sage_qk_int8``: ``sage_fp8``'s Q/K quantization, P rounded to q's dtype.

    P is rounded to q's dtype for the dot and enters the denominator unrounded for fp16, rounded for
    bf16, as the kernel does; V is used as given.
    """

    Hq, D = q.shape[1], q.shape[3]
    Hkv, Nk = k.shape[1], k.shape[2]
    if q.numel() == 0 or Nk == 0:
        return _empty_result(q)
    if block_n is None:
        block_n = _block_n_sage(q, k, False)
    scale = (1.0 / math.sqrt(D) if sm_scale is None else float(sm_scale)) * LOG2E
    kv = quantize_sage_fp8(k, v, block_n)
    q_val, q_scale = sage_q(q, kv, scale)
    group = Hq // Hkv

    def to_dtype(p: torch.Tensor) -> torch.Tensor:
        return p.float().to(q.dtype).double()

    acc, l_sum = sage_replay(
        q_val, q_scale, kv.k_int.repeat_interleave(group, 1), kv.k_scale.repeat_interleave(group, 1),
        v.double().repeat_interleave(group, 1), scale=scale, causal=causal, block_n=block_n,
        p_sum=to_dtype if q.dtype == torch.bfloat16 else (lambda p: p), p_dot=to_dtype,
    )  # fmt: skip
    return acc / torch.where(l_sum > 0, l_sum, torch.ones_like(l_sum))


def sage_replay(q_int, q_scale, k_int, k_scale, v_val, *, scale, causal, block_n, p_sum, p_dot):
    """The sage kernels' online softmax in float64, key block by key block; returns ``(acc, l)``.

    Logits ``q_int · k_int`` (Q's codes, or its values in flagged heads) times the per-token Q scale,
    the per-key K scale and ``scale``; P is ``2^(s - m + 8)`` against the running maximum ``m``;
    ``p_sum(P)`` enters the denominator and ``p_dot(P)`` multiplies ``v_val`` (the kernels' two roundings
    of P). K and V carry Q's heads.
    """
    B, Hq, Nq, _ = q_int.shape
    Nk, Dv = k_int.shape[2], v_val.shape[3]
    c_row = q_scale.double()[..., None] * scale
    q_int = q_int.double()
    m = torch.full((B, Hq, Nq, 1), -math.inf, dtype=torch.float64, device=q_int.device)
    l_sum = torch.zeros_like(m)
    acc = torch.zeros((B, Hq, Nq, Dv), dtype=torch.float64, device=q_int.device)
    for start in range(0, Nk, block_n):
        sl = slice(start, min(start + block_n, Nk))
        cols = torch.arange(sl.start, sl.stop, device=q_int.device)
        s = (q_int @ k_int[:, :, sl].transpose(-1, -2)) * c_row * k_scale[:, :, None, sl]
        s = s.masked_fill(~_causal_valid(cols, Nq, Nk, causal, q_int.device), -math.inf)
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        m_use = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
        alpha = torch.exp2(m - m_use)
        p = torch.exp2(s - m_use + 8.0)
        l_sum = l_sum * alpha + p_sum(p).sum(dim=-1, keepdim=True)
        acc = acc * alpha + p_dot(p) @ v_val[:, :, sl]
        m = m_new
    return acc, l_sum


def dequantize_sage_qk_int8(q, k, v, *, causal=False, sm_scale=None):
    """float32 Q, K, V as ``sage_qk_int8`` sees them (V unquantized)."""
    dq, dk, _ = dequantize_sage_fp8(q, k, v, causal=causal, sm_scale=sm_scale, pv_fp8=False)
    return dq, dk, v.float()
