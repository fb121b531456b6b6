"""Input checks shared by every attention launcher: everything is rejected in Python, before a launch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kernels.backend import interpreting

SUPPORTED_DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16)
# Head dims every shipped method supports (tile widths are powers of two; 96 runs in a 128-wide tile).
HEAD_DIMS: tuple[int, ...] = (32, 64, 96, 128, 256)


def upcast_dots(t: torch.Tensor) -> bool:
    """True when dots on ``t``'s dtype must run in fp32: the interpreter keeps bf16 as raw bits.

    The values are unchanged (bf16 -> fp32 is exact, and P is rounded to bf16 before widening), so
    the interpreter computes what the GPU computes up to fp32 summation order.
    """
    return interpreting() and t.dtype == torch.bfloat16


@dataclass(frozen=True)
class AttentionShape:
    batch: int
    heads_q: int
    heads_kv: int
    n_q: int
    n_k: int
    head_dim: int
    sm_scale: float

    @property
    def group(self) -> int:
        """Query heads per key/value head (1 for MHA, Hq for MQA)."""
        return self.heads_q // self.heads_kv


def check_attention_inputs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool,
    sm_scale: float | None,
    head_dims: tuple[int, ...],
    method: str,
) -> AttentionShape:
    """Validate the inputs of ``attention(q, k, v, causal=..., sm_scale=...)``; raise ValueError if unusable.

    Accepted: ``q`` (B, Hq, Nq, D), ``k`` and ``v`` (B, Hkv, Nk, D) torch tensors, Hq a multiple of
    Hkv, one dtype among fp16/bf16, one device, D in ``head_dims``, last dimension contiguous
    (stride 1; every other stride is free), a finite positive ``sm_scale`` or None.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(
                f"{name}: expected a 4-d tensor ({'B, Hq, Nq, D' if name == 'q' else 'B, Hkv, Nk, D'}), "
                f"got shape {tuple(t.shape)}"
            )
    if not isinstance(causal, bool):
        raise ValueError(f"causal: expected a bool, got {type(causal).__name__}")
    if q.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"q: expected dtype torch.float16 or torch.bfloat16, got {q.dtype}")
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype:
            raise ValueError(f"{name}: expected dtype {q.dtype} (same as q), got {t.dtype}")
        if t.device != q.device:
            raise ValueError(f"{name}: expected device {q.device} (same as q), got {t.device}")
    B, Hq, Nq, D = q.shape
    if k.shape != v.shape:
        raise ValueError(f"v: expected the shape of k {tuple(k.shape)}, got {tuple(v.shape)}")
    Bk, Hkv, Nk, Dk = k.shape
    if Bk != B:
        raise ValueError(f"k: expected batch size {B} (same as q), got {Bk}")
    if Dk != D:
        raise ValueError(f"k: expected head dim {D} (same as q), got {Dk}")
    if Hkv == 0 or Hq % Hkv != 0:
        raise ValueError(f"k: expected a number of heads that divides q's {Hq} (MHA, GQA or MQA), got {Hkv}")
    if D not in head_dims:
        raise ValueError(
            f"head dim: method {method!r} expected one of {', '.join(map(str, head_dims))}, got {D}"
        )
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.size(-1) > 1 and t.stride(-1) != 1:
            raise ValueError(
                f"{name}: expected the last dimension to be contiguous (stride 1), got strides {t.stride()}"
            )
    for name, t in (("k", k), ("v", v)):
        # Kernels step through keys with int32 offsets of up to 256 tokens times the token stride.
        if t.size(2) > 1 and t.stride(2) * 256 >= 2**31:
            raise ValueError(
                f"{name}: expected a token stride (dim 2) below {2**31 // 256}, got {t.stride(2)}"
            )
    if sm_scale is None:
        scale = 1.0 / math.sqrt(D)
    else:
        if isinstance(sm_scale, bool) or not isinstance(sm_scale, (int, float)):
            raise ValueError(f"sm_scale: expected a float or None, got {type(sm_scale).__name__}")
        scale = float(sm_scale)
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"sm_scale: expected a finite positive number, got {sm_scale}")
    if q.device.type != "cuda" and not interpreting():
        raise ValueError(
            "q: expected a CUDA tensor (or TRITON_INTERPRET=1 for the CPU interpreter), "
            f"got device {q.device}"
        )
    return AttentionShape(B, Hq, Hkv, Nq, Nk, D, scale)


def check_quantizer_operand(x: torch.Tensor, name: str) -> None:
    """ValueError unless ``x`` is a 4-d (B, H, N, D) fp16, bf16 or fp32 tensor with a contiguous last
    dimension: what the Triton quantizers (``kernels.quant``, ``kernels.group_quant``) read."""
    if x.dim() != 4:
        raise ValueError(f"{name}: expected a 4-d tensor (B, H, N, D), got shape {tuple(x.shape)}")
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"{name}: expected dtype float16, bfloat16 or float32, got {x.dtype}")
    if x.size(-1) > 1 and x.stride(-1) != 1:
        raise ValueError(f"{name}: expected the last dimension to be contiguous (stride 1), got {x.stride()}")
