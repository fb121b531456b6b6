"""Seeded input builders for the kernel tests: one generator per value-distribution family."""

from __future__ import annotations

import torch

from kernels.registry import DISTRIBUTION_FAMILIES


def _randn(gen: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=gen, dtype=torch.float32)


def make_qkv(
    family: str,
    shape_q: tuple[int, int, int, int],
    shape_kv: tuple[int, int, int, int],
    dtype: torch.dtype,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v in ``dtype`` drawn from ``family`` (one of DISTRIBUTION_FAMILIES) with ``seed``."""
    if family not in DISTRIBUTION_FAMILIES:
        raise ValueError(f"family: expected one of {DISTRIBUTION_FAMILIES}, got {family!r}")
    g = torch.Generator().manual_seed(seed)
    q, k, v = _randn(g, shape_q), _randn(g, shape_kv), _randn(g, shape_kv)
    if family == "small":
        q, k, v = q * 1e-3, k * 1e-3, v * 1e-3
    elif family == "saturating":
        # Logits with standard deviation ~16: softmax close to one-hot.
        q, k = q * 4.0, k * 4.0
    elif family == "outliers":
        # A few channels 20x larger in Q and K, a common offset on K, heavy-tailed V.
        d = shape_q[-1]
        ch = torch.randperm(d, generator=g)[: max(1, d // 16)]
        q[..., ch] *= 20.0
        k[..., ch] *= 20.0
        k = k + 3.0 * _randn(g, (*shape_kv[:2], 1, d))
        v = v * torch.exp(_randn(g, shape_kv))
    elif family == "degenerate":
        # Padding (all-zero) tokens, repeated tokens and a constant V column.
        n_k = shape_kv[2]
        if n_k > 2:
            k[:, :, n_k // 2 :] = k[:, :, :1]
            v[:, :, : n_k // 3] = 0.0
            k[:, :, -1] = 0.0
        if shape_q[2] > 1:
            q[:, :, 0] = 0.0
        v[..., 0] = 1.0
    elif family == "extreme":
        q = q.clamp(-4, 4) * 60.0
        k = k.clamp(-4, 4) * 60.0
        v = v.clamp(-4, 4) * 15000.0
    return q.to(dtype), k.to(dtype), v.to(dtype)
