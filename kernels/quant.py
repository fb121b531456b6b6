"""Symmetric INT8 quantizers for attention operands, as Triton kernels with readable torch references.

Two layouts are used by the INT8 attention kernels:

* per token (Q and K): every row ``x[b, h, n, :]`` gets one scale ``absmax / 127`` and is rounded to
  the nearest integer in [-127, 127]. One pass: each program loads a tile of tokens, reduces the
  absolute maximum, scales, rounds, clamps and stores.
* per channel (V): every column ``x[b, h, :, d]`` gets one scale ``absmax / 127`` over the tokens of
  its head. Two passes over the head (absmax, then quantize). The INT8 values are stored transposed,
  ``(B, H, D, N)`` in memory, and returned as a ``(B, H, N, D)`` view of that storage, because the
  P·V product reads V with the token index as the contiguous (reduction) dimension.

All-zero rows or columns (padding tokens) have ``absmax == 0``. They get scale 0 and quantized values
0, so dequantization gives exact zeros and nothing divides by zero.

Per-token quantization can optionally subtract a per-(b, h) ``center`` vector before quantizing
(K smoothing): the caller's tensor is only read, the subtraction happens in registers.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels._validate import check_quantizer_operand
from kernels.backend import interpreting

QMAX = 127.0
# A KV head whose queries per-token INT8 would blur ("noisy"; every method with per-token INT8 Q):
# rounding row i to steps of q_scale_i moves each element by up to half a step, uniformly, so a logit
# against key j moves by about c_i · |k_j| / sqrt(12) in log2 units (c_i = q_scale_i · sm_scale · log2(e),
# |k_j| the L2 norm of the (smoothed) key). Where the head's largest row factor times its longest key
# gives more than Q_NOISE_MAX (weights off by a factor ~2^4), the kernels compute that KV head with Q in
# its input dtype against the same INT8 K codes (a second launch over the flagged heads). In float64
# emulation, Pareto-tailed queries against 31 keys went from rel-L2 0.59 to 0.04; over the harness's
# distributions, Gaussian heads measured at most 0.02 and channel-outlier ones (up to 30x) 3.4, so
# neither is flagged (docs/perf.md "v15"). The kernels test c_i · |k| > Q_NOISE_BOUND in fp32, as
# :func:`noisy_heads` does.
Q_NOISE_MAX = 4.0
Q_NOISE_BOUND = tl.constexpr(Q_NOISE_MAX * 12.0**0.5)
# What that test bounds: in a head it does not flag, no logit of the INT8 methods with per-block K scales
# reaches 2^15 in log2 units. |q8_i| <= 127 sqrt(D); a dequantized key is within sqrt(D) / 2 steps of the
# (smoothed) key, a step at most 1/127 of the longest key |k|, so at most (1 + sqrt(D) / 254) |k|; and
# c_i · |k| <= Q_NOISE_BOUND. So |raw · c| <= 127 sqrt(D) (1 + sqrt(D) / 254) · Q_NOISE_BOUND, 29,930 at
# head dim 256. There an fp32 ulp is at most 2^-9, so a first launch may form the exponent as one FMA,
# raw · c + (shift - mr · c): at the row maximum it is off by at most 2^-9 (weights by 0.14 %, the same
# factor for every key of the block), never overflowing or vanishing. Flagged heads, whose logits may be
# huge, are redone by the second launch with the exact form (raw - mr) · c + shift.
UNFLAGGED_LOGIT_MAX = 2.0**15


@triton.jit
def sage_exponent(raw, mr, bmax, c, shift, ONE_FMA: tl.constexpr):
    """The sage kernels' exp2 argument for a key block: ``raw`` the (BLOCK_M, BLOCK_N) dots, ``mr`` their
    row maxima, ``bmax`` = ``mr · c``, ``c`` the row factors, ``shift`` the block's offset. Exact form
    ``(raw - mr) · c + shift`` (exactly ``shift`` at the maximum however the compiler contracts), or with
    ``ONE_FMA`` ``raw · c + (shift - bmax)``, off by at most 2^-9 at the maximum in heads whose logits
    stay below :data:`UNFLAGGED_LOGIT_MAX` (a first launch's, never a flagged head's)."""
    if ONE_FMA:
        x = raw.to(tl.float32) * c[:, None] + (shift - bmax)[:, None]
    else:
        x = (raw - mr[:, None]).to(tl.float32) * c[:, None] + shift[:, None]
    return x


@triton.jit
def round_per_token_int8(x):
    """Symmetric INT8 per row of the fp32 tile ``x``: ``(codes, scale)``, int8 codes and fp32
    ``amax / 127`` with ``x ≈ codes * scale[:, None]``. The rounding every per-token INT8 quantizer of
    the kernels shares (this module's launch, and the sage kernels' Q)."""
    amax = tl.max(tl.abs(x), axis=1)
    # Guard: an all-zero row gets scale 0 and multiplier 0, so it quantizes to zeros (no 0/0).
    inv = tl.where(
        amax > 0, tl.math.div_rn(tl.full(amax.shape, 127.0, tl.float32), tl.where(amax > 0, amax, 1.0)), 0.0
    )
    q = x * inv[:, None]
    # Round half away from zero, then clamp (|q| <= 127 already holds up to rounding of inv).
    q = tl.where(q >= 0, tl.floor(q + 0.5), -tl.floor(-q + 0.5))
    q = tl.minimum(tl.maximum(q, -127.0), 127.0)
    return q.to(tl.int8), tl.math.div_rn(amax, tl.full(amax.shape, 127.0, tl.float32))


@triton.jit
def load_round_per_token_int8(X, stride_row, rows, n_rows, cols, n_cols):
    """Rows ``rows`` of the (n_rows, n_cols) fp16/bf16 operand at ``X`` (row stride ``stride_row``, unit
    column stride) read as fp32, zeros past ``n_rows`` and ``n_cols``, then :func:`round_per_token_int8`:
    the sage kernels' Q tile (the TMA path's Q launch and the pointer kernel's prologue)."""
    x = tl.load(
        X + rows[:, None].to(tl.int64) * stride_row + cols[None, :],
        mask=(rows[:, None] < n_rows) & (cols[None, :] < n_cols),
        other=0.0,
    ).to(tl.float32)
    return round_per_token_int8(x)


