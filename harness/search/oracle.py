"""The reference every kernel is judged against: plain softmax attention in float64 (CPU) or float32 (GPU).

Semantics (those of ``kernels.attention``): HND layout, q ``(B, Hq, Nq, D)``, k and v ``(B, Hkv, Nk, D)``
with ``Hq % Hkv == 0`` and query head ``h`` reading key/value head ``h // (Hq // Hkv)``; ``sm_scale``
``None`` means ``1/sqrt(D)``; the causal mask is aligned bottom-right (query ``i`` sees key ``j`` iff
``j <= i + Nk - Nq``), and a query row that sees no key gives zeros.

The inputs are upcast exactly (float16/bfloat16 values are representable in float32 and float64), so
the oracle is computed from the very values the kernel received.
"""

from __future__ import annotations

import math

import torch

# Upper bound on the elements of one score block; queries are processed in chunks so the oracle of a
# long sequence on a GPU does not need the whole (B, H, Nq, Nk) score matrix at once.
_SCORE_BLOCK_ELEMENTS = 2**27


def default_oracle_dtype(device: torch.device | str) -> torch.dtype:
    """float64 on CPU (cheap and exact enough to ignore), float32 on GPU (float64 is slow there)."""
    return torch.float64 if torch.device(device).type == "cpu" else torch.float32


def _check_shapes(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"expected 4-d HND tensors, got q{tuple(q.shape)} k{tuple(k.shape)} v{tuple(v.shape)}"
        )
    if k.shape[:3] != v.shape[:3]:
        raise ValueError(
            f"k and v must agree in batch, heads and tokens, got {tuple(k.shape)} and {tuple(v.shape)}"
        )
    if q.shape[0] != k.shape[0] or q.shape[3] != k.shape[3]:
        raise ValueError(f"batch and head dim of q{tuple(q.shape)} and k{tuple(k.shape)} must match")
    if k.shape[1] == 0 or q.shape[1] % k.shape[1]:
        raise ValueError(f"query heads ({q.shape[1]}) must be a multiple of key/value heads ({k.shape[1]})")


def reference_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    sm_scale: float | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """softmax(q k^T * sm_scale [+ causal mask]) v in ``dtype`` (default: by device).

    Output shape ``(B, Hq, Nq, Dv)`` (the shape of q when v has q's head dim).
    """
    _check_shapes(q, k, v)
    dtype = dtype or default_oracle_dtype(q.device)
    b, hq, nq, d = q.shape
    hkv, nk = k.shape[1], k.shape[2]
    group = hq // hkv
    scale = 1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale)
    # (B, Hkv, group, N, D): query head h = kv * group + g uses kv head h // group.
    qf = q.to(dtype).reshape(b, hkv, group, nq, d)
    kf = k.to(dtype).unsqueeze(2)
    vf = v.to(dtype).unsqueeze(2)
    dv = v.shape[3]
    out = torch.zeros((b, hkv, group, nq, dv), dtype=dtype, device=q.device)
    if nq == 0 or nk == 0:
        return out.reshape(b, hq, nq, dv)
    rows = max(1, _SCORE_BLOCK_ELEMENTS // max(1, b * hq * nk))
    keys = torch.arange(nk, device=q.device)
    for start in range(0, nq, rows):
        stop = min(nq, start + rows)
        s = torch.matmul(qf[:, :, :, start:stop], kf.transpose(-1, -2)) * scale
        if causal:
            queries = torch.arange(start, stop, device=q.device)
            visible = keys[None, :] <= queries[:, None] + (nk - nq)
            s = s.masked_fill(~visible, float("-inf"))
        m = s.amax(dim=-1, keepdim=True)
        # A row that sees no key has max -inf: give it zeros instead of the NaN of -inf - -inf.
        empty = torch.isneginf(m)
        p = torch.exp(s - torch.where(empty, 0.0, m))
        denom = p.sum(dim=-1, keepdim=True)
        o = torch.matmul(p, vf) / torch.where(empty, 1.0, denom)
        out[:, :, :, start:stop] = torch.where(empty, 0.0, o)
    return out.reshape(b, hq, nq, dv)
