"""Value distributions a low-bit attention kernel meets in real models, built from a seed alone.

Every distribution is a function ``make(g, q_shape, k_shape, v_shape) -> (q, k, v)`` that draws float32
CPU tensors from the ``torch.Generator`` ``g`` and nothing else, so one seed gives the same tensors on
any machine. Shapes are HND: ``(batch, heads, tokens, head_dim)``; ``k`` and ``v`` may have fewer heads
than ``q`` (GQA/MQA), query head ``h`` reading key/value head ``h // (hq // hkv)``.

Each concrete distribution belongs to one family of :data:`kernels.registry.DISTRIBUTION_FAMILIES`;
budgets are declared per family. Magnitudes stay below :data:`FP16_SAFE_MAX` by construction, so every
value is finite after the cast to float16 or bfloat16.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Shape = tuple[int, int, int, int]
Tensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
Maker = Callable[[torch.Generator, Shape, Shape, Shape], Tensors]

# Largest magnitude any distribution produces. float16's largest finite value is 65504; staying a
# little below it keeps a value finite after rounding to float16 (and to bfloat16, whose range is wider).
FP16_SAFE_MAX = 60000.0


def _randn(g: torch.Generator, shape: Shape) -> torch.Tensor:
    return torch.randn(shape, generator=g)


def _uniform(g: torch.Generator, lo: float, hi: float, shape: tuple[int, ...] = ()) -> torch.Tensor:
    return torch.rand(shape, generator=g) * (hi - lo) + lo


def _scalar(g: torch.Generator, lo: float, hi: float) -> float:
    return float(_uniform(g, lo, hi))


def _log_scalar(g: torch.Generator, lo: float, hi: float) -> float:
    return math.exp(_scalar(g, math.log(lo), math.log(hi)))


def _token_mask(g: torch.Generator, shape: Shape, fraction: float) -> torch.Tensor:
    """Boolean (batch, heads, tokens, 1) mask selecting about ``fraction`` of the tokens."""
    return torch.rand((*shape[:3], 1), generator=g) < fraction


def gaussian(g, qs, ks, vs):
    return _randn(g, qs), _randn(g, ks), _randn(g, vs)


def uniform(g, qs, ks, vs):
    # U(-sqrt(3), sqrt(3)) has unit variance, like the Gaussian case.
    r = math.sqrt(3.0)
    return _uniform(g, -r, r, qs), _uniform(g, -r, r, ks), _uniform(g, -r, r, vs)


def gaussian_tiny(g, qs, ks, vs):
    # Tiny magnitudes everywhere: logits near zero (attention almost uniform), float16 Q/K partly
    # subnormal, and outputs of order 1e-4..1e-3.
    s = _log_scalar(g, 1e-4, 1e-2)
    sv = _log_scalar(g, 1e-4, 1e-3)
    return _randn(g, qs) * s, _randn(g, ks) * s, _randn(g, vs) * sv


def gaussian_large(g, qs, ks, vs):
    # With the default scale 1/sqrt(D), logits q.k/sqrt(D) have standard deviation s**2: pick s so the
    # logit spread runs from "sharp" (5) to "one-hot" (100).
    s = math.sqrt(_log_scalar(g, 5.0, 100.0))
    return _randn(g, qs) * s, _randn(g, ks) * s, _randn(g, vs)


def attention_sink(g, qs, ks, vs):
    # Like trained LLMs: every query has a large dot product with the first key, whose value is small.
    q, k, v = _randn(g, qs), _randn(g, ks), _randn(g, vs)
    d = qs[-1]
    u = _randn(g, (1, 1, 1, d))
    u = u / u.norm()
    a = _scalar(g, 2.0, 4.0)
    logit = _scalar(g, 8.0, 30.0)
    q = q + a * u
    k[:, :, 0, :] = (u * (logit * math.sqrt(d) / a)).reshape(1, 1, d)
    v[:, :, 0, :] *= 0.1
    return q, k, v


def peaked(g, qs, ks, vs):
    # One-hot attention: each query is a scaled copy of one key (of its own kv head).
    k, v = _randn(g, ks), _randn(g, vs)
    b, hq, nq, d = qs
    hkv, nk = ks[1], ks[2]
    group = hq // hkv
    pick = torch.randint(0, nk, (b, hkv, nq), generator=g)
    chosen = torch.gather(k, 2, pick.unsqueeze(-1).expand(b, hkv, nq, d))
    # Scaled so that, at the default scale 1/sqrt(D), the chosen key's logit is c.
    c = _scalar(g, 10.0, 40.0)
    sq = chosen.pow(2).sum(dim=-1, keepdim=True).clamp_min(1e-6)
    q = (chosen * (c * math.sqrt(d) / sq)).repeat_interleave(group, dim=1)
    q = q + 0.05 * _randn(g, qs)
    return q, k, v


def heavy_tailed(g, qs, ks, vs):
    # Symmetric Pareto tails with index alpha in [1.5, 3]: a few entries are orders of magnitude larger
    # than the rest. Capped (Q/K at 1000, V at 100) so that products stay far from overflow.
    alpha = _scalar(g, 1.5, 3.0)

    def draw(shape, cap):
        u = torch.rand(shape, generator=g).clamp_min(1e-12)
        sign = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0)
        return (sign * (u.pow(-1.0 / alpha) - 1.0)).clamp(-cap, cap)

    return draw(qs, 1000.0), draw(ks, 1000.0), draw(vs, 100.0)


def channel_outliers(g, qs, ks, vs):
    # LLM-like: a few fixed channels of Q and K are much larger than the others, in every token.
    q, k, v = _randn(g, qs), _randn(g, ks), _randn(g, vs)
    d = qs[-1]
    m = int(torch.randint(1, min(4, d) + 1, (), generator=g))
    channels = torch.randperm(d, generator=g)[:m]
    f = _log_scalar(g, 5.0, 30.0)
    q[..., channels] *= f
    k[..., channels] *= f
    return q, k, v


def token_outliers(g, qs, ks, vs):
    # A few tokens of Q, K and V are much larger than the rest.
    q, k, v = _randn(g, qs), _randn(g, ks), _randn(g, vs)
    f = _log_scalar(g, 5.0, 20.0)
    q = torch.where(_token_mask(g, qs, 0.05), q * f, q)
    k = torch.where(_token_mask(g, ks, 0.05), k * f, k)
    v = torch.where(_token_mask(g, vs, 0.05), v * f, v)
    return q, k, v


def head_scales(g, qs, ks, vs):
    # Each head lives at its own scale, as after per-head norms of different strength.
    q, k, v = _randn(g, qs), _randn(g, ks), _randn(g, vs)
    q = q * torch.pow(10.0, _uniform(g, -2.0, 1.0, (1, qs[1], 1, 1)))
    k = k * torch.pow(10.0, _uniform(g, -2.0, 1.0, (1, ks[1], 1, 1)))
    v = v * torch.pow(10.0, _uniform(g, -1.0, 1.0, (1, vs[1], 1, 1)))
    return q, k, v


def constant_tokens(g, qs, ks, vs):
    # Every key (and value) token is the same vector: attention is exactly uniform.
    q = _randn(g, qs)
    k = _randn(g, (*ks[:2], 1, ks[3])).expand(ks).contiguous()
    v = _randn(g, (*vs[:2], 1, vs[3])).expand(vs).contiguous()
    return q, k, v


def repeated_tokens(g, qs, ks, vs):
    # Keys and values are drawn from a handful of distinct tokens: exact ties between logits.
    q = _randn(g, qs)
    r = int(torch.randint(1, 5, (), generator=g))
    idx = torch.randint(0, r, (ks[2],), generator=g)
    k = _randn(g, (*ks[:2], r, ks[3]))[:, :, idx, :].contiguous()
    v = _randn(g, (*vs[:2], r, vs[3]))[:, :, idx, :].contiguous()
    return q, k, v


def zero_tokens(g, qs, ks, vs):
    # Padding: some tokens of Q, K and V are exactly zero; with luck every key of a head is.
    q, k, v = _randn(g, qs), _randn(g, ks), _randn(g, vs)
    frac = _scalar(g, 0.1, 0.6)
    pad_kv = _token_mask(g, ks, frac)
    q = torch.where(_token_mask(g, qs, frac), 0.0, q)
    k = torch.where(pad_kv, 0.0, k)
    v = torch.where(pad_kv, 0.0, v)
    return q, k, v


def fp16_limit(g, qs, ks, vs):
    # V's largest entry lies between half the float16 limit and FP16_SAFE_MAX; Q and K reach anywhere
    # from 16 (large but ordinary logits) up to the limit too (astronomic logits, exactly one-hot).
    def scaled(shape, top):
        x = _randn(g, shape)
        return x * (top / x.abs().max().clamp_min(1e-6))

    qk_top = _log_scalar(g, 16.0, FP16_SAFE_MAX)
    v_top = _scalar(g, 0.5, 1.0) * FP16_SAFE_MAX
    return scaled(qs, qk_top), scaled(ks, qk_top), scaled(vs, v_top)


# Concrete distribution name -> (family, maker). The order is the order Hypothesis shrinks towards.
DISTRIBUTIONS: dict[str, tuple[str, Maker]] = {
    "gaussian": ("gaussian", gaussian),
    "uniform": ("gaussian", uniform),
    "gaussian_tiny": ("small", gaussian_tiny),
    "gaussian_large": ("saturating", gaussian_large),
    "attention_sink": ("saturating", attention_sink),
    "peaked": ("saturating", peaked),
    "heavy_tailed": ("outliers", heavy_tailed),
    "channel_outliers": ("outliers", channel_outliers),
    "token_outliers": ("outliers", token_outliers),
    "head_scales": ("outliers", head_scales),
    "constant_tokens": ("degenerate", constant_tokens),
    "repeated_tokens": ("degenerate", repeated_tokens),
    "zero_tokens": ("degenerate", zero_tokens),
    "fp16_limit": ("extreme", fp16_limit),
}

DISTRIBUTION_NAMES: tuple[str, ...] = tuple(DISTRIBUTIONS)


def family_of(distribution: str) -> str:
    """The budget family of a concrete distribution name; ValueError for an unknown name."""
    try:
        return DISTRIBUTIONS[distribution][0]
    except KeyError:
        raise ValueError(
            f"unknown distribution {distribution!r}: expected one of {', '.join(DISTRIBUTION_NAMES)}"
        ) from None


def draw_tensors(distribution: str, seed: int, q_shape: Shape, k_shape: Shape, v_shape: Shape) -> Tensors:
    """Float32 CPU tensors of ``distribution`` from ``seed`` alone, clamped to finite float16 range."""
    family_of(distribution)
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    q, k, v = DISTRIBUTIONS[distribution][1](g, q_shape, k_shape, v_shape)
    return tuple(t.float().clamp(-FP16_SAFE_MAX, FP16_SAFE_MAX).contiguous() for t in (q, k, v))
