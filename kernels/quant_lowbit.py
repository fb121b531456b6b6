"""Group-wise 4- and 8-bit quantization along the head dim, and the nibble packing the kernels unpack.

One layout serves the INT4 attention methods and the low-bit KV cache:

* Every token's D values are cut into groups of ``group`` consecutive channels (``d // group``). Each
  group gets a scale and an offset, and a value is stored as an unsigned code ``c`` with
  ``x ≈ c · scale + offset``:

  - asymmetric (min/max): ``scale = (max - min) / (2^bits - 1)``, ``offset = min``, codes 0..2^bits-1;
  - symmetric (absmax): ``scale = absmax / (2^(bits-1) - 1)``, ``offset = -2^(bits-1) · scale``, codes
    1..2^bits-1 (the signed code plus 2^(bits-1)), so one dequantization formula covers both.

* Scales and offsets are stored in bfloat16: fp32 range (an fp16 offset overflows once K smoothing
  shifts values near the fp16 limit) at half the bytes of fp32, which matters in a decode that is
  bound by the bytes it reads. The offset is rounded down and the scale up, and codes are computed
  against the *rounded* values, so the bf16 metadata costs no accuracy: every element is within half
  a (stored) step of its value.
* A group whose values are all equal has span 0: it gets scale 0 and code 0, and dequantizes to its
  (bf16-rounded) offset; nothing divides by zero.
* 4-bit codes are packed two per byte, **by halves**: byte ``j`` of a token holds channel ``j`` in its
  low nibble and channel ``j + D/2`` in its high nibble. A kernel then unpacks one loaded byte tile into
  the two contiguous half tiles ``[0, D/2)`` and ``[D/2, D)`` with a mask and a shift (no interleaving
  shuffle), and splits every dot over D into two dots over D/2. Any even D works (96 included).

Everything here is plain torch, the reference: quantizing runs once per call (prefill) or once per
cache, not in the attention loop; the INT4 prefill methods and ``quantize_kv`` launch
:mod:`kernels.group_quant`, the same bits in one kernel per operand. ``center`` (K smoothing) is
subtracted in fp32 from a copy; the caller's tensor is read only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

META_DTYPE = torch.bfloat16


@dataclass(frozen=True)
class GroupQuantized:
    """Codes and per-group metadata of a (…, N, D) tensor.

    ``codes``: uint8, (…, N, D/2) packed by halves for 4 bits, (…, N, D) for 8 bits, contiguous.
    ``meta``: bfloat16 (…, N, D/group, 2), contiguous: each group's (scale, offset) side by side, so a
    kernel fetches both with one load. ``x ≈ code · scale + offset``.
    """

    codes: torch.Tensor
    meta: torch.Tensor
    bits: int
    group: int
    head_dim: int

    @property
    def scale(self) -> torch.Tensor:
        """(…, N, D/group) bf16 view of the scales."""
        return self.meta[..., 0]

    @property
    def offset(self) -> torch.Tensor:
        """(…, N, D/group) bf16 view of the offsets."""
        return self.meta[..., 1]


def check_group(head_dim: int, group: int, bits: int) -> None:
    if bits not in (4, 8):
        raise ValueError(f"bits: expected 4 or 8, got {bits!r}")
    if isinstance(group, bool) or not isinstance(group, int) or group <= 0:
        raise ValueError(f"group: expected a positive int, got {group!r}")
    if head_dim % group != 0 or head_dim % 2 != 0:
        raise ValueError(f"group: expected a divisor of the (even) head dim {head_dim}, got {group}")


def default_group(head_dim: int, bits: int) -> int:
    """32 channels per group at 4 bits; 64 at 8 bits where D allows (smaller metadata, error ~4e-3)."""
    if bits == 8 and head_dim % 64 == 0:
        return 64
    return 32 if head_dim % 32 == 0 else head_dim


def quantize_groups(
    x: torch.Tensor,
    *,
    bits: int,
    group: int,
    symmetric: bool = False,
    center: torch.Tensor | None = None,
) -> GroupQuantized:
    """Quantize ``x`` (…, N, D) per token and per group of ``group`` channels (see the module doc).

    ``center``, if given, is broadcast against ``x`` (e.g. (…, 1, D)) and subtracted in fp32 first.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        raise ValueError(f"x: expected a tensor (…, N, D), got {type(x).__name__}")
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise ValueError(f"x: expected a floating dtype, got {x.dtype}")
    D = x.size(-1)
    check_group(D, group, bits)
    # fp32 is exact for the group statistics of fp16/bf16 inputs (min, max, absmax are input values).
    xf = x.float() if center is None else x.float() - center.float()
    xg = xf.reshape(*xf.shape[:-1], D // group, group)
    top = (1 << bits) - 1
    # Divisions by tensors, not Python scalars: on CUDA torch divides by a scalar as a multiply by its
    # reciprocal (rounded twice), on the CPU it divides; a tensor divisor is a correctly rounded division
    # on both, as in kernels.group_quant.
    if symmetric:
        half = 1 << (bits - 1)
        amax = xg.abs().amax(dim=-1)
        scale = _round_meta(amax / torch.full_like(amax, half - 1), up=True)
        # -half * scale is exact in bf16 (a power-of-two multiple).
        offset = (-half * scale.float()).to(META_DTYPE)
    else:
        lo, hi = xg.aminmax(dim=-1)
        offset = _round_meta(lo, up=False)
        span = hi - offset.float()
        scale = _round_meta(span / torch.full_like(span, top), up=True)
    s = scale.float()[..., None]
    inv = torch.where(s > 0, 1.0 / torch.where(s > 0, s, 1.0), 0.0)
    codes = torch.round((xg - offset.float()[..., None]) * inv)
    codes = codes.clamp(0, top).to(torch.uint8).reshape(xf.shape)
    if bits == 4:
        # Codes are in 0..15 by construction: pack without pack_int4's check (a host sync).
        half_d = D // 2
        codes = codes[..., :half_d] | (codes[..., half_d:] << 4)
    return GroupQuantized(codes.contiguous(), torch.stack([scale, offset], dim=-1), bits, group, D)


def _round_meta(x: torch.Tensor, *, up: bool) -> torch.Tensor:
    """fp32 ``x`` rounded to bf16 towards +inf (``up``) or -inf.

    Offsets round down and scales up, so the grid ``offset + scale · [0, top]`` still covers the group:
    no code is clamped and every element stays within half a step. Rounding to nearest instead moves
    the top of an 8-bit grid by up to 255 · 2^-9 ≈ half a step. bf16 is the top half of an fp32: drop
    the low 16 bits (rounding towards zero), then step one bf16 ulp away from zero where bits were
    dropped and zero was the wrong direction.
    """
    bits = x.float().contiguous().view(torch.int32)
    kept = bits & -65536
    away = (bits != kept) & ((x > 0) if up else (x < 0))
    return (kept + away.to(torch.int32) * 65536).view(torch.float32).to(META_DTYPE)


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """uint8 codes 0..15 (…, D) → (…, D/2) bytes: channel j low nibble, channel j + D/2 high nibble."""
    if codes.dtype != torch.uint8 or codes.size(-1) % 2 != 0:
        raise ValueError(
            f"codes: expected uint8 with an even last dim, got {codes.dtype} {tuple(codes.shape)}"
        )
    if codes.numel() and int(codes.max()) > 15:
        raise ValueError("codes: expected values in 0..15 for 4-bit packing")
    half = codes.size(-1) // 2
    return codes[..., :half] | (codes[..., half:] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: (…, D/2) bytes → (…, D) uint8 codes 0..15."""
    if packed.dtype != torch.uint8:
        raise ValueError(f"packed: expected uint8, got {packed.dtype}")
    return torch.cat([packed & 15, packed >> 4], dim=-1)


def dequantize_groups(qx: GroupQuantized, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The values ``code · scale + offset`` that ``qx`` stands for, in ``dtype`` (float64 by default)."""
    codes = unpack_int4(qx.codes) if qx.bits == 4 else qx.codes
    shape = codes.shape
    cg = codes.to(dtype).reshape(*shape[:-1], qx.head_dim // qx.group, qx.group)
    x = cg * qx.scale.to(dtype)[..., None] + qx.offset.to(dtype)[..., None]
    return x.reshape(shape)


__all__ = [
    "META_DTYPE",
    "GroupQuantized",
    "check_group",
    "default_group",
    "dequantize_groups",
    "pack_int4",
    "quantize_groups",
    "unpack_int4",
]
