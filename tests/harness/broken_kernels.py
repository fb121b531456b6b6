"""Attention kernels in plain torch for testing the fuzzer: correct ones, and many with one real bug each.

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


# ---- judged against the method's own emulation (issue 8, section 1) --------------------------------


def int8_emulate(q, k, v, *, causal=False, sm_scale=None):
    """float64 emulation of int8_honest: its per-token Q/K codes and scales, then exact attention."""
    qc, qs = _quantize_per_token(q)
    kc, ks = _quantize_per_token(k)
    hq, nq, nk = q.shape[1], q.shape[2], k.shape[2]
    qd, kd = qc.double() * qs.double(), _expand_kv(kc.double() * ks.double(), hq)
    s = (qd @ kd.transpose(-1, -2)) * _scale(q, sm_scale)
    mask = _visible(nq, nk, q.device) if causal else None
    return _softmax_av(s, _expand_kv(v.double(), hq), mask)


def int8_zeros_when_huge(q, k, v, *, causal=False, sm_scale=None):
    """Bug: an INT8 kernel whose scaled logits overflow its fp16 staging buffer on huge inputs, which it
    "handles" by returning zeros: within any accuracy budget loose enough for INT8 on that family."""
    if q.float().abs().amax() * k.float().abs().amax() > 1e6:
        return torch.zeros_like(q)
    return int8_honest(q, k, v, causal=causal, sm_scale=sm_scale)


def int8_missing_block(q, k, v, *, causal=False, sm_scale=None):
    """Bug: an INT8 kernel that skips the second key block of 32 when there are more than two (a loop
    bound off by one block): the error hides inside INT8's accuracy budget on most inputs."""
    if k.shape[2] <= 64:
        return int8_honest(q, k, v, causal=causal, sm_scale=sm_scale)
    keep = torch.ones(k.shape[2], dtype=torch.bool)
    keep[32:64] = False
    return int8_honest(q, k[:, :, keep], v[:, :, keep], causal=causal, sm_scale=sm_scale)


def int8_misscaled(q, k, v, *, causal=False, sm_scale=None):
    """Bug: dequantizes P with 1/128 where it quantized with 1/127 (output 0.8% small everywhere)."""
    return (int8_honest(q, k, v, causal=causal, sm_scale=sm_scale).float() * (127.0 / 128.0)).to(q.dtype)


# ---- one wrong row (issue 8, section 1) --------------------------------------------------------------


def last_row_misscaled(q, k, v, *, causal=False, sm_scale=None):
    """Bug: the last query row of each 64-row block uses 1.05 x the softmax scale (a tail-row index
    mix-up); every other row is right, so whole-tensor errors move by ~1/sqrt(rows) of that row's."""
    out = correct_fp32(q, k, v, causal=causal, sm_scale=sm_scale).clone()
    rows = list(range(63, q.shape[2], 64)) or [q.shape[2] - 1]
    wrong = correct_fp32(q, k, v, causal=causal, sm_scale=1.05 * _scale(q, sm_scale))
    out[:, :, rows] = wrong[:, :, rows]
    return out


# ---- the inputs users pass (issue 8, section 2) ----------------------------------------------------------


def assumes_contiguous(q, k, v, *, causal=False, sm_scale=None):
    """Bug: reads q, k, v as if they were contiguous HND (raw pointer arithmetic on the storage)."""
    qc, kc, vc = (
        torch.as_strided(t, t.shape, _contiguous_strides(t.shape), t.storage_offset()) for t in (q, k, v)
    )
    return correct_fp32(qc, kc, vc, causal=causal, sm_scale=sm_scale)


def _contiguous_strides(shape) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def keys_from_stride(q, k, v, *, causal=False, sm_scale=None):
    """Bug: takes the number of keys from K's head stride (k.stride(1) // D), true only when K is not
    the front of a longer KV cache: it then reads the cache's unused tail."""
    nk = k.stride(1) // k.shape[-1] if k.stride(1) >= k.shape[-1] * k.shape[2] else k.shape[2]
    if nk == k.shape[2]:
        return correct_fp32(q, k, v, causal=causal, sm_scale=sm_scale)
    shape = (*k.shape[:2], nk, k.shape[-1])
    kk = torch.as_strided(k, shape, k.stride(), k.storage_offset())
    vv = torch.as_strided(v, shape, v.stride(), v.storage_offset())
    return correct_fp32(q, kk, vv, causal=causal, sm_scale=sm_scale)


