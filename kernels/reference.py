"""Readable torch reference for attention with the exact semantics of :func:`kernels.attention`."""

from __future__ import annotations

import math

import torch


def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    sm_scale: float | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """softmax(scale · Q K^T + mask) V computed in ``dtype`` (float64 by default), returned in ``dtype``.

    Shapes as in :func:`kernels.attention`: q (B, Hq, Nq, D), k/v (B, Hkv, Nk, D), Hq % Hkv == 0;
    query head h uses key/value head h // (Hq // Hkv). ``causal`` is bottom-right aligned: query i sees
    key j iff j <= i + Nk - Nq. Rows that see no key are zero.
    """
    B, Hq, Nq, D = q.shape
    Hkv, Nk = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(D) if sm_scale is None else float(sm_scale)
    group = Hq // Hkv
    qf = q.to(dtype)
    kf = k.to(dtype).repeat_interleave(group, dim=1)
    vf = v.to(dtype).repeat_interleave(group, dim=1)
    logits = torch.matmul(qf, kf.transpose(-1, -2)) * scale
    if causal:
        i = torch.arange(Nq, device=q.device)[:, None]
        j = torch.arange(Nk, device=q.device)[None, :]
        logits = logits.masked_fill(j > i + (Nk - Nq), float("-inf"))
    row_max = logits.amax(dim=-1, keepdim=True) if Nk > 0 else logits.new_zeros((B, Hq, Nq, 1))
    # Fully masked rows have max -inf; shift by 0 there so exp gives 0 and the row stays zero.
    row_max = torch.where(torch.isinf(row_max), torch.zeros_like(row_max), row_max)
    p = torch.exp(logits - row_max)
    denom = p.sum(dim=-1, keepdim=True)
    p = p / torch.where(denom > 0, denom, torch.ones_like(denom))
    return torch.matmul(p, vf)