@triton.jit
def flag_noisy_rows(FLAGS, KN, bh_kv, c):
    """Raise the int32 ``FLAGS[bh_kv]`` to 1 if some row factor ``c`` (q_scale · sm_scale · log2(e)) times
    the KV head's longest key ``KN[bh_kv]`` passes :data:`Q_NOISE_BOUND`: the fp32 test
    :func:`noisy_heads` replays. Relaxed: only a later launch reads the flag, and an acq_rel atomic (the
    default) held back the first loads of the loop after it."""
    noisy = tl.max(c * tl.load(KN + bh_kv), axis=0) > Q_NOISE_BOUND
    tl.atomic_max(FLAGS + bh_kv, 1, mask=noisy, sem="relaxed")


@triton.jit
def load_q_as_given(X, stride_row, rows, n_rows, cols, n_cols, qk_scale, UPCAST: tl.constexpr):
    """``(q, c)`` for a noisy or wide head's second launch: rows ``rows`` of the (n_rows, n_cols) operand
    at ``X`` (row stride ``stride_row``, unit column stride) in its own dtype (fp32 with ``UPCAST``, the
    interpreter's bf16), zeros past ``n_rows`` and ``n_cols``, and the row factor ``qk_scale`` (sm_scale
    · log2(e)) for every row, as :func:`load_round_per_token_int8` gives codes and factors."""
    x = tl.load(
        X + rows[:, None].to(tl.int64) * stride_row + cols[None, :],
        mask=(rows[:, None] < n_rows) & (cols[None, :] < n_cols),
        other=0.0,
    )
    if UPCAST:
        x = x.to(tl.float32)
    return x, tl.full(rows.shape, qk_scale, tl.float32)