_workspace: dict = {}


def output_buffer_reused(q, k, v, *, causal=False, sm_scale=None):
    """Bug: writes into one cached output buffer per shape and returns it, so a second call overwrites
    the result the caller still holds."""
    key = (tuple(q.shape), q.dtype, q.device)
    if key not in _workspace:
        _workspace[key] = torch.empty_like(q)
    out = _workspace[key]
    out.copy_(correct_fp32(q, k, v, causal=causal, sm_scale=sm_scale))
    return out


def large_head_dim_truncated(q, k, v, *, causal=False, sm_scale=None):
    """Bug: head dims above 128 use only the first 128 channels of Q·K^T (silently, no error)."""
    if q.shape[-1] <= 128:
        return correct_fp32(q, k, v, causal=causal, sm_scale=sm_scale)
    scale = _scale(q, sm_scale)
    return correct_fp32(
        torch.nn.functional.pad(q[..., :128], (0, q.shape[-1] - 128)), k, v, causal=causal, sm_scale=scale
    )


def _narrow_domain_check(q, k, v) -> None:
    """The narrow domain of a typical research kernel: fp16, D in (64, 128), MHA, Nq = Nk, multiple of 64."""
    if q.dtype != torch.float16:
        raise NotImplementedError(f"only float16, got {q.dtype}")
    if q.shape[-1] not in (64, 128):
        raise ValueError(f"head dim must be 64 or 128, got {q.shape[-1]}")
    if q.shape[1] != k.shape[1]:
        raise NotImplementedError("only MHA (Hq == Hkv)")
    if q.shape[2] != k.shape[2] or q.shape[2] % 64:
        raise ValueError(f"Nq == Nk, a multiple of 64, expected; got Nq={q.shape[2]}, Nk={k.shape[2]}")


def narrow_domain(q, k, v, *, causal=False, sm_scale=None):
    """Correct inside a narrow domain (see :func:`_narrow_domain_check`), refuses everything else."""
    _narrow_domain_check(q, k, v)
    return correct_fp32(q, k, v, causal=causal, sm_scale=sm_scale)


def narrow_domain_causal_diagonal(q, k, v, *, causal=False, sm_scale=None):
    """Bug inside a narrow domain: the causal mask leaves out the diagonal (j < i instead of j <= i); the
    first row then sees no key and is zeros."""
    _narrow_domain_check(q, k, v)
    if not causal:
        return correct_fp32(q, k, v, sm_scale=sm_scale)
    n = q.shape[2]
    s = (q.float() @ k.float().transpose(-1, -2)) * _scale(q, sm_scale)
    mask = torch.arange(n)[None, :] < torch.arange(n)[:, None]
    return _softmax_av(s, v.float(), mask).to(q.dtype)


BROKEN = {
    "causal_top_left": causal_top_left,
    "ragged_block_dropped": ragged_block_dropped,
    "gqa_wrong_heads": gqa_wrong_heads,
    "sm_scale_ignored": sm_scale_ignored,
    "k_modified_in_place": k_modified_in_place,
    "nondeterministic": nondeterministic,
    "zero_scale_nan": zero_scale_nan,
    "softmax_overflow": softmax_overflow,
    "int8_zeros_when_huge": int8_zeros_when_huge,
    "int8_missing_block": int8_missing_block,
    "int8_misscaled": int8_misscaled,
    "last_row_misscaled": last_row_misscaled,
    "assumes_contiguous": assumes_contiguous,
    "keys_from_stride": keys_from_stride,
    "output_buffer_reused": output_buffer_reused,
    "large_head_dim_truncated": large_head_dim_truncated,
    "narrow_domain_causal_diagonal": narrow_domain_causal_diagonal,
}

CORRECT = {"correct_fp32": correct_fp32, "int8_honest": int8_honest, "narrow_domain": narrow_domain}

# Judged as INT8 methods (with int8_spec): accuracy budgets loose enough for INT8, plus the emulation.
INT8_KERNELS = (
    "int8_honest",
    "zero_scale_nan",
    "int8_zeros_when_huge",
    "int8_missing_block",
    "int8_misscaled",
)

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
    # As kernels/registry.py: per-token INT8 cannot be accurate at logits ~1e10; large but finite.
    "extreme": (2.0, 1.3e5),
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
        emulate=int8_emulate,
    )
