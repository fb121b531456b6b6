"""A low-bit KV cache and its split-K (flash-decoding) attention kernel.

Quantize once, attend many times::

    cache = quantize_kv(k, v, bits=4)                  # k, v: (B, Hkv, Nmax, D) fp16/bf16
    o = decode_attention(q, cache, causal=True)        # q: (B, Hq, Nq, D), Nq small (1..16)

Layout (see :mod:`kernels.quant_lowbit`): every token's K is quantized per group of channels along
D and its V per half of D, asymmetric (min/max), scale and offset in bf16; 4-bit codes packed two per
byte by halves. Asymmetric per-token groups were chosen by measurement (bench/kv_layouts.py;
docs/perf.md): on Gaussian and channel-outlier caches they beat symmetric groups by 15-40% in output
rel-L2, and came within ~10% of per-channel K quantized over blocks of tokens (KIVI's layout) while
letting the cache grow token by token. V has one group per half of D because its scales multiply P
before the P·V dot (below), and each group would need its own accumulator. Bytes read per token and
head at D=128: 152 at 4 bits (64 + 16 for K, 64 + 8 for V), 272 at 8 bits, against 512 for fp16.

K smoothing: the per-(b, h) mean of K over the filled tokens is subtracted before quantizing (in a copy;
the caller's tensor is only read). Softmax cannot see a per-row constant and ``q · mean`` is one, so the
cache never needs the mean back, while outlier channel offsets no longer eat the 16 levels of a group.

The kernels: one program per (batch, KV head, block of rows, split of the keys). Its rows are every
(query head of the GQA group, query) pair, so a K/V tile is loaded once for all the query heads that
share it. Three kernels, picked by the rows per program (``DecodeConfig.fold`` and ``.copies``):

- folded (16-row tiles, taken by default for up to 16 rows per KV head, e.g. Nq = 1 with up to 16 query
  heads per KV head, the common decode step; and for 17-32 rows, in two programs, where the
  dequantizing kernel cannot take fp16 FMAs, docs/perf.md "v11" and "v17"):
  the packed codes are unpacked and turned into exact centred integers with a logic op and an add (no
  int-to-float conversions; on a GPU with fp16, two codes per PRMT/LOP3 in inline PTX) and fed to the
  tensor-core dots; K's scales and offsets are applied to the scores of each group's dot, V's scales
  to P before the P·V dot. Its metadata comes as int32 (scale, offset) words, which Triton stages with
  cp.async like the codes (2-byte loads it cannot: they were waited on every step). Its work grows with
  the scores.
- copies (a special case of folded, taken where it fits: the rows of a KV head times K's groups fit the
  16-row tile, e.g. Nq = 1 with GQA up to 4 at 4 bits, D = 128): the tile's spare rows hold each row
  once per group of K, so one dot gives every group's partial score in its own row and the per-group
  scales act on one tile instead of on a tile per group (``_decode_kv_copies_kernel``). At 4 bits a
  row may instead be held once per group of a half of D, its halves' dots going to two score tiles,
  which fits twice the rows (GQA 8 at Nq = 1, GQA 4 at Nq = 2, D = 128; GQA 4 at D = 256). It reads
  the codes as int32 words (where a word tile is a dot of at least 16: D >= 128 at 4 bits, 64 at 8), runs
  the softmax on the real rows only, rescales its accumulators only when a row's maximum grows by more
  than 2^LAZY_LOG2, and reads Q (and writes its partial sums) as whole rows.
- dequantizing (more rows): every code becomes ``code · scale + offset``, rounded to q's dtype, before
  the dots. Its work grows with the codes, so it wins once a tile has many rows (Nq = 16 with GQA 4:
  64 rows, where the folded kernel was 1.35-1.8x slower on an H200, and four 16-row programs of it
  1.5-3.1x; docs/perf.md). On an fp16 cache whose scales and offsets are fp16 values
  (``QuantizedKV.fp16_meta``) it takes packed PTX: a LOP3 or PRMT, an HADD2 and an HFMA2 per two codes,
  one rounding of the same exact value as the fp32 path, so the same bits, at 1.09-1.53x its speed; it
  then also takes 17-32 rows, in one 64-row program (docs/perf.md "v17"). Elsewhere (bf16, or scales
  below fp16's normal range) it converts and multiplies in fp32.

The online softmax is fp32. Each split writes its unnormalized partial sum, maximum and denominator;
a second small kernel merges the splits (on sm_90+ launched as a programmatic dependent of the first,
so its launch overlaps the first's tail; one warp per 256 splits). Fixed splits and no atomics: reruns
are bit-identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import triton
import triton.language as tl

from kernels._validate import HEAD_DIMS, SUPPORTED_DTYPES
from kernels.backend import interpreting
from kernels.group_quant import quantize_groups_fused
from kernels.launch import sm_count
from kernels.quant_lowbit import GroupQuantized, check_group, dequantize_groups
from kernels.reference import attention_reference

LOG2E = math.log2(math.e)
# The folded kernel reads K's and V's metadata as int32 words, one (scale, offset) bf16 pair each.
FOLDED_META = torch.int32
# The split merge's program: BLOCK_D channels of one row, up to MERGE_BLOCK_S splits at a time, on
# MERGE_WARPS warps per 256 splits of the block (a one-warp tile of more spilled).
MERGE_BLOCK_D, MERGE_WARPS, MERGE_BLOCK_S = 16, 1, 1024
# Launch the merge as a programmatic dependent launch where the GPU has it (sm_90+).
MERGE_PDL = True
# The copies kernel's lazy rescaling: the running maximum moves only when a block's maximum passes
# it by more than this many powers of two, so P < 2^LAZY_LOG2. P times V's scale is rounded to fp16,
# and a scale is at most 2 * 65504 / 15 (4 bits): 4 x that still fits fp16, so 2 is the most any
# fp16 V allows.
LAZY_LOG2 = tl.constexpr(2.0)


def default_kv_group(head_dim: int, bits: int) -> int:
    """Channels per group: 32 at 4 bits, 64 at 8 bits, smaller where a half of D needs it (D = 32, 96).

    A group never straddles the two halves of D, so the kernel broadcasts one scale per group of a
    half tile instead of gathering a scale per element.
    """
    half = head_dim // 2
    for g in (64, 32, 16, 8) if bits == 8 else (32, 16, 8):
        if half % g == 0:
            return g
    return 2


@dataclass(frozen=True)
class QuantizedKV:
    """A quantized K/V cache: K and V as :class:`GroupQuantized` (B, Hkv, Nmax, ·), ``lengths`` (B,)."""

    k: GroupQuantized
    v: GroupQuantized
    lengths: torch.Tensor
    max_length: int
    dtype: torch.dtype
    smooth_k: bool
    # Every scale and offset of K and V is exactly an fp16 value (and the cache is fp16): the
    # dequantizing kernel may then form ``code · scale + offset`` with one fp16 FMA, rounded once
    # like the fp32 path (see ``_dequant_halves``). False for bf16 caches and for groups whose scale
    # is below fp16's range (|values| ~1e-4 at 8 bits), which keep the fp32 path.
    fp16_meta: bool = False

    @property
    def bits(self) -> int:
        return self.k.bits

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(B, Hkv, Nmax, D) of the cache."""
        B, H, N = self.k.codes.shape[:3]
        return B, H, N, self.k.head_dim

    @property
    def device(self) -> torch.device:
        return self.k.codes.device

    def nbytes(self) -> int:
        """Bytes of codes and metadata the cache holds (what a full decode reads)."""
        parts = (self.k.codes, self.k.meta, self.v.codes, self.v.meta)
        return sum(t.numel() * t.element_size() for t in parts)


def _check_lengths(lengths, batch: int, capacity: int, device: torch.device) -> torch.Tensor:
    if lengths is None:
        return torch.full((batch,), capacity, dtype=torch.int32, device=device)
    if isinstance(lengths, int) and not isinstance(lengths, bool):
        if not 0 <= lengths <= capacity:
            raise ValueError(f"lengths: expected an int in [0, {capacity}], got {lengths}")
        return torch.full((batch,), lengths, dtype=torch.int32, device=device)
    if not isinstance(lengths, torch.Tensor) or lengths.shape != (batch,) or lengths.is_floating_point():
        raise ValueError(
            f"lengths: expected None, an int or an integer tensor of shape ({batch},), got {lengths!r}"
        )
    if batch and (int(lengths.min()) < 0 or int(lengths.max()) > capacity):
        raise ValueError(f"lengths: expected values in [0, {capacity}], got {lengths.tolist()}")
    return lengths.to(device=device, dtype=torch.int32).contiguous()


