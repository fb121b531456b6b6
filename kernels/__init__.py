"""Triton attention kernels: an fp16/bf16 FlashAttention-2 baseline and INT8 FlashAttention variants.

Public API::

    from kernels import attention
    o = attention(q, k, v, causal=False, sm_scale=None, method="int8")

Methods are listed in :data:`REGISTRY` (see :mod:`kernels.registry`); quantizers live in
:mod:`kernels.quant`.
"""

from __future__ import annotations

import importlib

import torch

from kernels.registry import REGISTRY, get_spec


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    sm_scale: float | None = None,
    method: str = "int8",
) -> torch.Tensor:
    """softmax(sm_scale · Q K^T [+ causal mask]) · V with the Triton kernel of ``method``.

    * ``q``: (B, Hq, Nq, D); ``k``, ``v``: (B, Hkv, Nk, D) with Hq % Hkv == 0 (MHA, GQA, MQA);
      query head h reads key/value head h // (Hq // Hkv).
    * dtype float16 or bfloat16, the same for all three; one device (CUDA, or CPU under
      ``TRITON_INTERPRET=1``); D among the method's head dims (all methods: 32, 64, 96, 128, 256).
    * Only the last dimension must be contiguous (stride 1); any other strides are read in place.
      A tensor whose last stride is not 1 raises ValueError (call ``.contiguous()`` first).
    * ``sm_scale`` defaults to 1/sqrt(D). ``causal`` is bottom-right aligned: query i sees key j
      iff j <= i + Nk - Nq. A query row that sees no key is zero, as is every row when Nk == 0;
      Nq == 0 returns an empty tensor.
    * Returns a new contiguous (B, Hq, Nq, D) tensor in q's dtype. Inputs are never modified; the
      same inputs give bit-identical outputs (no atomics, fixed tiles).

    Unknown ``method`` or any unsupported input raises ValueError naming what was expected; there
    is no fallback to another method.
    """
    spec = get_spec(method)
    return spec.fn(q, k, v, causal=causal, sm_scale=sm_scale)


def __getattr__(name: str):
    # Triton kernels bind to a backend when first imported: ``kernels.quant`` loads only when used.
    if name == "quant":
        return importlib.import_module("kernels.quant")
    raise AttributeError(f"module 'kernels' has no attribute {name!r}")


__all__ = ["REGISTRY", "attention", "get_spec", "quant"]
