"""Attention kernels in plain torch for testing the fuzzer: two correct ones and eight with one real bug.

All follow the API of ``kernels.attention``: HND q ``(B, Hq, Nq, D)``, k/v ``(B, Hkv, Nk, D)``, causal
mask aligned bottom-right, rows that see no key give zeros, output in the input dtype. Each broken
kernel is the correct fp32 kernel with exactly one bug that a real low-bit kernel could ship with.
"""

from __future__ import annotations

import itertools
import math

import torch

BLOCK_N = 64


def _expand_kv(x: torch.Tensor, hq: int) -> torch.Tensor:
    """Query head h reads kv head h // (hq // hkv)."""
    return x.repeat_interleave(hq // x.shape[1], dim=1)


def _visible(nq: int, nk: int, device) -> torch.Tensor:
    """(nq, nk) boolean causal mask aligned bottom-right: query i sees key j iff j <= i + nk - nq."""
    i = torch.arange(nq, device=device)[:, None]
    j = torch.arange(nk, device=device)[None, :]
    return j <= i + (nk - nq)


def _softmax_av(s: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Row softmax of fp32 scores s (masked) times v; rows with no visible key give zeros."""
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    m = s.amax(dim=-1, keepdim=True)
    empty = torch.isneginf(m)
    p = torch.exp(s - torch.where(empty, 0.0, m))
    out = (p @ v) / torch.where(empty, 1.0, p.sum(dim=-1, keepdim=True))
    return torch.where(empty, 0.0, out)


def _scale(q: torch.Tensor, sm_scale: float | None) -> float:
    return 1.0 / math.sqrt(q.shape[-1]) if sm_scale is None else sm_scale


def correct_fp32(q, k, v, *, causal=False, sm_scale=None):
    """Correct: float32 arithmetic, output rounded once to the input dtype."""
    hq, nq, nk = q.shape[1], q.shape[2], k.shape[2]
    qf, kf, vf = q.float(), _expand_kv(k.float(), hq), _expand_kv(v.float(), hq)
    s = (qf @ kf.transpose(-1, -2)) * _scale(q, sm_scale)
    mask = _visible(nq, nk, q.device) if causal else None
    return _softmax_av(s, vf, mask).to(q.dtype)


def _quantize_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per token: x ~= codes * scale with scale = amax / 127 (1 for an all-zero token)."""
    amax = x.float().abs().amax(dim=-1, keepdim=True)
    scale = torch.where(amax > 0, amax / 127.0, 1.0)
    codes = torch.clamp(torch.round(x.float() / scale), -127, 127)
    return codes, scale


def int8_dequantize(q, k, v, *, causal=False, sm_scale=None):
    """What int8_honest computes with: Q and K after per-token int8 round trip, V unchanged (float32)."""
    qc, qs = _quantize_per_token(q)
    kc, ks = _quantize_per_token(k)
    return qc * qs, kc * ks, v.float()


def int8_honest(q, k, v, *, causal=False, sm_scale=None):
    """Correct INT8 kernel: Q and K quantized per token to int8, QK^T exact on the codes, rest fp32."""
    hq, nq, nk = q.shape[1], q.shape[2], k.shape[2]
    qc, qs = _quantize_per_token(q)
    kc, ks = _quantize_per_token(k)
    # Integer dot products of int8 codes are exact in float32 up to D * 127 * 127 < 2**24 for D <= 1024.
    s = (qc @ _expand_kv(kc, hq).transpose(-1, -2)) * qs * _expand_kv(ks, hq).transpose(-1, -2)
    s = s * _scale(q, sm_scale)
    mask = _visible(nq, nk, q.device) if causal else None
    return _softmax_av(s, _expand_kv(v.float(), hq), mask).to(q.dtype)


def causal_top_left(q, k, v, *, causal=False, sm_scale=None):
    """Bug: causal mask aligned top-left (j <= i) instead of bottom-right; wrong whenever nq != nk."""
    hq, nq, nk = q.shape[1], q.shape[2], k.shape[2]
    qf, kf, vf = q.float(), _expand_kv(k.float(), hq), _expand_kv(v.float(), hq)
    s = (qf @ kf.transpose(-1, -2)) * _scale(q, sm_scale)
    mask = None
    if causal:
        mask = torch.arange(nk, device=q.device)[None, :] <= torch.arange(nq, device=q.device)[:, None]
    return _softmax_av(s, vf, mask).to(q.dtype)


def ragged_block_dropped(q, k, v, *, causal=False, sm_scale=None):
    """Bug: keys are processed in blocks of 64 and a ragged last block is skipped."""
    n_full = (k.shape[2] // BLOCK_N) * BLOCK_N
    if n_full == 0:
        return torch.zeros_like(q)
    hq, nq = q.shape[1], q.shape[2]
    qf = q.float()
    kf, vf = _expand_kv(k.float(), hq)[:, :, :n_full], _expand_kv(v.float(), hq)[:, :, :n_full]
    s = (qf @ kf.transpose(-1, -2)) * _scale(q, sm_scale)
    mask = _visible(nq, k.shape[2], q.device)[:, :n_full] if causal else None
    return _softmax_av(s, vf, mask).to(q.dtype)


def gqa_wrong_heads(q, k, v, *, causal=False, sm_scale=None):
    """Bug: query head h reads kv head h % hkv (interleaved) instead of h // (hq // hkv)."""
    hq, hkv, nq, nk = q.shape[1], k.shape[1], q.shape[2], k.shape[2]
    kf = k.float().repeat(1, hq // hkv, 1, 1)
    vf = v.float().repeat(1, hq // hkv, 1, 1)
    s = (q.float() @ kf.transpose(-1, -2)) * _scale(q, sm_scale)
    mask = _visible(nq, nk, q.device) if causal else None
    return _softmax_av(s, vf, mask).to(q.dtype)


def sm_scale_ignored(q, k, v, *, causal=False, sm_scale=None):
    """Bug: always uses 1/sqrt(D), whatever sm_scale says."""
    return correct_fp32(q, k, v, causal=causal, sm_scale=None)


def k_modified_in_place(q, k, v, *, causal=False, sm_scale=None):
    """Bug: folds sm_scale into K in place (the caller's K changes); the output itself is right."""
    scale = _scale(q, sm_scale)
    k.mul_(scale)
    return correct_fp32(q, k, v, causal=causal, sm_scale=1.0)


_calls = itertools.count()


def nondeterministic(q, k, v, *, causal=False, sm_scale=None):
    """Bug: split-K with a split count that changes from call to call (as when it follows the number of
    idle SMs), partial outputs rounded to the input dtype before they are combined. The count alternates
    between 1 and 2, so any two consecutive calls disagree the same way."""
    splits = 1 + next(_calls) % 2
    hq, nq, nk = q.shape[1], q.shape[2], k.shape[2]
    qf, kf, vf = q.float(), _expand_kv(k.float(), hq), _expand_kv(v.float(), hq)
    s = (qf @ kf.transpose(-1, -2)) * _scale(q, sm_scale)
    if causal:
        s = s.masked_fill(~_visible(nq, nk, q.device), float("-inf"))
    bounds = [round(i * nk / splits) for i in range(splits + 1)]
    outs, lses = [], []
    for lo, hi in itertools.pairwise(bounds):
        part = s[..., lo:hi]
        lse = torch.logsumexp(part, dim=-1, keepdim=True)
        safe = torch.where(torch.isneginf(lse), 0.0, lse)
        outs.append((torch.exp(part - safe) @ vf[:, :, lo:hi]).to(q.dtype).float())
        lses.append(lse)
    lse_all = torch.logsumexp(torch.cat(lses, dim=-1), dim=-1, keepdim=True)
    safe_all = torch.where(torch.isneginf(lse_all), 0.0, lse_all)
    out = sum(o * torch.exp(lse - safe_all) for o, lse in zip(outs, lses, strict=True))
    return torch.where(torch.isneginf(lse_all), 0.0, out).to(q.dtype)


def zero_scale_nan(q, k, v, *, causal=False, sm_scale=None):
    """Bug: per-token int8 scale amax/127 is not guarded, so an all-zero K token gives 0/0 = NaN."""
    hq, nq, nk = q.shape[1], q.shape[2], k.shape[2]
    qc, qs = _quantize_per_token(q)
    amax = k.float().abs().amax(dim=-1, keepdim=True)
    ks = amax / 127.0
    kc = torch.clamp(torch.round(k.float() / ks), -127, 127)
    s = (qc @ _expand_kv(kc, hq).transpose(-1, -2)) * qs * _expand_kv(ks, hq).transpose(-1, -2)
    s = s * _scale(q, sm_scale)
    mask = _visible(nq, nk, q.device) if causal else None
    return _softmax_av(s, _expand_kv(v.float(), hq), mask).to(q.dtype)


def softmax_overflow(q, k, v, *, causal=False, sm_scale=None):
    """Bug: exp(s) without subtracting the row max; logits above ~88 overflow float32 to inf, inf/inf."""
    hq, nq, nk = q.shape[1], q.shape[2], k.shape[2]
    qf, kf, vf = q.float(), _expand_kv(k.float(), hq), _expand_kv(v.float(), hq)
    s = (qf @ kf.transpose(-1, -2)) * _scale(q, sm_scale)
    if causal:
        s = s.masked_fill(~_visible(nq, nk, q.device), float("-inf"))
    p = torch.exp(s)
    denom = p.sum(dim=-1, keepdim=True)
    return torch.where(denom == 0, 0.0, (p @ vf) / denom).to(q.dtype)


BROKEN = {
    "causal_top_left": causal_top_left,
    "ragged_block_dropped": ragged_block_dropped,
    "gqa_wrong_heads": gqa_wrong_heads,
    "sm_scale_ignored": sm_scale_ignored,
    "k_modified_in_place": k_modified_in_place,
    "nondeterministic": nondeterministic,
    "zero_scale_nan": zero_scale_nan,
    "softmax_overflow": softmax_overflow,
}

CORRECT = {"correct_fp32": correct_fp32, "int8_honest": int8_honest}

# Measured worst errors of int8_honest over a few thousand examples, with about 2x headroom. INT8 Q/K
# rounding moves every logit by up to |q||k|/127, which a saturating softmax turns into a different
# winner: hence the large "saturating", "outliers" and "extreme" budgets.
INT8_HONEST_BUDGETS = {
    "default": (0.1, 1.5),
    "gaussian": (0.1, 1.5),
    "small": (0.01, 1e-4),
    "saturating": (0.4, 10.0),
    "outliers": (0.4, 160.0),
    "degenerate": (0.1, 1.5),
    "extreme": (0.75, 1.8e5),
}


def int8_spec(fn=int8_honest, name: str = "int8_honest"):
    """A KernelSpec for an int8-style kernel (int8_honest, or zero_scale_nan to judge it fairly)."""
    from kernels.spec import ErrorBudget, KernelSpec

    return KernelSpec(
        name=name,
        launcher=fn,
        bits={"q": 8, "k": 8, "p": 32, "v": 16},
        head_dims=(16, 32, 64, 128),
        dtypes=(torch.float16, torch.bfloat16),
        budgets={family: ErrorBudget(*limits) for family, limits in INT8_HONEST_BUDGETS.items()},
        description="plain-torch INT8 Q/K reference for harness tests",
        dequantize=int8_dequantize,
    )