@triton.jit
def _quantize_per_token_kernel(
    X,
    C,
    Y,
    S,
    stride_xb,
    stride_xh,
    stride_xn,
    H,
    N,
    D,
    NUM_T_BLOCKS,
    KN,
    HAS_CENTER: tl.constexpr,
    HAS_NORM: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    # Flat grid on axis 0 (up to 2^31 - 1 programs; axes 1 and 2 stop at 65535).
    pid = tl.program_id(0)
    pid_t = pid % NUM_T_BLOCKS
    bh = (pid // NUM_T_BLOCKS).to(tl.int64)
    b = bh // H
    h = bh % H
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (offs_t[:, None] < N) & (offs_d[None, :] < D)
    x_ptrs = X + b * stride_xb + h * stride_xh + offs_t[:, None].to(tl.int64) * stride_xn + offs_d[None, :]
    # Work in fp32: the interpreter keeps bf16 as raw bits, and the rounding below must be exact.
    x = tl.load(x_ptrs, mask=mask, other=0.0).to(tl.float32)
    if HAS_CENTER:
        c = tl.load(C + bh * D + offs_d, mask=offs_d < D, other=0.0)
        x = tl.where(mask, x - c[None, :], 0.0)
    q, scale = round_per_token_int8(x)
    y_ptrs = Y + bh * N * D + offs_t[:, None].to(tl.int64) * D + offs_d[None, :]
    tl.store(y_ptrs, q, mask=mask)
    tl.store(S + bh * N + offs_t, scale, mask=offs_t < N)
    if HAS_NORM:
        # The head's longest (centered) token, L2, for the attention kernels' noisy-head test.
        tl.atomic_max(KN + bh, tl.sqrt(tl.max(tl.sum(x * x, axis=1), axis=0)), sem="relaxed")


@triton.jit
def _quantize_per_channel_kernel(
    X,
    Y,
    S,
    stride_xb,
    stride_xh,
    stride_xn,
    H,
    N,
    D,
    NUM_D_BLOCKS,
    BLOCK_T: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0)
    pid_d = pid % NUM_D_BLOCKS
    bh = (pid // NUM_D_BLOCKS).to(tl.int64)
    b = bh // H
    h = bh % H
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_t = tl.arange(0, BLOCK_T)
    x_base = X + b * stride_xb + h * stride_xh
    amax = tl.zeros([BLOCK_D], dtype=tl.float32)
    for start in range(0, N, BLOCK_T):
        t = start + offs_t
        mask = (t[:, None] < N) & (offs_d[None, :] < D)
        x = tl.load(x_base + t[:, None].to(tl.int64) * stride_xn + offs_d[None, :], mask=mask, other=0.0)
        amax = tl.maximum(amax, tl.max(tl.abs(x.to(tl.float32)), axis=0))
    inv = tl.where(
        amax > 0, tl.math.div_rn(tl.full(amax.shape, 127.0, tl.float32), tl.where(amax > 0, amax, 1.0)), 0.0
    )
    # Output storage is (B, H, D, N): token index contiguous.
    y_base = Y + bh * N * D
    for start in range(0, N, BLOCK_T):
        t = start + offs_t
        mask = (t[:, None] < N) & (offs_d[None, :] < D)
        x = tl.load(x_base + t[:, None].to(tl.int64) * stride_xn + offs_d[None, :], mask=mask, other=0.0)
        q = x.to(tl.float32) * inv[None, :]
        q = tl.where(q >= 0, tl.floor(q + 0.5), -tl.floor(-q + 0.5))
        q = tl.minimum(tl.maximum(q, -127.0), 127.0)
        tl.store(y_base + offs_d[None, :].to(tl.int64) * N + t[:, None], q.to(tl.int8), mask=mask)
    tl.store(
        S + bh * D + offs_d, tl.math.div_rn(amax, tl.full(amax.shape, 127.0, tl.float32)), mask=offs_d < D
    )


def quantize_per_token(
    x: torch.Tensor, center: torch.Tensor | None = None, *, norm_out: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize ``x`` (B, H, N, D) to INT8 with one symmetric scale per token.

    ``x`` is fp16, bf16 or fp32 with a contiguous last dimension (other strides are free).
    ``center``, if given, is a float32 (B, H, D) tensor subtracted from every token first.
    ``norm_out``, if given, a contiguous float32 (B, H) tensor of zeros on x's device: each entry is
    raised to the L2 norm of its head's longest (centered) token, in fp32 (:func:`noisy_heads`).
    Returns ``(x_int8, scale)``: ``x_int8`` contiguous int8 (B, H, N, D) and ``scale`` contiguous
    float32 (B, H, N) with ``x - center ≈ x_int8 * scale[..., None]``.
    """
    check_quantizer_operand(x, "x")
    B, H, N, D = x.shape
    y = torch.empty((B, H, N, D), dtype=torch.int8, device=x.device)
    s = torch.empty((B, H, N), dtype=torch.float32, device=x.device)
    if center is not None:
        if center.shape != (B, H, D) or center.dtype != torch.float32 or center.device != x.device:
            raise ValueError(
                f"center: expected float32 tensor of shape {(B, H, D)} on {x.device}, got "
                f"{center.dtype} {tuple(center.shape)} on {center.device}"
            )
        center = center.contiguous()
    if norm_out is not None and (
        norm_out.shape != (B, H) or norm_out.dtype != torch.float32 or norm_out.device != x.device
        or not norm_out.is_contiguous()
    ):  # fmt: skip
        raise ValueError(
            f"norm_out: expected a contiguous float32 tensor of shape {(B, H)} on {x.device}, got "
            f"{norm_out.dtype} {tuple(norm_out.shape)} on {norm_out.device}"
        )
    if y.numel() == 0:
        s.zero_()
        return y, s
    block_d = max(16, triton.next_power_of_2(D))
    block_t = 16 if interpreting() else max(1, min(64, 8192 // block_d))
    num_t = triton.cdiv(N, block_t)
    _quantize_per_token_kernel[(num_t * B * H,)](
        x,
        center if center is not None else s,
        y,
        s,
        x.stride(0),
        x.stride(1),
        x.stride(2),
        H,
        N,
        D,
        num_t,
        norm_out if norm_out is not None else s,
        HAS_CENTER=center is not None,
        HAS_NORM=norm_out is not None,
        BLOCK_T=block_t,
        BLOCK_D=block_d,
    )
    return y, s


def quantize_per_channel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize ``x`` (B, H, N, D) to INT8 with one symmetric scale per (b, h, d) over the tokens.

    Returns ``(x_int8, scale)``: ``x_int8`` has shape (B, H, N, D) but is a view of (B, H, D, N)
    contiguous storage (token index contiguous, ``x_int8.stride(2) == 1``); ``scale`` is contiguous
    float32 (B, H, D) with ``x ≈ x_int8 * scale[:, :, None, :]``.
    """
    check_quantizer_operand(x, "x")
    B, H, N, D = x.shape
    y_t = torch.empty((B, H, D, N), dtype=torch.int8, device=x.device)
    s = torch.empty((B, H, D), dtype=torch.float32, device=x.device)
    if N == 0:
        s.zero_()
    if y_t.numel() == 0:
        return y_t.transpose(2, 3), s
    block_d = 32 if interpreting() else 64
    block_t = 64 if interpreting() else 128
    num_d = triton.cdiv(D, block_d)
    _quantize_per_channel_kernel[(num_d * B * H,)](
        x,
        y_t,
        s,
        x.stride(0),
        x.stride(1),
        x.stride(2),
        H,
        N,
        D,
        num_d,
        BLOCK_T=block_t,
        BLOCK_D=block_d,
    )
    return y_t.transpose(2, 3), s


def _inverse_scale(amax: torch.Tensor) -> torch.Tensor:
    # A true division (not ``127 / t``, which torch evaluates as ``reciprocal(t) * 127``, rounded twice).
    safe = torch.where(amax > 0, amax, torch.ones_like(amax))
    return torch.where(amax > 0, torch.full_like(amax, QMAX) / safe, torch.zeros_like(amax))


def _scale(amax: torch.Tensor) -> torch.Tensor:
    # amax / 127 as a true division: on CUDA torch divides by a Python scalar as a multiply by its
    # reciprocal, which can differ from the kernels' correctly rounded division in the last bit.
    return amax / torch.full_like(amax, QMAX)


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def quantize_per_token_reference(
    x: torch.Tensor, center: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Readable torch version of :func:`quantize_per_token` (same rounding, same zero guard)."""
    xf = x.float()
    if center is not None:
        xf = xf - center[:, :, None, :]
    amax = xf.abs().amax(dim=-1)
    inv = _inverse_scale(amax)
    q = _round_half_away(xf * inv[..., None]).clamp(-QMAX, QMAX)
    return q.to(torch.int8), _scale(amax)


def longest_token_reference(x: torch.Tensor, center: torch.Tensor | None = None) -> torch.Tensor:
    """float32 (B, H): the L2 norm of each head's longest token of ``x`` (B, H, N, D) less ``center``
    (B, H, D), as the quantizers' ``norm_out`` has it (up to fp32 summation order)."""
    xf = x.float()
    if center is not None:
        xf = xf - center[:, :, None, :]
    return torch.sqrt((xf * xf).sum(dim=-1).amax(dim=-1))


def noisy_heads(q_scale: torch.Tensor, k_norm: torch.Tensor, qk_scale: float) -> torch.Tensor:
    """bool (B, Hkv): the KV heads whose per-token INT8 Q would blur their logits (:data:`Q_NOISE_MAX`),
    by the kernels' fp32 test ``q_scale · qk_scale · k_norm > Q_NOISE_BOUND`` on any of their query heads'
    rows. ``q_scale`` (B, Hq, Nq) float32 per-token scales, ``k_norm`` (B, Hkv) float32
    (:func:`longest_token_reference`), ``qk_scale`` sm_scale · log2(e)."""
    B, Hq = q_scale.shape[:2]
    Hkv = k_norm.size(1)
    if q_scale.size(2) == 0:
        return torch.zeros((B, Hkv), dtype=torch.bool, device=q_scale.device)
    c = q_scale.float() * torch.tensor(qk_scale, dtype=torch.float32, device=q_scale.device)
    return c.amax(dim=2).reshape(B, Hkv, Hq // Hkv).amax(dim=2) * k_norm.float() > Q_NOISE_BOUND.value


def quantize_per_channel_reference(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Readable torch version of :func:`quantize_per_channel` (returns a contiguous int8 tensor)."""
    xf = x.float()
    amax = xf.abs().amax(dim=2) if x.size(2) > 0 else xf.new_zeros(x.shape[:2] + x.shape[3:])
    inv = _inverse_scale(amax)
    q = _round_half_away(xf * inv[:, :, None, :]).clamp(-QMAX, QMAX)
    return q.to(torch.int8), _scale(amax)


def dequantize_per_token(x_int8: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 values that per-token INT8 data ``x_int8`` with ``scale`` stands for."""
    return x_int8.float() * scale[..., None]


def dequantize_per_channel(x_int8: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 values that per-channel INT8 data ``x_int8`` with ``scale`` stands for."""
    return x_int8.float() * scale[:, :, None, :]


# The low-bit KV cache's quantizer lives with its decode kernel; exported here beside the others.
from kernels.kv_cache import QuantizedKV, quantize_kv  # noqa: E402, F401