def quantize_kv(
    k: torch.Tensor,
    v: torch.Tensor,
    bits: int = 4,
    *,
    lengths: int | torch.Tensor | None = None,
    group: int | None = None,
    smooth_k: bool = True,
) -> QuantizedKV:
    """Quantize a K/V cache once for :func:`decode_attention`.

    ``k``, ``v``: (B, Hkv, Nmax, D), fp16 or bf16, one device, D in 32, 64, 96, 128, 256.
    ``bits``: 4 (codes packed two per byte) or 8. ``lengths``: filled tokens per batch entry (None:
    all Nmax; an int; or an integer tensor (B,)); tokens past a row's length are never read (they are
    zeroed in the quantized copy, so uninitialized memory cannot leak NaN into the metadata).
    ``group``: channels per scale of K, a power of two from 16 to D/2 (default
    :func:`default_kv_group`); V has one scale per half of D. ``smooth_k``: subtract K's mean
    over the filled tokens first (see the module doc). Inputs are never modified.
    """
    for name, t in (("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            raise ValueError(
                f"{name}: expected a 4-d tensor (B, Hkv, Nmax, D), got {getattr(t, 'shape', t)!r}"
            )
        if t.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"{name}: expected dtype torch.float16 or torch.bfloat16, got {t.dtype}")
    if v.shape != k.shape:
        raise ValueError(f"v: expected the shape of k {tuple(k.shape)}, got {tuple(v.shape)}")
    if v.dtype != k.dtype or v.device != k.device:
        raise ValueError(
            f"v: expected dtype {k.dtype} on {k.device} (same as k), got {v.dtype} on {v.device}"
        )
    if isinstance(bits, bool) or bits not in (4, 8):
        raise ValueError(f"bits: expected 4 or 8, got {bits!r}")
    B, _, N, D = k.shape
    if D not in HEAD_DIMS:
        raise ValueError(f"head dim: expected one of {', '.join(map(str, HEAD_DIMS))}, got {D}")
    group = default_kv_group(D, bits) if group is None else group
    check_group(D, group, bits)
    if (D // 2) % group != 0 or group & (group - 1) or group < 16:
        # The kernel feeds each group to a tensor-core dot, whose reduction is at least 16 long.
        raise ValueError(
            f"group: expected a power of two, at least 16, dividing half the head dim ({D // 2}), got {group}"
        )
    lens = _check_lengths(lengths, B, N, k.device)
    filled = (torch.arange(N, device=k.device)[None, :] < lens[:, None].long())[:, None, :, None]
    kf = torch.where(filled, k.float(), 0.0)
    vf = torch.where(filled, v.float(), 0.0)
    if smooth_k:
        count = lens.clamp(min=1).float()[:, None, None, None]
        # Filled tokens less the mean; the rest stay zeros.
        kf = torch.where(filled, kf - kf.sum(dim=2, keepdim=True) / count, 0.0)
    # One fused kernel per operand, bit-identical to kernels.quant_lowbit.quantize_groups.
    qk = quantize_groups_fused(kf, bits=bits, group=group)
    qv = quantize_groups_fused(vf, bits=bits, group=D // 2)
    max_length = int(lens.max()) if B else 0
    fp16_meta = k.dtype == torch.float16 and all(_exact_in_fp16(m) for m in (qk.meta, qv.meta))
    return QuantizedKV(qk, qv, lens, max_length, k.dtype, smooth_k, fp16_meta)


def _exact_in_fp16(meta: torch.Tensor) -> bool:
    """Whether every bf16 value of ``meta`` is exactly an fp16 value (no overflow, no lost bits)."""
    f = meta.float()
    return bool(torch.equal(f, f.half().float()))


@triton.jit
def _to_bfloat16_rne(x):
    """float32 ``x`` (finite) rounded to the nearest bfloat16 value, ties to even, kept in float32."""
    bits = x.to(tl.uint32, bitcast=True)
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def _dequant_f16_nibbles(c, s_lo, z_lo, s_hi, z_hi):
    """Packed bytes as fp16 ``lo · s_lo + z_lo`` and ``hi · s_hi + z_hi`` (lo, hi the nibbles): per two
    codes one LOP3 makes ``1024 + lo`` (``64 + hi`` under the exponent of 64, the nibble in place), one
    HADD2 leaves the exact code and one HFMA2 rounds ``code · s + z`` once."""
    return tl.inline_asm_elementwise(
        asm="""{
        .reg .b32 t0, t1, a, k_lo, k_hi;
        mov.b32 k_lo, 0x64006400;
        mov.b32 k_hi, 0x54005400;
        prmt.b32 t0, $4, 0, 0x4140;
        prmt.b32 t1, $4, 0, 0x4342;
        lop3.b32 a, t0, 0x000f000f, 0x64006400, 0xea;
        sub.rn.f16x2 a, a, k_lo;
        fma.rn.f16x2 $0, a, $5, $7;
        lop3.b32 a, t1, 0x000f000f, 0x64006400, 0xea;
        sub.rn.f16x2 a, a, k_lo;
        fma.rn.f16x2 $1, a, $6, $8;
        lop3.b32 a, t0, 0x00f000f0, 0x54005400, 0xea;
        sub.rn.f16x2 a, a, k_hi;
        fma.rn.f16x2 $2, a, $9, $11;
        lop3.b32 a, t1, 0x00f000f0, 0x54005400, 0xea;
        sub.rn.f16x2 a, a, k_hi;
        fma.rn.f16x2 $3, a, $10, $12;
        }""",
        constraints="=r,=r,=r,=r,r,r,r,r,r,r,r,r,r",
        args=[c, s_lo, z_lo, s_hi, z_hi],
        dtype=(tl.float16, tl.float16),
        is_pure=True,
        pack=4,
    )


@triton.jit
def _dequant_f16_bytes(c, s, z):
    """Byte codes as fp16 ``code · s + z``: a PRMT per two codes places them under the exponent of
    1024, one HADD2 leaves the exact code and one HFMA2 rounds ``code · s + z`` once."""
    return tl.inline_asm_elementwise(
        asm="""{
        .reg .b32 a, k;
        mov.b32 k, 0x64006400;
        prmt.b32 a, $2, 0x64646464, 0x4140;
        sub.rn.f16x2 a, a, k;
        fma.rn.f16x2 $0, a, $3, $5;
        prmt.b32 a, $2, 0x64646464, 0x4342;
        sub.rn.f16x2 a, a, k;
        fma.rn.f16x2 $1, a, $4, $6;
        }""",
        constraints="=r,=r,r,r,r,r,r",
        args=[c, s, z],
        dtype=tl.float16,
        is_pure=True,
        pack=4,
    )


@triton.jit
def _dequant_halves(
    codes_base,
    meta_base,
    cols,
    offs_h,
    n_ok,
    BITS: tl.constexpr,
    HALF: tl.constexpr,
    GSIZE: tl.constexpr,
    NG: tl.constexpr,
    OUT_DTYPE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_H: tl.constexpr,
    MATH_DTYPE: tl.constexpr = tl.float32,
    ROUND_BF16: tl.constexpr = False,
    PACKED: tl.constexpr = False,
):
    """Tokens ``cols`` of a group-quantized tensor as two (BLOCK_N, BLOCK_H) tiles: channels [0, D/2)
    and [D/2, D), dequantized (code · scale + offset in ``MATH_DTYPE``) and rounded to ``OUT_DTYPE``.

    ``ROUND_BF16``: round to bfloat16 values first. The interpreter path of bf16 inputs runs its dots in
    float32 (``OUT_DTYPE``) and must round where the GPU's bf16 dots do; by hand, because the
    interpreter's own float32 -> bfloat16 cast truncates instead of rounding to nearest.
    ``PACKED`` (fp16 ``OUT_DTYPE`` on a GPU, metadata whose bf16 values are fp16 values): one packed
    fp16 FMA per two codes instead of the ``MATH_DTYPE`` path, the same rounded values.
    """
    # Bytes per token: D/2 packed nibbles at 4 bits, D codes at 8 bits. BLOCK_H is D/2 rounded up to
    # a power of two (D = 96); the padding columns and groups load as zeros.
    CW: tl.constexpr = HALF if BITS == 4 else 2 * HALF
    # A group may be the whole padded half (GSIZE = BLOCK_H > HALF, D = 96): one group per half then.
    GPH: tl.constexpr = HALF // GSIZE if GSIZE <= HALF else 1
    GPH_P: tl.constexpr = BLOCK_H // GSIZE
    row = cols[:, None].to(tl.int64)
    cmask = n_ok[:, None] & (offs_h[None, :] < HALF)
    if BITS == 4:
        packed = tl.load(codes_base + row * CW + offs_h[None, :], mask=cmask, other=0)
        c_lo = packed & 15
        c_hi = packed >> 4
    else:
        c_lo = tl.load(codes_base + row * CW + offs_h[None, :], mask=cmask, other=0)
        c_hi = tl.load(codes_base + row * CW + HALF + offs_h[None, :], mask=cmask, other=0)
    # (scale, offset) pairs of the groups of each half: one contiguous load per half.
    offs_m = tl.arange(0, 2 * GPH_P)
    m_ptrs = meta_base + row * (2 * NG) + offs_m[None, :]
    mmask = n_ok[:, None] & (offs_m[None, :] < 2 * GPH)
    m_lo = tl.load(m_ptrs, mask=mmask, other=0.0).to(MATH_DTYPE)
    m_hi = tl.load(m_ptrs + 2 * GPH, mask=mmask, other=0.0).to(MATH_DTYPE)
    s_lo, z_lo = tl.split(tl.reshape(m_lo, (BLOCK_N, GPH_P, 2)))
    s_hi, z_hi = tl.split(tl.reshape(m_hi, (BLOCK_N, GPH_P, 2)))
    if PACKED:
        tl.static_assert(tl.float16 == OUT_DTYPE, "PACKED dequantizes to fp16 only")
        # fp16 on a GPU: packed conversions and one fp16 FMA per two codes (no per-code I2F or F2F). The
        # scales and offsets are exact fp16 values (QuantizedKV.fp16_meta), so the FMA rounds the exact
        # code * scale + offset once, as rounding the fp32 path's (exact) result to fp16 does.
        G3: tl.constexpr = (BLOCK_N, GPH_P, GSIZE)
        fs_lo = tl.broadcast_to(s_lo.to(tl.float16)[:, :, None], G3)
        fz_lo = tl.broadcast_to(z_lo.to(tl.float16)[:, :, None], G3)
        fs_hi = tl.broadcast_to(s_hi.to(tl.float16)[:, :, None], G3)
        fz_hi = tl.broadcast_to(z_hi.to(tl.float16)[:, :, None], G3)
        if BITS == 4:
            x_lo, x_hi = _dequant_f16_nibbles(tl.reshape(packed, G3), fs_lo, fz_lo, fs_hi, fz_hi)
        else:
            x_lo = _dequant_f16_bytes(tl.reshape(c_lo, G3), fs_lo, fz_lo)
            x_hi = _dequant_f16_bytes(tl.reshape(c_hi, G3), fs_hi, fz_hi)
    else:
        # One scale and offset per group of GSIZE channels, broadcast over the group in registers.
        x_lo = tl.reshape(c_lo.to(MATH_DTYPE), (BLOCK_N, GPH_P, GSIZE)) * s_lo[:, :, None] + z_lo[:, :, None]
        x_hi = tl.reshape(c_hi.to(MATH_DTYPE), (BLOCK_N, GPH_P, GSIZE)) * s_hi[:, :, None] + z_hi[:, :, None]
    x_lo = tl.reshape(x_lo, (BLOCK_N, BLOCK_H))
    x_hi = tl.reshape(x_hi, (BLOCK_N, BLOCK_H))
    if ROUND_BF16:
        x_lo = _to_bfloat16_rne(x_lo.to(tl.float32))
        x_hi = _to_bfloat16_rne(x_hi.to(tl.float32))
    x_lo = x_lo.to(OUT_DTYPE)
    x_hi = x_hi.to(OUT_DTYPE)
    return x_lo, x_hi


@triton.jit
def _program_rows(Hkv, GROUP, Nq, NUM_M_BLOCKS, BLOCK_M: tl.constexpr):
    """This program's (batch x KV head) index, batch, and rows: every (query head of the GQA group,
    query) pair, so a K/V tile is loaded once for all the query heads that share it."""
    pid = tl.program_id(0)
    bh_kv = (pid // NUM_M_BLOCKS).to(tl.int64)
    hkv = bh_kv % Hkv
    rows = (pid % NUM_M_BLOCKS) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < GROUP * Nq
    qi = rows % Nq
    hq = hkv * GROUP + rows // Nq
    return bh_kv, bh_kv // Hkv, row_ok, qi, hq


@triton.jit
def _softmax_step(s, m_i, cols, n_ok, qi, shift, CAUSAL: tl.constexpr):
    """Scores ``s`` (log2 units) masked to the keys each row sees, and one online-softmax step:
    the new running maximum, the rescale factor of the old sums, and P in fp32."""
    valid = n_ok[None, :]
    if CAUSAL:
        # Bottom-right causal within the filled length: query i sees key j iff j <= i + length - Nq.
        valid = valid & (cols[None, :] <= qi[:, None] + shift)
    s = tl.where(valid, s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, axis=1))
    # A row that has seen only masked keys keeps m = -inf: subtract 0 so exp2 gives 0, not NaN.
    m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = tl.math.exp2(m_i - m_use)
    p = tl.math.exp2(tl.minimum(s - m_use[:, None], 0.0))
    return m_new, alpha, p


@triton.jit
def _split_slot(b, hq, qi, Hkv, GROUP, Nq, NUM_SPLITS):
    """Each row's index into the splits' buffers: (batch, query head, query) major, this split minor."""
    row_id = (b * Hkv * GROUP + hq).to(tl.int64) * Nq + qi
    return row_id * NUM_SPLITS + tl.program_id(1)


@triton.jit
def _store_word_tile(PACC, slot, acc, ch, lo_rows, hi_rows, HALF: tl.constexpr, D: tl.constexpr):
    """A (rows x words) partial sum of the copies kernel: column w is channel ``ch[w]``, taken from the
    rows ``lo_rows`` for channels of the low half of D and ``hi_rows`` for the high half."""
    upper = (ch >= HALF)[None, :]
    ok = tl.where(upper, hi_rows[:, None], lo_rows[:, None])
    tl.store(PACC + slot[:, None] * D + ch[None, :], acc, mask=ok)


@triton.jit
def _store_split(
    PACC, PM, PL, b, hq, qi, row_ok, Hkv, GROUP, Nq, NUM_SPLITS, m_i, l_i, acc_lo, acc_hi,
    HALF: tl.constexpr, BLOCK_H: tl.constexpr,
):  # fmt: skip
    """This split's unnormalized partial sums (two halves of D), maximum and denominator per row."""
    offs_h = tl.arange(0, BLOCK_H)
    h_ok = offs_h < HALF
    slot = _split_slot(b, hq, qi, Hkv, GROUP, Nq, NUM_SPLITS)
    tl.store(PM + slot, m_i, mask=row_ok)
    tl.store(PL + slot, l_i, mask=row_ok)
    acc_ptrs = PACC + slot[:, None] * (2 * HALF) + offs_h[None, :]
    tl.store(acc_ptrs, acc_lo, mask=row_ok[:, None] & h_ok[None, :])
    tl.store(acc_ptrs + HALF, acc_hi, mask=row_ok[:, None] & h_ok[None, :])


@triton.jit
def _bf16_pair(word):
    """int32 words, each a (scale, offset) pair of bfloat16 (scale in the low half, as stored
    little-endian), as two fp32 tensors: a bfloat16 is the top half of its fp32 value."""
    scale = (word << 16).to(tl.float32, bitcast=True)
    offset = (word & -65536).to(tl.float32, bitcast=True)
    return scale, offset


@triton.jit
def _centered_codes(c, CENTER: tl.constexpr, DOT_DTYPE: tl.constexpr, F16_MAGIC: tl.constexpr):
    """uint8 codes ``c`` as ``c - CENTER``, exactly, in ``DOT_DTYPE``, with no int-to-float conversion.

    OR-ing a code into the mantissa of a power of two gives ``2^k + c`` as a float (2^10 in fp16, whose
    mantissa holds any 8-bit code; 2^23 in fp32 for bf16 and the interpreter), and one subtraction
    leaves the integer ``c - CENTER``: a logic op and a (packed) add instead of a quarter-rate I2F.
    Centred codes keep the dot products small; every value is an integer below 2^8, exact in every
    dot dtype.
    """
    if F16_MAGIC:
        x = (c.to(tl.uint16) | 0x6400).to(tl.float16, bitcast=True)
        return x - (1024.0 + CENTER)
    else:
        x = (c.to(tl.uint32) | 0x4B000000).to(tl.float32, bitcast=True)
        return (x - (8388608.0 + CENTER)).to(DOT_DTYPE)


@triton.jit
def _fp16_bytes(c):
    """uint8 codes as fp16 ``1024 + c``: one PRMT per two codes (bytes placed under an 0x64 exponent)."""
    return tl.inline_asm_elementwise(
        asm="prmt.b32 $0, $2, 0x64646464, 0x4140;\n\tprmt.b32 $1, $2, 0x64646464, 0x4342;",
        constraints="=r,=r,r",
        args=[c],
        dtype=tl.float16,
        is_pure=True,
        pack=4,
    )


@triton.jit
def _fp16_nibbles(c):
    """Packed bytes as fp16 ``1024 + low nibble`` and ``1024 + high nibble``: a PRMT per two bytes,
    then one LOP3 (mask and exponent in one) per two codes, and a shift for the high nibbles."""
    return tl.inline_asm_elementwise(
        asm="""{
        .reg .b32 t0, t1;
        prmt.b32 t0, $4, 0, 0x4140;
        prmt.b32 t1, $4, 0, 0x4342;
        lop3.b32 $0, t0, 0x000f000f, 0x64006400, 0xea;
        lop3.b32 $1, t1, 0x000f000f, 0x64006400, 0xea;
        shr.b32 t0, t0, 4;
        shr.b32 t1, t1, 4;
        lop3.b32 $2, t0, 0x000f000f, 0x64006400, 0xea;
        lop3.b32 $3, t1, 0x000f000f, 0x64006400, 0xea;
        }""",
        constraints="=r,=r,=r,=r,r",
        args=[c],
        dtype=(tl.float16, tl.float16),
        is_pure=True,
        pack=4,
    )


@triton.jit
def _centered_pair(
    raw_a,
    raw_b,
    CENTER: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    F16_MAGIC: tl.constexpr,
    BITS: tl.constexpr,
    ASM: tl.constexpr,
):
    """Codes of two halves as centred integers; ``raw_a`` holds packed bytes when BITS == 4 (``raw_b``
    unused). ASM (fp16 on a GPU): packed conversions in PTX; otherwise :func:`_centered_codes`."""
    if ASM and F16_MAGIC:
        if BITS == 4:
            f_a, f_b = _fp16_nibbles(raw_a)
        else:
            f_a = _fp16_bytes(raw_a)
            f_b = _fp16_bytes(raw_b)
        return f_a - (1024.0 + CENTER), f_b - (1024.0 + CENTER)
    else:
        if BITS == 4:
            return (
                _centered_codes(raw_a & 15, CENTER, DOT_DTYPE, F16_MAGIC),
                _centered_codes(raw_a >> 4, CENTER, DOT_DTYPE, F16_MAGIC),
            )
        else:
            return (
                _centered_codes(raw_a, CENTER, DOT_DTYPE, F16_MAGIC),
                _centered_codes(raw_b, CENTER, DOT_DTYPE, F16_MAGIC),
            )


@triton.jit
def _fp16_nibble_words(w):
    """int32 words of packed nibbles, two neighbouring words per call, as eight fp16 tiles: tile 2i
    holds ``1024 + code`` for the low nibble of byte i of each word, tile 2i + 1 ``64 + code`` for its
    high nibble (left in place, at mantissa bits 4-7: under the exponent of 64 they count units, so no
    shift is needed). One PRMT gathers byte i of both words, a LOP3 (mask and exponent in one) makes
    two codes."""
    return tl.inline_asm_elementwise(
        asm="""{
        .reg .b32 t;
        prmt.b32 t, $8, $9, 0x4400;
        lop3.b32 $0, t, 0x000f000f, 0x64006400, 0xea;
        lop3.b32 $1, t, 0x00f000f0, 0x54005400, 0xea;
        prmt.b32 t, $8, $9, 0x5511;
        lop3.b32 $2, t, 0x000f000f, 0x64006400, 0xea;
        lop3.b32 $3, t, 0x00f000f0, 0x54005400, 0xea;
        prmt.b32 t, $8, $9, 0x6622;
        lop3.b32 $4, t, 0x000f000f, 0x64006400, 0xea;
        lop3.b32 $5, t, 0x00f000f0, 0x54005400, 0xea;
        prmt.b32 t, $8, $9, 0x7733;
        lop3.b32 $6, t, 0x000f000f, 0x64006400, 0xea;
        lop3.b32 $7, t, 0x00f000f0, 0x54005400, 0xea;
        }""",
        constraints="=r,=r,=r,=r,=r,=r,=r,=r,r,r",
        args=[w],
        dtype=(tl.float16,) * 8,
        is_pure=True,
        pack=2,
    )


@triton.jit
def _fp16_byte_words(w):
    """int32 words of byte codes, two neighbouring words per call, as four fp16 tiles ``1024 + code``,
    tile i holding byte i of each word: a PRMT gathers byte i of both words, a LOP3 adds the exponent."""
    return tl.inline_asm_elementwise(
        asm="""{
        .reg .b32 t;
        prmt.b32 t, $4, $5, 0x4400;
        lop3.b32 $0, t, 0x00ff00ff, 0x64006400, 0xea;
        prmt.b32 t, $4, $5, 0x5511;
        lop3.b32 $1, t, 0x00ff00ff, 0x64006400, 0xea;
        prmt.b32 t, $4, $5, 0x6622;
        lop3.b32 $2, t, 0x00ff00ff, 0x64006400, 0xea;
        prmt.b32 t, $4, $5, 0x7733;
        lop3.b32 $3, t, 0x00ff00ff, 0x64006400, 0xea;
        }""",
        constraints="=r,=r,=r,=r,r,r",
        args=[w],
        dtype=(tl.float16,) * 4,
        is_pure=True,
        pack=2,
    )


@triton.jit
def _word_codes(
    w, SHIFT: tl.constexpr, MASK: tl.constexpr, CENTER: tl.constexpr, DOT_DTYPE: tl.constexpr,
    F16_MAGIC: tl.constexpr,
):  # fmt: skip
    """The portable path of the word conversions: the codes at bit ``SHIFT`` of uint32 words, minus
    ``CENTER``, exact."""
    return _centered_codes((w >> SHIFT) & MASK, CENTER, DOT_DTYPE, F16_MAGIC)


@triton.jit
def _nibble_word_codes(
    w, CENTER: tl.constexpr, DOT_DTYPE: tl.constexpr, F16_MAGIC: tl.constexpr, ASM: tl.constexpr,
    KEEP_LOW: tl.constexpr = 0.0, KEEP_HIGH: tl.constexpr = 0.0,
):  # fmt: skip
    """uint32 words of packed nibbles as eight tiles of exact ``code - CENTER``: tile 2i the low
    nibble of byte i of each word, tile 2i + 1 its high nibble (the copies kernel's K and V).

    With fp16 the tiles may keep an offset, ``KEEP_LOW`` (0 or 1024) on the low nibbles and
    ``KEEP_HIGH`` (0 or 64) on the high ones, when the caller takes it out of the dot's sum instead:
    the PTX conversion gives ``1024 + c`` and ``64 + c``, so a kept offset costs no instruction. The
    portable path adds the same offsets (exactly), so both paths give the same operands."""
    if ASM and F16_MAGIC:
        c0, c1, c2, c3, c4, c5, c6, c7 = _fp16_nibble_words(w)
        LOW: tl.constexpr = 1024.0 + CENTER - KEEP_LOW
        HIGH: tl.constexpr = 64.0 + CENTER - KEEP_HIGH
        if LOW != 0.0:
            c0, c2, c4, c6 = c0 - LOW, c2 - LOW, c4 - LOW, c6 - LOW
        if HIGH != 0.0:
            c1, c3, c5, c7 = c1 - HIGH, c3 - HIGH, c5 - HIGH, c7 - HIGH
    else:
        c0 = _word_codes(w, 0, 15, CENTER, DOT_DTYPE, F16_MAGIC)
        c1 = _word_codes(w, 4, 15, CENTER, DOT_DTYPE, F16_MAGIC)
        c2 = _word_codes(w, 8, 15, CENTER, DOT_DTYPE, F16_MAGIC)
        c3 = _word_codes(w, 12, 15, CENTER, DOT_DTYPE, F16_MAGIC)
        c4 = _word_codes(w, 16, 15, CENTER, DOT_DTYPE, F16_MAGIC)
        c5 = _word_codes(w, 20, 15, CENTER, DOT_DTYPE, F16_MAGIC)
        c6 = _word_codes(w, 24, 15, CENTER, DOT_DTYPE, F16_MAGIC)
        c7 = _word_codes(w, 28, 15, CENTER, DOT_DTYPE, F16_MAGIC)
        if KEEP_LOW != 0.0:
            c0, c2, c4, c6 = c0 + KEEP_LOW, c2 + KEEP_LOW, c4 + KEEP_LOW, c6 + KEEP_LOW
        if KEEP_HIGH != 0.0:
            c1, c3, c5, c7 = c1 + KEEP_HIGH, c3 + KEEP_HIGH, c5 + KEEP_HIGH, c7 + KEEP_HIGH
    return c0, c1, c2, c3, c4, c5, c6, c7


@triton.jit
def _byte_word_codes(
    w, CENTER: tl.constexpr, DOT_DTYPE: tl.constexpr, F16_MAGIC: tl.constexpr, ASM: tl.constexpr,
    KEEP: tl.constexpr = 0.0,
):  # fmt: skip
    """uint32 words of byte codes as four tiles of exact ``code - CENTER + KEEP``, tile i byte i of
    each word; ``KEEP`` (0 or 1024, fp16 only) as in :func:`_nibble_word_codes`."""
    if ASM and F16_MAGIC:
        c0, c1, c2, c3 = _fp16_byte_words(w)
        OFF: tl.constexpr = 1024.0 + CENTER - KEEP
        if OFF != 0.0:
            c0, c1, c2, c3 = c0 - OFF, c1 - OFF, c2 - OFF, c3 - OFF
    else:
        c0 = _word_codes(w, 0, 255, CENTER, DOT_DTYPE, F16_MAGIC)
        c1 = _word_codes(w, 8, 255, CENTER, DOT_DTYPE, F16_MAGIC)
        c2 = _word_codes(w, 16, 255, CENTER, DOT_DTYPE, F16_MAGIC)
        c3 = _word_codes(w, 24, 255, CENTER, DOT_DTYPE, F16_MAGIC)
        if KEEP != 0.0:
            c0, c1, c2, c3 = c0 + KEEP, c1 + KEEP, c2 + KEEP, c3 + KEEP
    return c0, c1, c2, c3


@triton.jit
def _q_copy_rows(
    q_rows, row_ok, copy, GSIZE: tl.constexpr, NC: tl.constexpr, D: tl.constexpr, DOT_DTYPE: tl.constexpr,
    HALVES: tl.constexpr,
):  # fmt: skip
    """The copies tile's Q, each row keeping only its copy's group of channels (with HALVES, ``NC`` =
    half of K's groups, group ``copy`` of each half), loaded as whole rows (gathered channel by channel
    it took a 2-byte load per element, in every program of the grid), and each row's sum (with HALVES
    its sums over the low and the high half; otherwise the second is zeros)."""
    ch = tl.arange(0, D)
    group = ch // GSIZE
    if HALVES:
        group = group % NC
    mine = row_ok[:, None] & (group[None, :] == copy[:, None])
    q = tl.load(q_rows + ch[None, :], mask=mine, other=0.0).to(DOT_DTYPE)
    qf = q.to(tl.float32)
    if HALVES:
        lo, hi = tl.split(tl.sum(tl.reshape(qf, (qf.shape[0], 2, D // 2)), axis=2))
        return lo, hi, q
    else:
        return tl.sum(qf, axis=1), tl.zeros_like(row_ok.to(tl.float32)), q


@triton.jit
def _copy_meta(
    km, key, n_ok, qsum, FIRST: tl.constexpr, NG: tl.constexpr, NC: tl.constexpr, RP: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """K's scales of groups FIRST .. FIRST + NC - 1 for each key, one word per group loaded once and
    repeated over the RP rows of its copy, and the offsets' share ``qsum * offset``: (BLOCK_M, BLOCK_N)
    each. The share is formed on (copy, row, key) before the copies become rows, which keeps it in the
    dot's layout (as a product of two broadcast tiles the compiler moved one through shared memory)."""
    meta = tl.load(km + key[None, :] * NG + FIRST + tl.arange(0, NC)[:, None], mask=n_ok[None, :], other=0)
    scale, offset = _bf16_pair(meta)
    scale = tl.reshape(tl.broadcast_to(scale[:, None, :], (NC, RP, BLOCK_N)), (BLOCK_M, BLOCK_N))
    share = tl.reshape(tl.reshape(qsum, (NC, RP))[:, :, None] * offset[:, None, :], (BLOCK_M, BLOCK_N))
    return scale, share


@triton.jit
def _q_nibble_tiles(
    q_rows, row_ok, copy, GSIZE: tl.constexpr, NC: tl.constexpr, NW: tl.constexpr, BLOCK_M: tl.constexpr,
    DOT_DTYPE: tl.constexpr, HALVES: tl.constexpr,
):  # fmt: skip
    """:func:`_q_copy_rows` in the word tiles' order at 4 bits: tile 2i + h, column w is channel
    h * 4 NW + 4w + i (byte i of word w; h = 1 the high nibbles), permuted by reshapes and splits."""
    qs_a, qs_b, q = _q_copy_rows(q_rows, row_ok, copy, GSIZE, NC, 8 * NW, DOT_DTYPE, HALVES)
    # (row, half, word, byte) -> (row, word, byte // 2, byte % 2, half); each split peels the last axis.
    q = tl.reshape(tl.permute(tl.reshape(q, (BLOCK_M, 2, NW, 4)), (0, 2, 3, 1)), (BLOCK_M, NW, 2, 2, 2))
    q_lo, q_hi = tl.split(q)
    lo_even, lo_odd = tl.split(q_lo)
    hi_even, hi_odd = tl.split(q_hi)
    q0, q4 = tl.split(lo_even)
    q2, q6 = tl.split(lo_odd)
    q1, q5 = tl.split(hi_even)
    q3, q7 = tl.split(hi_odd)
    return qs_a, qs_b, q0, q1, q2, q3, q4, q5, q6, q7


@triton.jit
def _q_byte_tiles(
    q_rows, row_ok, copy, GSIZE: tl.constexpr, NW: tl.constexpr, BLOCK_M: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
):  # fmt: skip
    """As :func:`_q_nibble_tiles` at 8 bits (a copy per group of K): tile i, column w is channel
    4w + i."""
    qsum, _, q = _q_copy_rows(q_rows, row_ok, copy, GSIZE, 4 * NW // GSIZE, 4 * NW, DOT_DTYPE, False)
    q_even, q_odd = tl.split(tl.reshape(q, (BLOCK_M, NW, 2, 2)))
    q0, q2 = tl.split(q_even)
    q1, q3 = tl.split(q_odd)
    return qsum, q0, q1, q2, q3


@triton.jit(do_not_specialize=["Hkv", "GROUP", "Nq", "Nmax", "NUM_M_BLOCKS", "CHUNK", "NUM_SPLITS"])
def _decode_kv_kernel(
    Q,
    KC,
    KM,
    VC,
    VM,
    LENS,
    PACC,
    PM,
    PL,
    stride_qb,
    stride_qh,
    stride_qn,
    Hkv,
    GROUP,
    Nq,
    Nmax,
    qk_scale,
    NUM_M_BLOCKS,
    CHUNK,
    NUM_SPLITS,
    CAUSAL: tl.constexpr,
    BITS: tl.constexpr,
    HALF: tl.constexpr,
    GSIZE: tl.constexpr,
    NG: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_H: tl.constexpr,
    ASM: tl.constexpr = False,
    PDL: tl.constexpr = False,
):
    # Dequantization is folded into the dots instead of done per element: the tensor cores see the
    # integer codes (centred, exact), and the per-key scales and offsets are applied to the few
    # (rows x keys) scores and probabilities, never to the (keys x channels) tiles.
    #   K, group g of GSIZE channels: q . k_j = s_gj * (q_g . (c_gj - C)) + qsum_g * z'_gj, where
    #     z'_gj = z_gj + C * s_gj and qsum_g is the sum of q over the group;
    #   V, one group per half of D: sum_j p_j v_jd = sum_j (p_j * s_j) (c_jd - C) + sum_j p_j z'_j.
    if PDL:
        # The merge kernel may launch now; it waits for this grid's writes (gdc_wait).
        tl.extra.cuda.gdc_launch_dependents()
    bh_kv, b, row_ok, qi, hq = _program_rows(Hkv, GROUP, Nq, NUM_M_BLOCKS, BLOCK_M)
    split = tl.program_id(1)
    offs_h = tl.arange(0, BLOCK_H)
    offs_g = tl.arange(0, GSIZE)
    offs_n = tl.arange(0, BLOCK_N)
    h_ok = offs_h < HALF
    DOT_DTYPE: tl.constexpr = tl.float32 if UPCAST else Q.dtype.element_ty
    F16_MAGIC: tl.constexpr = Q.dtype.element_ty == tl.float16
    CENTER: tl.constexpr = 1 << (BITS - 1)
    CW: tl.constexpr = HALF if BITS == 4 else 2 * HALF
    GPH: tl.constexpr = HALF // GSIZE
    q_rows = Q + b * stride_qb + hq[:, None].to(tl.int64) * stride_qh + qi[:, None] * stride_qn

    length = tl.load(LENS + b)
    lo = split * CHUNK
    hi = tl.minimum(lo + CHUNK, length)
    kc = KC + bh_kv * Nmax * CW
    vc = VC + bh_kv * Nmax * CW
    # Metadata as int32 words, one (scale, offset) bf16 pair each: 4-byte elements, which the
    # pipeliner stages with cp.async. It cannot stage 2-byte loads; those were waited on every step
    # (ncu; docs/perf.md "v8").
    km = KM + bh_kv * Nmax * NG
    vm = VM + bh_kv * Nmax * 2
    shift = length - Nq

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc_lo = tl.zeros([BLOCK_M, BLOCK_H], dtype=tl.float32)
    acc_hi = tl.zeros([BLOCK_M, BLOCK_H], dtype=tl.float32)
    z_lo = tl.zeros([BLOCK_M], dtype=tl.float32)
    z_hi = tl.zeros([BLOCK_M], dtype=tl.float32)
    for start in range(lo, hi, BLOCK_N):
        cols = start + offs_n
        n_ok = cols < hi
        key = cols.to(tl.int64)
        s = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        # Group g of the low half and group g of the high half share their bytes at 4 bits.
        for g in tl.static_range(GPH):
            ch = g * GSIZE + offs_g
            ptr = kc + key[:, None] * CW + ch[None, :]
            c_a = tl.load(ptr, mask=n_ok[:, None], other=0)
            c_b = c_a
            if BITS == 8:
                c_b = tl.load(ptr + HALF, mask=n_ok[:, None], other=0)
            k_a, k_b = _centered_pair(c_a, c_b, CENTER, DOT_DTYPE, F16_MAGIC, BITS, ASM)
            q_a = tl.load(q_rows + ch[None, :], mask=row_ok[:, None], other=0.0).to(DOT_DTYPE)
            q_b = tl.load(q_rows + HALF + ch[None, :], mask=row_ok[:, None], other=0.0).to(DOT_DTYPE)
            s_a, o_a = _bf16_pair(tl.load(km + key * NG + g, mask=n_ok, other=0))
            s_b, o_b = _bf16_pair(tl.load(km + key * NG + g + GPH, mask=n_ok, other=0))
            s_a = s_a * qk_scale
            s_b = s_b * qk_scale
            o_a = o_a * qk_scale + CENTER * s_a
            o_b = o_b * qk_scale + CENTER * s_b
            d_a = tl.dot(q_a, tl.trans(k_a))
            d_b = tl.dot(q_b, tl.trans(k_b))
            qs_a = tl.sum(q_a.to(tl.float32), axis=1)
            qs_b = tl.sum(q_b.to(tl.float32), axis=1)
            s += d_a * s_a[None, :] + qs_a[:, None] * o_a[None, :]
            s += d_b * s_b[None, :] + qs_b[:, None] * o_b[None, :]
        # s is a finished sum (never a bare product), so s - m is exact at the row maximum even where
        # the compiler fuses multiply-adds: exp2 gives exactly 1 there (see flash_int8.py).
        m_new, alpha, p = _softmax_step(s, m_i, cols, n_ok, qi, shift, CAUSAL)
        vptr = vc + key[:, None] * CW + offs_h[None, :]
        vmask = n_ok[:, None] & h_ok[None, :]
        v_lo = tl.load(vptr, mask=vmask, other=0)
        v_hi = v_lo
        if BITS == 8:
            v_hi = tl.load(vptr + HALF, mask=vmask, other=0)
        v_lo, v_hi = _centered_pair(v_lo, v_hi, CENTER, DOT_DTYPE, F16_MAGIC, BITS, ASM)
        vs_lo, vz_lo = _bf16_pair(tl.load(vm + key * 2, mask=n_ok, other=0))
        vs_hi, vz_hi = _bf16_pair(tl.load(vm + key * 2 + 1, mask=n_ok, other=0))
        vz_lo += CENTER * vs_lo
        vz_hi += CENTER * vs_hi
        # The dots see P times each key's scale, rounded to the dot dtype; the offsets' share and the
        # denominator are fp32 sums of the unrounded P.
        l_i = l_i * alpha + tl.sum(p, axis=1)
        z_lo = z_lo * alpha + tl.sum(p * vz_lo[None, :], axis=1)
        z_hi = z_hi * alpha + tl.sum(p * vz_hi[None, :], axis=1)
        p_lo = (p * vs_lo[None, :]).to(DOT_DTYPE)
        p_hi = (p * vs_hi[None, :]).to(DOT_DTYPE)
        acc_lo = tl.dot(p_lo, v_lo, acc_lo * alpha[:, None])
        acc_hi = tl.dot(p_hi, v_hi, acc_hi * alpha[:, None])
        m_i = m_new

    acc_lo += z_lo[:, None]
    acc_hi += z_hi[:, None]
    _store_split(
        PACC, PM, PL, b, hq, qi, row_ok, Hkv, GROUP, Nq, NUM_SPLITS, m_i, l_i, acc_lo, acc_hi, HALF, BLOCK_H
    )


@triton.jit(do_not_specialize=["Hkv", "GROUP", "Nq", "Nmax", "NUM_M_BLOCKS", "CHUNK", "NUM_SPLITS"])
def _decode_kv_copies_kernel(
    Q,
    KC,
    KM,
    VC,
    VM,
    LENS,
    PACC,
    PM,
    PL,
    stride_qb,
    stride_qh,
    stride_qn,
    Hkv,
    GROUP,
    Nq,
    Nmax,
    qk_scale,
    NUM_M_BLOCKS,
    CHUNK,
    NUM_SPLITS,
    CAUSAL: tl.constexpr,
    BITS: tl.constexpr,
    HALF: tl.constexpr,
    GSIZE: tl.constexpr,
    NG: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_H: tl.constexpr,
    ASM: tl.constexpr = False,
    WORDS: tl.constexpr = False,
    HALVES: tl.constexpr = False,
    PDL: tl.constexpr = False,
):
    # The folded kernel with the 16-row tile's spare rows put to work. When a KV head has at most
    # BLOCK_M / NG rows (Nq = 1, GQA <= 4 with 4 groups of K), row m = c * RP + r holds real row r once
    # per K group c, and its Q row keeps only group c's channels. One dot over all of D then gives every
    # group's partial score q_c . k_c in its own row, each row needs just its own group's scale and
    # offset (an elementwise tile, not NG broadcast vectors), and the copies are summed into the score:
    #   q . k_j = sum_c (s_cj * (q_c . code_cj) + qsum_c * z_cj).
    # P keeps the copies: rows of the low half's groups carry P times V's low-half scales, the others
    # the high half's, so one P tile feeds both P.V dots, each read from the rows of its own half.
    # Scores stay in raw dot units; the softmax scale multiplies (s - m), exactly 0 at the maximum.
    # WORDS: K's and V's codes are read as int32 words (KC and VC are int32 pointers). Read as bytes,
    # the transposed K operand and the P.V operand V came from shared memory one byte per load
    # (LDS.U8) and were repacked by PRMTs. Byte i of every word (at 4 bits each nibble of it) becomes
    # its own tile and its own dot: Q.K's reduction is over channels, so any order of them does as
    # long as Q's follows it; P.V gives one accumulator per tile, stored to its channels at the end.
    # HALVES: a copy per group of a half of D (NC = NG / 2 copies, for twice the rows: Nq = 1 with GQA
    # 8 at 4 bits, D = 128). Copy c holds group c of the low half and group c of the high half, and the
    # halves' dots go to two score tiles, each scaled by its own group's scale and offset; the word
    # tiles keep the halves apart at 4 bits (even tiles low, odd high), so the dots are the same ones.
    if PDL:
        # The merge kernel may launch now; it waits for this grid's writes (gdc_wait).
        tl.extra.cuda.gdc_launch_dependents()
    GPH: tl.constexpr = HALF // GSIZE
    NC: tl.constexpr = GPH if HALVES else NG
    RP: tl.constexpr = BLOCK_M // NC
    bh_kv = tl.program_id(0).to(tl.int64)
    b = bh_kv // Hkv
    hkv = bh_kv % Hkv
    split = tl.program_id(1)
    offs_m = tl.arange(0, BLOCK_M)
    copy = offs_m // RP
    r = offs_m % RP
    row_ok = r < GROUP * Nq
    qi = r % Nq
    hq = hkv * GROUP + r // Nq
    # Rows whose P carries V's high-half scales, and (without HALVES) whose group is in the high half.
    upper = copy >= NC // 2
    offs_h = tl.arange(0, BLOCK_H)
    offs_n = tl.arange(0, BLOCK_N)
    h_ok = offs_h < HALF
    DOT_DTYPE: tl.constexpr = tl.float32 if UPCAST else Q.dtype.element_ty
    F16_MAGIC: tl.constexpr = Q.dtype.element_ty == tl.float16
    CW: tl.constexpr = HALF if BITS == 4 else 2 * HALF
    CENTER: tl.constexpr = 1 << (BITS - 1)

    q_rows = Q + b * stride_qb + hq[:, None].to(tl.int64) * stride_qh + qi[:, None] * stride_qn
    NW: tl.constexpr = CW // 4
    offs_w = tl.arange(0, NW)
    # qsum: each row's sum of its Q channels; with HALVES, of its low half's, and qsum_hi its high's.
    if WORDS:
        # Tile j's word w holds channel 4w + i (byte i; at 4 bits j = 2i + nibble, the high nibble
        # being channel 4w + i + HALF).
        if BITS == 4:
            qsum, qsum_hi, q0, q1, q2, q3, q4, q5, q6, q7 = _q_nibble_tiles(
                q_rows, row_ok, copy, GSIZE, NC, NW, BLOCK_M, DOT_DTYPE, HALVES
            )
        else:
            # The byte tiles mix the halves, so 8 bits never takes HALVES (decode_attention).
            tl.static_assert(not HALVES)
            qsum, q0, q2, q4, q6 = _q_byte_tiles(q_rows, row_ok, copy, GSIZE, NW, BLOCK_M, DOT_DTYPE)
        # fp16: K's codes keep the offset the conversion leaves (1024 + c; 64 + c for high nibbles,
        # see _nibble_word_codes), and the dot starts from minus Q's share of it, one value per row
        # (a row's channels are one group, in one half of D; with HALVES each half's dots have their
        # own score tile), instead of a subtraction per code. The fp32 sums then carry up to ~2^7
        # times what they compute (1024 against codes below 16): ~2^-17 of a score. On an H200 the
        # distance to the float64 emulation did not move (2.72e-4 against 2.73e-4 at 32k keys,
        # docs/perf.md "v10").
        KL: tl.constexpr = 1024.0 if F16_MAGIC else 0.0
        KH: tl.constexpr = 64.0 if F16_MAGIC else 0.0
        if HALVES:
            d_init = tl.broadcast_to(-(qsum * KL)[:, None], (BLOCK_M, BLOCK_N))
            dh_init = tl.broadcast_to(-(qsum_hi * KH)[:, None], (BLOCK_M, BLOCK_N))
        elif F16_MAGIC:
            kept = qsum * tl.where(upper, KH, KL) if BITS == 4 else qsum * KL
            d_init = tl.broadcast_to(-kept[:, None], (BLOCK_M, BLOCK_N))
        else:
            d_init = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    else:
        mine = row_ok[:, None] & h_ok[None, :] & ((offs_h // GSIZE)[None, :] == (copy % GPH)[:, None])
        mine_lo = mine if HALVES else mine & ~upper[:, None]
        mine_hi = mine if HALVES else mine & upper[:, None]
        q_lo = tl.load(q_rows + offs_h[None, :], mask=mine_lo, other=0.0).to(DOT_DTYPE)
        q_hi = tl.load(q_rows + HALF + offs_h[None, :], mask=mine_hi, other=0.0).to(DOT_DTYPE)
        if HALVES:
            qsum = tl.sum(q_lo.to(tl.float32), axis=1)
            qsum_hi = tl.sum(q_hi.to(tl.float32), axis=1)
        else:
            qsum = tl.sum(q_lo.to(tl.float32) + q_hi.to(tl.float32), axis=1)

    length = tl.load(LENS + b)
    lo = split * CHUNK
    hi = tl.minimum(lo + CHUNK, length)
    kc = KC + bh_kv * Nmax * (NW if WORDS else CW)
    vc = VC + bh_kv * Nmax * (NW if WORDS else CW)
    km = KM + bh_kv * Nmax * NG
    vm = VM + bh_kv * Nmax * 2
    shift = length - Nq

    # The softmax runs on the RP real rows (after the copies are summed), then P is repeated.
    r4 = tl.arange(0, RP)
    qi4 = r4 % Nq
    m_i = tl.full([RP], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([RP], dtype=tl.float32)
    z_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc_lo = tl.zeros([BLOCK_M, BLOCK_H], dtype=tl.float32)
    acc_hi = tl.zeros([BLOCK_M, BLOCK_H], dtype=tl.float32)
    # WORDS: one accumulator per word tile of V (column w of tile j: the channel of K's tile j).
    acc0 = tl.zeros([BLOCK_M, NW], dtype=tl.float32)
    acc1 = tl.zeros([BLOCK_M, NW], dtype=tl.float32)
    acc2 = tl.zeros([BLOCK_M, NW], dtype=tl.float32)
    acc3 = tl.zeros([BLOCK_M, NW], dtype=tl.float32)
    acc4 = tl.zeros([BLOCK_M, NW], dtype=tl.float32)
    acc5 = tl.zeros([BLOCK_M, NW], dtype=tl.float32)
    acc6 = tl.zeros([BLOCK_M, NW], dtype=tl.float32)
    acc7 = tl.zeros([BLOCK_M, NW], dtype=tl.float32)
    for start in range(lo, hi, BLOCK_N):
        cols = start + offs_n
        n_ok = cols < hi
        key = cols.to(tl.int64)
        tile_ok = n_ok[:, None] & h_ok[None, :]
        # K's codes plain (0 .. 2^BITS - 1), exact in the dot dtype: its scales and offsets act on fp32
        # sums of exact products, so centring would change nothing but an add per score.
        if WORDS:
            kw = tl.load(kc + key[:, None] * NW + offs_w[None, :], mask=n_ok[:, None], other=0)
            kw = kw.to(tl.uint32, bitcast=True)
            if BITS == 4:
                k0, k1, k2, k3, k4, k5, k6, k7 = _nibble_word_codes(kw, 0, DOT_DTYPE, F16_MAGIC, ASM, KL, KH)
                d = tl.dot(q0, tl.trans(k0), d_init)
                if HALVES:
                    dh = tl.dot(q1, tl.trans(k1), dh_init)
                else:
                    d = tl.dot(q1, tl.trans(k1), d)
                d = tl.dot(q2, tl.trans(k2), d)
                if HALVES:
                    dh = tl.dot(q3, tl.trans(k3), dh)
                else:
                    d = tl.dot(q3, tl.trans(k3), d)
                d = tl.dot(q4, tl.trans(k4), d)
                if HALVES:
                    dh = tl.dot(q5, tl.trans(k5), dh)
                else:
                    d = tl.dot(q5, tl.trans(k5), d)
                d = tl.dot(q6, tl.trans(k6), d)
                if HALVES:
                    dh = tl.dot(q7, tl.trans(k7), dh)
                else:
                    d = tl.dot(q7, tl.trans(k7), d)
            else:
                k0, k2, k4, k6 = _byte_word_codes(kw, 0, DOT_DTYPE, F16_MAGIC, ASM, KL)
                d = tl.dot(q0, tl.trans(k0), d_init)
                d = tl.dot(q2, tl.trans(k2), d)
                d = tl.dot(q4, tl.trans(k4), d)
                d = tl.dot(q6, tl.trans(k6), d)
        else:
            kptr = kc + key[:, None] * CW + offs_h[None, :]
            k_a = tl.load(kptr, mask=tile_ok, other=0)
            k_b = k_a
            if BITS == 8:
                k_b = tl.load(kptr + HALF, mask=tile_ok, other=0)
            k_a, k_b = _centered_pair(k_a, k_b, 0, DOT_DTYPE, F16_MAGIC, BITS, ASM)
            if HALVES:
                d = tl.dot(q_lo, tl.trans(k_a))
                dh = tl.dot(q_hi, tl.trans(k_b))
            else:
                d = tl.dot(q_hi, tl.trans(k_b), tl.dot(q_lo, tl.trans(k_a)))
        # Each group's (scale, offset) words once, then repeated over the rows of its copy.
        if HALVES:
            ks, share = _copy_meta(km, key, n_ok, qsum, 0, NG, NC, RP, BLOCK_M, BLOCK_N)
            ksh, share_hi = _copy_meta(km, key, n_ok, qsum_hi, NC, NG, NC, RP, BLOCK_M, BLOCK_N)
            part = d * ks + share + (dh * ksh + share_hi)
        else:
            ks, share = _copy_meta(km, key, n_ok, qsum, 0, NG, NC, RP, BLOCK_M, BLOCK_N)
            part = d * ks + share
        s = tl.sum(tl.reshape(part, (NC, RP, BLOCK_N)), axis=0)
        valid = n_ok[None, :]
        if CAUSAL:
            valid = valid & (cols[None, :] <= qi4[:, None] + shift)
        s = tl.where(valid, s, float("-inf"))
        # Lazy rescaling: the running maximum m_i moves only when a block's maximum passes it by more
        # than 2^LAZY_LOG2 in P's units, so P stays below 2^LAZY_LOG2 and most steps skip the
        # accumulators' rescaling. One warp holds the tile, so the branch is uniform.
        m_blk = tl.max(s, axis=1)
        grow = tl.where(m_blk > m_i, m_blk - m_i, 0.0)
        if tl.max(grow, axis=0) * qk_scale > LAZY_LOG2:
            m_new = tl.maximum(m_i, m_blk)
            # A row that has seen only masked keys keeps m = -inf: subtract 0 so exp2 gives 0, not NaN.
            alpha4 = tl.math.exp2((m_i - tl.where(m_new == float("-inf"), 0.0, m_new)) * qk_scale)
            l_i = l_i * alpha4
            alpha = tl.reshape(tl.broadcast_to(alpha4[None, :], (NC, RP)), (BLOCK_M,))
            z_i = z_i * alpha
            acc0 = acc0 * alpha[:, None]
            acc1 = acc1 * alpha[:, None]
            acc2 = acc2 * alpha[:, None]
            acc3 = acc3 * alpha[:, None]
            acc4 = acc4 * alpha[:, None]
            acc5 = acc5 * alpha[:, None]
            acc6 = acc6 * alpha[:, None]
            acc7 = acc7 * alpha[:, None]
            acc_lo = acc_lo * alpha[:, None]
            acc_hi = acc_hi * alpha[:, None]
            m_i = m_new
        p4 = tl.math.exp2((s - tl.where(m_i == float("-inf"), 0.0, m_i)[:, None]) * qk_scale)
        l_i = l_i + tl.sum(p4, axis=1)
        p = tl.reshape(tl.broadcast_to(p4[None, :, :], (NC, RP, BLOCK_N)), (BLOCK_M, BLOCK_N))
        vmeta = tl.load(vm + key[None, :] * 2 + tl.arange(0, 2)[:, None], mask=n_ok[None, :], other=0)
        vmeta = tl.broadcast_to(vmeta[:, None, :], (2, BLOCK_M // 2, BLOCK_N))
        vs, vz = _bf16_pair(tl.reshape(vmeta, (BLOCK_M, BLOCK_N)))
        vz += CENTER * vs
        z_i = z_i + tl.sum(p * vz, axis=1)
        pv = (p * vs).to(DOT_DTYPE)
        # V's codes centred, its offsets shifted to match (above): P times the scale is rounded to the
        # dot dtype, and centred codes keep what that rounding multiplies small (the offsets' share is
        # an fp32 sum of the unrounded P).
        if WORDS:
            # The word tiles are the P.V dots' second operands, (keys x words): a thread's pair of
            # neighbouring keys of a word comes from two 4-byte loads (read as bytes, it took one
            # shared-memory load per byte).
            vw = tl.load(vc + key[:, None] * NW + offs_w[None, :], mask=n_ok[:, None], other=0)
            vw = vw.to(tl.uint32, bitcast=True)
            if BITS == 4:
                v0, v1, v2, v3, v4, v5, v6, v7 = _nibble_word_codes(vw, CENTER, DOT_DTYPE, F16_MAGIC, ASM)
                acc1 = tl.dot(pv, v1, acc1)
                acc3 = tl.dot(pv, v3, acc3)
                acc5 = tl.dot(pv, v5, acc5)
                acc7 = tl.dot(pv, v7, acc7)
            else:
                v0, v2, v4, v6 = _byte_word_codes(vw, CENTER, DOT_DTYPE, F16_MAGIC, ASM)
            acc0 = tl.dot(pv, v0, acc0)
            acc2 = tl.dot(pv, v2, acc2)
            acc4 = tl.dot(pv, v4, acc4)
            acc6 = tl.dot(pv, v6, acc6)
        else:
            vptr = vc + key[:, None] * CW + offs_h[None, :]
            v_a = tl.load(vptr, mask=tile_ok, other=0)
            v_b = v_a
            if BITS == 8:
                v_b = tl.load(vptr + HALF, mask=tile_ok, other=0)
            v_a, v_b = _centered_pair(v_a, v_b, CENTER, DOT_DTYPE, F16_MAGIC, BITS, ASM)
            acc_lo = tl.dot(pv, v_a, acc_lo)
            acc_hi = tl.dot(pv, v_b, acc_hi)

    # Raw dot units to the log2 units the merge expects (the denominators are unchanged).
    m_i = m_i * qk_scale
    first = row_ok & (copy == 0)
    second = row_ok & (copy == NC // 2)
    slot4 = _split_slot(b, hkv * GROUP + r4 // Nq, qi4, Hkv, GROUP, Nq, NUM_SPLITS)
    tl.store(PM + slot4, m_i, mask=r4 < GROUP * Nq)
    tl.store(PL + slot4, l_i, mask=r4 < GROUP * Nq)
    slot = _split_slot(b, hq, qi, Hkv, GROUP, Nq, NUM_SPLITS)
    z = z_i[:, None]
    if WORDS and BITS == 4:
        # The eight tiles back in channel order (the inverse of _q_nibble_tiles' permutation), so
        # each row's partial sum is one contiguous store instead of scattered 4-byte ones.
        lo_t = tl.join(tl.join(acc0, acc4), tl.join(acc2, acc6))
        hi_t = tl.join(tl.join(acc1, acc5), tl.join(acc3, acc7))
        full = tl.reshape(tl.join(lo_t, hi_t), (BLOCK_M, NW, 4, 2))
        full = tl.reshape(tl.permute(full, (0, 3, 1, 2)), (BLOCK_M, 2 * HALF))
        ch = tl.arange(0, 2 * HALF)
        rows = tl.where((ch >= HALF)[None, :], second[:, None], first[:, None])
        tl.store(PACC + slot[:, None] * (2 * HALF) + ch[None, :], full + z, mask=rows)
    elif WORDS:
        _store_word_tile(PACC, slot, acc0 + z, 4 * offs_w + 0, first, second, HALF, 2 * HALF)
        _store_word_tile(PACC, slot, acc2 + z, 4 * offs_w + 1, first, second, HALF, 2 * HALF)
        _store_word_tile(PACC, slot, acc4 + z, 4 * offs_w + 2, first, second, HALF, 2 * HALF)
        _store_word_tile(PACC, slot, acc6 + z, 4 * offs_w + 3, first, second, HALF, 2 * HALF)
    else:
        acc_ptrs = PACC + slot[:, None] * (2 * HALF) + offs_h[None, :]
        tl.store(acc_ptrs, acc_lo + z, mask=first[:, None] & h_ok[None, :])
        tl.store(acc_ptrs + HALF, acc_hi + z, mask=second[:, None] & h_ok[None, :])


@triton.jit(do_not_specialize=["Hkv", "GROUP", "Nq", "Nmax", "NUM_M_BLOCKS", "CHUNK", "NUM_SPLITS"])
def _decode_kv_dequant_kernel(
    Q,
    KC,
    KM,
    VC,
    VM,
    LENS,
    PACC,
    PM,
    PL,
    stride_qb,
    stride_qh,
    stride_qn,
    Hkv,
    GROUP,
    Nq,
    Nmax,
    qk_scale,
    NUM_M_BLOCKS,
    CHUNK,
    NUM_SPLITS,
    CAUSAL: tl.constexpr,
    BITS: tl.constexpr,
    HALF: tl.constexpr,
    GSIZE: tl.constexpr,
    NG: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_H: tl.constexpr,
    PACKED: tl.constexpr = False,
    PDL: tl.constexpr = False,
):
    if PDL:
        # The merge kernel may launch now; it waits for this grid's writes (gdc_wait).
        tl.extra.cuda.gdc_launch_dependents()
    bh_kv, b, row_ok, qi, hq = _program_rows(Hkv, GROUP, Nq, NUM_M_BLOCKS, BLOCK_M)
    split = tl.program_id(1)
    offs_h = tl.arange(0, BLOCK_H)
    offs_n = tl.arange(0, BLOCK_N)
    h_ok = offs_h < HALF
    q_ptrs = (
        Q + b * stride_qb + hq[:, None].to(tl.int64) * stride_qh + qi[:, None] * stride_qn + offs_h[None, :]
    )
    q_lo = tl.load(q_ptrs, mask=row_ok[:, None] & h_ok[None, :], other=0.0)
    q_hi = tl.load(q_ptrs + HALF, mask=row_ok[:, None] & h_ok[None, :], other=0.0)
    DOT_DTYPE: tl.constexpr = tl.float32 if UPCAST else Q.dtype.element_ty
    q_lo = q_lo.to(DOT_DTYPE)
    q_hi = q_hi.to(DOT_DTYPE)

    length = tl.load(LENS + b)
    lo = split * CHUNK
    hi = tl.minimum(lo + CHUNK, length)
    CW: tl.constexpr = HALF if BITS == 4 else 2 * HALF
    kc = KC + bh_kv * Nmax * CW
    vc = VC + bh_kv * Nmax * CW
    km = KM + bh_kv * Nmax * NG * 2
    vm = VM + bh_kv * Nmax * 4
    shift = length - Nq

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc_lo = tl.zeros([BLOCK_M, BLOCK_H], dtype=tl.float32)
    acc_hi = tl.zeros([BLOCK_M, BLOCK_H], dtype=tl.float32)
    for start in range(lo, hi, BLOCK_N):
        cols = start + offs_n
        n_ok = cols < hi
        k_lo, k_hi = _dequant_halves(
            kc, km, cols, offs_h, n_ok, BITS, HALF, GSIZE, NG, DOT_DTYPE, BLOCK_N, BLOCK_H, PACKED=PACKED
        )
        s = tl.dot(q_lo, tl.trans(k_lo)) + tl.dot(q_hi, tl.trans(k_hi))
        m_new, alpha, p = _softmax_step(s * qk_scale, m_i, cols, n_ok, qi, shift, CAUSAL)
        p = p.to(DOT_DTYPE)
        # V: one (scale, offset) per half of D and token, a "group" as wide as the padded half.
        v_lo, v_hi = _dequant_halves(
            vc, vm, cols, offs_h, n_ok, BITS, HALF, BLOCK_H, 2, DOT_DTYPE, BLOCK_N, BLOCK_H, PACKED=PACKED
        )
        # The denominator sums the rounded P the dots see, so numerator and denominator agree.
        l_i = l_i * alpha + tl.sum(p.to(tl.float32), axis=1)
        acc_lo = tl.dot(p, v_lo, acc_lo * alpha[:, None])
        acc_hi = tl.dot(p, v_hi, acc_hi * alpha[:, None])
        m_i = m_new

    _store_split(
        PACC, PM, PL, b, hq, qi, row_ok, Hkv, GROUP, Nq, NUM_SPLITS, m_i, l_i, acc_lo, acc_hi, HALF, BLOCK_H
    )


@triton.jit
def _split_stats(PM, PL, row, offs_s, NUM_SPLITS):
    """The maxima (-inf past the last split) and denominators of a row's splits ``offs_s``."""
    s_ok = offs_s < NUM_SPLITS
    m = tl.load(PM + row * NUM_SPLITS + offs_s, mask=s_ok, other=float("-inf"))
    l = tl.load(PL + row * NUM_SPLITS + offs_s, mask=s_ok, other=0.0)
    return m, l


@triton.jit
def _split_partials(PACC, row, offs_s, NUM_SPLITS, offs_d, d_ok, D):
    """The partial sums of a row's splits ``offs_s`` over the channels ``offs_d`` (zeros outside).
    The merge loads them after forming the weights: loaded with the statistics, its sm_90a code
    spilled more registers (50 local stores against 30 at 256 splits on one warp)."""
    return tl.load(
        PACC + (row * NUM_SPLITS + offs_s[:, None]) * D + offs_d[None, :],
        mask=(offs_s < NUM_SPLITS)[:, None] & d_ok[None, :],
        other=0.0,
    )


@triton.jit
def _combine_splits_kernel(
    PACC,
    PM,
    PL,
    O,
    NUM_SPLITS,
    D,
    BLOCK_S: tl.constexpr,
    BLOCK_D: tl.constexpr,
    ONE_BLOCK: tl.constexpr = True,
    PDL: tl.constexpr = False,
):
    if PDL:
        # Launched as a programmatic dependent of the decode kernel (Hopper): it may start while the
        # decode grid finishes, and waits here until the decode grid's writes are visible.
        tl.extra.cuda.gdc_wait()
    # One program per row and block of BLOCK_D channels: a decode step has few rows (32 at Nq = 1,
    # Hq = 32), and one program per row left most SMs idle while each read every split serially.
    row = tl.program_id(0).to(tl.int64)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    if ONE_BLOCK:
        # Every split at once (NUM_SPLITS <= BLOCK_S: every default config).
        offs_s = tl.arange(0, BLOCK_S)
        m, l = _split_stats(PM, PL, row, offs_s, NUM_SPLITS)
        m_max = tl.max(m, axis=0)
        # Splits that saw no key (m = -inf) weigh 0; a row that saw none at all comes out as zeros.
        w = tl.math.exp2(m - tl.where(m_max == float("-inf"), 0.0, m_max))
        denom = tl.sum(w * l, axis=0)
        acc = _split_partials(PACC, row, offs_s, NUM_SPLITS, offs_d, d_ok, D)
        out = tl.sum(acc * w[:, None], axis=0)
    else:
        # More splits than one block (an explicit config's): BLOCK_S at a time, with a running maximum,
        # so the tile stays bounded.
        m_run = tl.full([], float("-inf"), dtype=tl.float32)
        denom = tl.full([], 0.0, dtype=tl.float32)
        out = tl.zeros([BLOCK_D], dtype=tl.float32)
        for first in range(0, NUM_SPLITS, BLOCK_S):
            offs_s = first + tl.arange(0, BLOCK_S)
            m, l = _split_stats(PM, PL, row, offs_s, NUM_SPLITS)
            m_new = tl.maximum(m_run, tl.max(m, axis=0))
            base = tl.where(m_new == float("-inf"), 0.0, m_new)
            kept = tl.math.exp2(m_run - base)
            w = tl.math.exp2(m - base)
            acc = _split_partials(PACC, row, offs_s, NUM_SPLITS, offs_d, d_ok, D)
            denom = denom * kept + tl.sum(w * l, axis=0)
            out = out * kept + tl.sum(acc * w[:, None], axis=0)
            m_run = m_new
    out = out / tl.where(denom > 0, denom, 1.0)
    tl.store(O + row * D + offs_d, out.to(O.dtype.element_ty), mask=d_ok)


@dataclass(frozen=True)
class DecodeConfig:
    """Tiles of :func:`decode_attention`; ``block_m=0`` picks the rows per program from the shape.

    ``fold``: which kernel. True: dequantization folded into the dots (per-score work, cheapest when
    the rows of a KV head fit one 16-row tile); False: every code dequantized in registers before the
    dots (per-code work, cheapest for many rows); None: by the rows per program (16 or fewer: folded).
    ``max_registers``: a cap on registers per thread (ptxas ``maxnreg``) for occupancy experiments;
    None leaves it to the compiler. Capping the folded kernel at 168 or 128 to fit more programs per
    SM spilled and lost on an H200 (docs/perf.md).
    ``ptx``: on a GPU, the folded kernel turns fp16 codes into centred integers with packed inline-PTX
    conversions (1.05-1.14x on an H200), and the dequantizing kernel dequantizes with fp16 FMAs where
    the cache's ``fp16_meta`` allows; False runs the portable paths the interpreter runs. Both give
    the same dot operands, so the same output bits.
    ``copies``: the folded kernel's tile holds every row once per group of K, or at 4 bits once per
    group of a half of D (see ``_decode_kv_copies_kernel``). None: wherever the rows of a KV head fit
    (K's groups a power of two, at most ``block_m / groups`` rows, or ``block_m / (groups / 2)`` per
    half: at D = 128, Nq = 1 with GQA up to 8 at 4 bits and at 8 bits); True: required (ValueError
    where they do not fit); False: never.
    """

    block_m: int
    block_n: int
    num_warps: int
    num_stages: int
    target_programs: int
    fold: bool | None = None
    max_registers: int | None = None
    ptx: bool = True
    copies: bool | None = None


def _check_config(cfg) -> None:
    """ValueError naming the first field of an explicit ``DecodeConfig`` the kernels cannot take."""
    if not isinstance(cfg, DecodeConfig):
        raise ValueError(f"config: expected a DecodeConfig or None, got {type(cfg).__name__}")

    def whole(x, lo: int = 1, hi: int | None = None) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= lo and (hi is None or x <= hi)

    def power_of_two(x, lo: int, hi: int) -> bool:
        return whole(x, lo, hi) and x & (x - 1) == 0

    if not (cfg.block_m == 0 or power_of_two(cfg.block_m, 16, 128)):
        raise ValueError(
            f"config.block_m: expected 0 (from the shape) or a power of two in 16..128, got {cfg.block_m!r}"
        )
    if not power_of_two(cfg.block_n, 16, 256):
        raise ValueError(f"config.block_n: expected a power of two in 16..256, got {cfg.block_n!r}")
    if not power_of_two(cfg.num_warps, 1, 16):
        raise ValueError(f"config.num_warps: expected 1, 2, 4, 8 or 16, got {cfg.num_warps!r}")
    for name in ("num_stages", "target_programs"):
        if not whole(getattr(cfg, name)):
            raise ValueError(f"config.{name}: expected an int >= 1, got {getattr(cfg, name)!r}")
    for name in ("fold", "copies"):
        if not (getattr(cfg, name) is None or isinstance(getattr(cfg, name), bool)):
            raise ValueError(f"config.{name}: expected None, True or False, got {getattr(cfg, name)!r}")
    if not isinstance(cfg.ptx, bool):
        raise ValueError(f"config.ptx: expected a bool, got {cfg.ptx!r}")
    if not (cfg.max_registers is None or whole(cfg.max_registers, 24, 255)):
        raise ValueError(
            f"config.max_registers: expected None or an int in 24..255, got {cfg.max_registers!r}"
        )


def folded(cfg: DecodeConfig) -> bool:
    """Whether ``cfg`` runs the folded kernel: as asked, else for tiles of at most 16 rows, where it
    measured faster (int4 1.11-1.13x at Nq <= 4; in 16-row blocks up to 32 rows, "v11"); with larger
    tiles its per-score work loses (docs/perf.md)."""
    return cfg.block_m <= 16 if cfg.fold is None else bool(cfg.fold)


def _config(
    device: torch.device,
    rows: int,
    override: DecodeConfig | None,
    head_keys: int = 1 << 23,
    bits: int = 4,
    head_dim: int = 128,
    packed: bool = False,
) -> DecodeConfig:
    # Rows per program: every (query head, query) pair of a KV head in one tile where it fits, so the
    # cache is read once; at least 16 (the smallest dot). Up to 32 rows take two 16-row programs of
    # the folded kernel instead (each reads the KV tiles; the second mostly from L2): on an H200 at
    # 32 rows per KV head (MQA at Nq = 1; GQA 4 at Nq = 8; GQA 8 at Nq = 4; GQA 2 at Nq = 16) 0.82-0.91x
    # the time of one 32-row dequantizing program at 32k and 128k keys, both widths (docs/perf.md "v11");
    # at 64 rows it took 2.3-3.1x.
    block_m = 16 if rows <= 32 else min(64, triton.next_power_of_2(rows))
    # With fp16 FMAs (``packed``: an fp16 cache whose metadata fp16 holds exactly) one 64-row program
    # of the dequantizing kernel beat those two at 17-32 rows per KV head: 1.02-1.23x at 4k-128k keys
    # on an H200, except 0.95-0.98x at 32k keys with one KV head (docs/perf.md "v17").
    if packed and rows > 16 and (override is None or override.fold is not True):
        block_m = 64
    if override is not None:
        return override if override.block_m else replace(override, block_m=block_m)
    if interpreting():
        return DecodeConfig(block_m=16, block_n=32, num_warps=4, num_stages=1, target_programs=4)
    sms = sm_count(device.index if device.index is not None else torch.cuda.current_device())
    if block_m == 16:
        # Folded kernels (16 rows): 32-key tiles on one warp, 3 stages, 8 programs per SM. One warp
        # holds the whole 16-row tile, so P goes from the score dot to the P.V dot in registers (no
        # shared-memory exchange and barrier between warps). On an H200 (Nq = 1, GQA 4), against 64-key
        # tiles on 2 warps at 4 per SM: int4 1.16x at 32k keys and 1.22x at 128k, int8 1.15x at
        # both (docs/perf.md, "v9"). Short caches take half the programs: splits of a few tiles spent
        # more on their fixed cost and the merge than they saved. What counts is the keys per split,
        # so the threshold is on the cache's keys summed over batch and KV heads (``head_keys``). On
        # an H200 at Nq = 1 with 8 KV heads (five repeats each, "v10"): int4 up to 8k keys (8.1 against
        # 8.4 us at 8k; 11.2 against 11.6 at 16k, where the copies kernel's cheaper start made 8 per SM
        # pay), int8 up to 32k (24.1 against 26.0 us at 32k; 42.3 against 43.3 at 64k). With 32 KV
        # heads (MHA, or a batch of 4) int8 at 32k keys took 73.4 us at 8 per SM against 92.5 at 4.
        # Two row blocks read the keys twice: they count twice. With 32 rows per KV head and 8 KV heads
        # int8 at 32k keys took 47.7 us at 8 per SM against 50.7 at 4; with one KV head (MQA) 4 per SM
        # stayed ahead up to 32k keys at 4 bits (12.4 against 14.3 us) and 128k at 8 (29.3 against 29.7).
        # 8 bits (five lengths 16k-128k each, "v11"): at D = 64 8 per SM won from 16k keys (13.96
        # against 15.58 us at 32k), so it takes the 4-bit threshold; 5-8 rows per KV head at D >= 128
        # (GQA 8) took 4 at every length (78.5 against 85.0 us at 128k, Hq 64 / Hkv 8).
        if bits == 8 and head_dim >= 128 and 4 < rows <= 8:
            per_sm = 4
        else:
            threshold = 8 * (32768 if bits == 8 and head_dim >= 128 else 8192)
            per_sm = 8 if head_keys * triton.cdiv(rows, 16) > threshold else 4
        return DecodeConfig(block_m=16, block_n=32, num_warps=1, num_stages=3, target_programs=per_sm * sms)
    # Enough programs to fill every SM twice: decode is bound by the bytes in flight. From a sweep of
    # BLOCK_N 64-256, 4-8 warps, 2-3 stages, 1-4 programs per SM on an H100 (bench/bench_lowbit.py
    # --sweep): best for 8 bits; within 6% of the best for 4 bits (docs/perf.md).
    return DecodeConfig(block_m=block_m, block_n=128, num_warps=4, num_stages=2, target_programs=2 * sms)


def decode_attention(
    q: torch.Tensor,
    cache: QuantizedKV,
    *,
    causal: bool = False,
    sm_scale: float | None = None,
    config: DecodeConfig | None = None,
) -> torch.Tensor:
    """softmax(sm_scale · Q K^T [+ causal mask]) · V against a :func:`quantize_kv` cache.

    ``q``: (B, Hq, Nq, D) in the cache's dtype and on its device, Hq a multiple of the cache's Hkv
    (MHA, GQA, MQA; query head h reads KV head h // (Hq // Hkv)), last dimension contiguous. Batch
    entry b sees its first ``cache.lengths[b]`` keys; with ``causal`` (bottom-right within that length)
    query i sees key j iff j <= i + lengths[b] - Nq. A row that sees no key is zeros. ``sm_scale``
    defaults to 1/sqrt(D). Returns a new contiguous (B, Hq, Nq, D) tensor in q's dtype.
    ``config`` overrides the tile sizes and split count (benchmarks). Unusable input raises ValueError.
    """
    if not isinstance(cache, QuantizedKV):
        raise ValueError(f"cache: expected a QuantizedKV from quantize_kv, got {type(cache).__name__}")
    if not isinstance(q, torch.Tensor) or q.dim() != 4:
        raise ValueError(f"q: expected a 4-d tensor (B, Hq, Nq, D), got {getattr(q, 'shape', q)!r}")
    B, Hkv, Nmax, D = cache.shape
    Bq, Hq, Nq, Dq = q.shape
    if q.dtype != cache.dtype:
        raise ValueError(f"q: expected dtype {cache.dtype} (the cache's), got {q.dtype}")
    if q.device != cache.device:
        raise ValueError(f"q: expected device {cache.device} (the cache's), got {q.device}")
    if Bq != B or Dq != D:
        raise ValueError(f"q: expected batch {B} and head dim {D} (the cache's), got shape {tuple(q.shape)}")
    if Hq == 0 or Hq % Hkv != 0:
        raise ValueError(f"q: expected a multiple of the cache's {Hkv} heads (MHA, GQA or MQA), got {Hq}")
    if q.stride(-1) != 1:
        raise ValueError(f"q: expected the last dimension to be contiguous (stride 1), got {q.stride()}")
    if not isinstance(causal, bool):
        raise ValueError(f"causal: expected a bool, got {type(causal).__name__}")
    if sm_scale is None:
        scale = 1.0 / math.sqrt(D)
    elif (
        isinstance(sm_scale, bool)
        or not isinstance(sm_scale, (int, float))
        or not (math.isfinite(sm_scale) and sm_scale > 0)
    ):
        raise ValueError(f"sm_scale: expected a finite positive float or None, got {sm_scale!r}")
    else:
        scale = float(sm_scale)
    if config is not None:
        _check_config(config)
    if q.device.type != "cuda" and not interpreting():
        raise ValueError(f"q: expected a CUDA tensor (or TRITON_INTERPRET=1), got device {q.device}")
    if B * Hq * Nq * D == 0 or cache.max_length == 0:
        return q.new_zeros((B, Hq, Nq, D))
    # Every row is written by the merge kernel (zeros where no key is seen).
    out = q.new_empty((B, Hq, Nq, D))
    group = Hq // Hkv
    # fp16 FMAs in the dequantizing kernel, where the cache's metadata fp16 holds exactly.
    packed = cache.fp16_meta and not interpreting() and (config is None or config.ptx)
    cfg = _config(q.device, group * Nq, config, B * Hkv * cache.max_length, cache.bits, D, packed)
    fold = folded(cfg)
    n_groups = D // cache.k.group
    # The copies kernel reads K's and V's codes as int32 words where a word tile is a dot of at least 16.
    word_tiles = (D // 2 if cache.bits == 4 else D) // 4 >= 16
    pow2 = fold and n_groups & (n_groups - 1) == 0
    # A copy per group of K; or a copy per group of a half of D (HALVES), for twice the rows, where the
    # tiles keep the halves apart (4 bits, or bytes) and each half has at least two groups.
    per_half = n_groups >= 4 and (cache.bits == 4 or not word_tiles)
    limit = cfg.block_m // (n_groups // 2 if per_half else n_groups)
    whole = pow2 and group * Nq <= cfg.block_m // n_groups
    halves = pow2 and per_half and group * Nq <= limit
    if cfg.copies and not (whole or halves):
        copy_of = "group of a half of D" if per_half else "group of K"
        raise ValueError(
            f"config: copies=True needs the folded kernel, a power-of-two count of K's groups and at "
            f"most {limit} rows per KV head here (block_m {cfg.block_m}, a copy of each row per "
            f"{copy_of}, {n_groups} groups), got {group * Nq} rows (GQA {group} x Nq {Nq}), fold={fold}"
        )
    copies = (whole or halves) and cfg.copies is not False
    halves = copies and not whole
    num_m = 1 if copies else triton.cdiv(group * Nq, cfg.block_m)
    programs = B * Hkv * num_m
    splits = max(
        1, min(triton.cdiv(cfg.target_programs, programs), triton.cdiv(cache.max_length, cfg.block_n))
    )
    chunk = triton.cdiv(triton.cdiv(cache.max_length, splits), cfg.block_n) * cfg.block_n
    splits = triton.cdiv(cache.max_length, chunk)
    rows = B * Hq * Nq
    pacc = torch.empty((rows, splits, D), dtype=torch.float32, device=q.device)
    pm = torch.empty((rows, splits), dtype=torch.float32, device=q.device)
    pl = torch.empty((rows, splits), dtype=torch.float32, device=q.device)
    kernel = _decode_kv_copies_kernel if copies else _decode_kv_kernel if fold else _decode_kv_dequant_kernel
    words = copies and word_tiles
    kq, vq = cache.k, cache.v
    # The folded kernel reads each (scale, offset) pair as one int32 word; the other a bf16 tile.
    kmeta, vmeta = (kq.meta.view(FOLDED_META), vq.meta.view(FOLDED_META)) if fold else (kq.meta, vq.meta)
    # Hopper and later: the merge is launched as a programmatic dependent of the decode kernel, so
    # its launch overlaps the decode grid's tail instead of following it.
    pdl = MERGE_PDL and not interpreting() and torch.cuda.get_device_capability(q.device)[0] >= 9
    kcodes, vcodes = (
        (kq.codes.view(torch.int32), vq.codes.view(torch.int32)) if words else (kq.codes, vq.codes)
    )
    kernel[(programs, splits)](
        q, kcodes, kmeta, vcodes, vmeta, cache.lengths, pacc, pm, pl,
        q.stride(0), q.stride(1), q.stride(2),
        Hkv, group, Nq, Nmax, scale * LOG2E, num_m, chunk, splits,
        CAUSAL=causal, BITS=kq.bits, HALF=D // 2, GSIZE=kq.group, NG=D // kq.group,
        UPCAST=interpreting() and q.dtype == torch.bfloat16,
        # Inline PTX cannot run in the interpreter, which takes the portable path to the same values.
        **({"ASM": cfg.ptx and not interpreting()} if fold else {}),
        **({} if fold else {"PACKED": packed}),
        **({"WORDS": words, "HALVES": halves} if copies else {}),
        PDL=pdl,
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_H=triton.next_power_of_2(D // 2),
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
        # The dequantizing kernel's s = dot * scale is a bare product: fused into s - m it would make
        # exp2 miss 1 at the row maximum (see flash_int8.py). The folded kernel's s is a finished sum.
        enable_fp_fusion=fold,
        **({} if cfg.max_registers is None else {"maxnreg": cfg.max_registers}),
    )  # fmt: skip
    block_d = min(MERGE_BLOCK_D, triton.next_power_of_2(D))
    # A (splits x 16) tile on one warp spilled past 256 splits: with one KV head and 8 programs per SM
    # (1024 splits) a 128k-key step took 88 us on an H200 against 24 with more warps (docs/perf.md "v11").
    block_s = min(MERGE_BLOCK_S, triton.next_power_of_2(splits))
    _combine_splits_kernel[(rows, triton.cdiv(D, block_d))](
        pacc, pm, pl, out, splits, D,
        BLOCK_S=block_s, BLOCK_D=block_d, ONE_BLOCK=splits <= block_s,
        num_warps=MERGE_WARPS * max(1, block_s // 256),
        **({"PDL": True, "launch_pdl": True} if pdl else {}),
    )  # fmt: skip
    return out


def dequantize_kv(
    cache: QuantizedKV, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """K (smoothed, if the cache was) and V as the cache stores them, (B, Hkv, Nmax, D) in ``dtype``."""
    return dequantize_groups(cache.k, dtype), dequantize_groups(cache.v, dtype)


def decode_emulate(
    q: torch.Tensor, cache: QuantizedKV, *, causal: bool = False, sm_scale: float | None = None
) -> torch.Tensor:
    """float64 emulation of :func:`decode_attention`: the cache's own dequantized K/V in float64 (the
    kernel's dots see the codes exactly and apply scales and offsets in fp32), then exact attention
    over each row's filled keys. The kernel differs only by rounding P times V's scales to q's dtype."""
    k, v = dequantize_kv(cache, torch.float64)
    outs = []
    for b in range(q.size(0)):
        n = int(cache.lengths[b])
        outs.append(
            attention_reference(
                q[b : b + 1], k[b : b + 1, :, :n], v[b : b + 1, :, :n], causal=causal, sm_scale=sm_scale
            )
        )
    return torch.cat(outs, dim=0) if outs else q.new_zeros(q.shape, dtype=torch.float64)


__all__ = [
    "DecodeConfig",
    "QuantizedKV",
    "decode_attention",
    "decode_emulate",
    "default_kv_group",
    "dequantize_kv",
    "folded",
    "quantize_kv",
]
