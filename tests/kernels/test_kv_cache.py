"""Low-bit KV cache: quantize_kv once, decode_attention against the FP64 oracle and the emulation."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import kv_cache, quant
from kernels.kv_cache import DecodeConfig, QuantizedKV, decode_attention, decode_emulate, folded, quantize_kv
from kernels.reference import attention_reference
from tests.kernels.cases import on_device, rel_l2

F16, BF16 = torch.float16, torch.bfloat16
# rel-L2 against FP64 on Gaussian caches of up to a few hundred keys (measured ~1e-1 at 4 bits and
# ~7e-3 at 8 bits; docs/perf.md has the long-cache numbers) and against the float64 emulation, from
# which the folded kernel differs by P·scale rounded to q's dtype, the dequantizing one by P and the
# dequantized K and V rounded to it.
ORACLE = {4: 0.2, 8: 0.02}
EMULATION = {F16: 2e-3, BF16: 1.2e-2}


def _qkv(seed, b, hq, hkv, nq, n, d, dtype, k_offset=0.0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, hq, nq, d, generator=g).to(dtype)
    k = (torch.randn(b, hkv, n, d, generator=g) + k_offset).to(dtype)
    v = torch.randn(b, hkv, n, d, generator=g).to(dtype)
    return on_device(q), on_device(k), on_device(v)


def _oracle(q, k, v, lengths, causal):
    return torch.cat(
        [
            attention_reference(q[i : i + 1], k[i : i + 1, :, :n], v[i : i + 1, :, :n], causal=causal)
            for i, n in enumerate(lengths.tolist())
        ]
    )


# A covering set: Nq 1..16, MHA / GQA / MQA, every head dim, both dtypes, both widths, a cache longer
# than its filled length (per batch entry), causal with Nq > length (rows that see no key).
CASES = [
    # (b, hq, hkv, nq, nmax, d, dtype, bits, causal, lengths)
    (1, 8, 2, 1, 100, 64, F16, 4, False, None),
    (2, 4, 1, 3, 80, 128, BF16, 4, True, (80, 37)),
    (1, 2, 2, 16, 90, 96, F16, 8, True, (70,)),
    (2, 2, 1, 2, 40, 32, BF16, 8, False, (40, 0)),
    (1, 3, 1, 5, 70, 256, F16, 4, True, (3,)),
    # Decode steps whose rows fit the copies kernel (rows x K's groups <= 16): GQA 4 at 4 bits with 4
    # groups, GQA 8 at 8 bits with 2, MQA at D = 256 with 4.
    (2, 8, 2, 1, 90, 128, F16, 4, True, (90, 33)),
    (1, 16, 2, 1, 70, 128, BF16, 8, True, (70,)),
    (2, 4, 1, 1, 60, 256, F16, 8, False, (0, 60)),
    # And with a copy per group of a half of D (rows x half the groups <= 16, 4 bits): GQA 8, and
    # GQA 4 at Nq = 2.
    (1, 16, 2, 1, 70, 128, F16, 4, False, (70,)),
    (2, 8, 2, 2, 60, 128, BF16, 4, True, (60, 21)),
]
# The three kernels a config can ask for: the copies kernel only where its rows fit.
KERNELS = {
    "copies": dict(fold=True, copies=True),
    "folded": dict(fold=True, copies=False),
    "dequantizing": dict(fold=False),
}


def _copies_fit(case) -> bool:
    _, hq, hkv, nq, _, d, _, bits, _, _ = case
    groups = d // kv_cache.default_kv_group(d, bits)
    # A copy per group of a half where the tiles keep the halves apart: 4 bits, or bytes (D < 64).
    per_half = groups >= 4 and (bits == 4 or d < 64)
    return groups & (groups - 1) == 0 and (hq // hkv) * nq <= 16 // (groups // 2 if per_half else groups)


@pytest.mark.parametrize(
    "case, kernel",
    [(c, k) for c in CASES for k in KERNELS if k != "copies" or _copies_fit(c)],
    ids=lambda x: x if isinstance(x, str) else f"b{x[0]}h{x[1]}:{x[2]}-q{x[3]}k{x[4]}-d{x[5]}-{x[7]}bit",
)
def test_decode_matches_oracle_and_emulation(case, kernel):
    b, hq, hkv, nq, n, d, dtype, bits, causal, lengths = case
    q, k, v = _qkv(sum(case[:6]), b, hq, hkv, nq, n, d, dtype, k_offset=1.0)
    # Unfilled cache slots hold garbage (NaN); they must never be read.
    lens = on_device(torch.tensor(lengths if lengths else (n,) * b, dtype=torch.int32))
    for i, m in enumerate(lens.tolist()):
        k[i, :, m:] = float("nan")
        v[i, :, m:] = float("nan")
    copies = (q.clone(), k.clone(), v.clone())
    cache = quantize_kv(k, v, bits=bits, lengths=lens)
    # Small tiles and several splits: the split-K merge is exercised on every case.
    cfg = DecodeConfig(
        block_m=16, block_n=16, num_warps=4, num_stages=1, target_programs=6, **KERNELS[kernel]
    )
    out = decode_attention(q, cache, causal=causal, config=cfg)
    assert out.shape == q.shape and out.dtype == dtype and torch.isfinite(out).all()
    for t, c in zip((q, k, v), copies, strict=True):
        assert torch.equal(t, c) or torch.equal(t.isnan(), c.isnan())
    ref = _oracle(q, k, v, lens, causal)
    assert rel_l2(out, decode_emulate(q, cache, causal=causal)) <= EMULATION[dtype]
    assert rel_l2(out, ref) <= ORACLE[bits]
    # Rows that see no key are exactly zero (an empty cache entry, or causal with Nq > length).
    for i, m in enumerate(lens.tolist()):
        blind = max(0, nq - m) if causal else (nq if m == 0 else 0)
        assert torch.equal(out[i, :, :blind], torch.zeros_like(out[i, :, :blind]))
    assert torch.equal(out, decode_attention(q, cache, causal=causal, config=cfg))


def test_fold_is_picked_by_rows_unless_asked():
    tile = dict(block_n=128, num_warps=4, num_stages=2, target_programs=264)
    assert folded(DecodeConfig(block_m=16, **tile))
    assert not folded(DecodeConfig(block_m=64, **tile))
    assert folded(DecodeConfig(block_m=64, fold=True, **tile))
    assert not folded(DecodeConfig(block_m=16, fold=False, **tile))


def test_gpu_default_tiles_by_rows(monkeypatch):
    # The GPU defaults, read without a GPU: up to 32 rows per KV head take the folded kernel in 16-row
    # blocks, 32-key tiles on one warp at 8 programs per SM (measured faster on an H200, both widths);
    # more rows keep 128-key tiles of the dequantizing kernel on 4 warps at 2 per SM. An explicit
    # config is taken as given.
    monkeypatch.setattr(kv_cache, "interpreting", lambda: False)
    monkeypatch.setattr(kv_cache, "sm_count", lambda index: 132)
    gpu = torch.device("cuda", 0)
    for rows in (1, 4, 16, 17, 32):
        assert kv_cache._config(gpu, rows, None) == DecodeConfig(16, 32, 1, 3, 1056)
        # Short caches take half the splits: up to 8k keys at 4 bits and 32k at 8 with 8 KV heads,
        # a quarter of that with 32 (the keys summed over batch and KV heads decide), half of it with
        # two row blocks (which read the keys twice).
        blocks = 1 if rows <= 16 else 2
        for bits, keys in ((4, 8192), (8, 32768)):
            assert kv_cache._config(gpu, rows, None, 8 * keys // blocks, bits) == DecodeConfig(
                16, 32, 1, 3, 528
            )
            more = 8 * keys // blocks + 8
            assert kv_cache._config(gpu, rows, None, more, bits) == DecodeConfig(16, 32, 1, 3, 1056)
    # 8 bits: at D = 64 the 4-bit threshold; with 5-8 rows per KV head at D >= 128, 4 per SM throughout.
    assert kv_cache._config(gpu, 4, None, 8 * 8192, 8, 64) == DecodeConfig(16, 32, 1, 3, 528)
    assert kv_cache._config(gpu, 4, None, 8 * 8192 + 8, 8, 64) == DecodeConfig(16, 32, 1, 3, 1056)
    for rows in (5, 8):
        assert kv_cache._config(gpu, rows, None, 1 << 30, 8, 128) == DecodeConfig(16, 32, 1, 3, 528)
        assert kv_cache._config(gpu, rows, None, 1 << 30, 4, 128) == DecodeConfig(16, 32, 1, 3, 1056)
    assert kv_cache._config(gpu, 9, None, 1 << 30, 8, 128) == DecodeConfig(16, 32, 1, 3, 1056)
    assert kv_cache._config(gpu, 64, None) == DecodeConfig(64, 128, 4, 2, 264)
    assert kv_cache._config(gpu, 33, None) == DecodeConfig(64, 128, 4, 2, 264)
    # An fp16 cache whose metadata fp16 holds exactly (fp16 FMAs in the dequantizing kernel): 17-32
    # rows take one 64-row program of it instead of two folded ones; 16 or fewer stay folded.
    for rows in (17, 24, 32, 33):
        assert kv_cache._config(gpu, rows, None, 1 << 20, 4, 128, True) == DecodeConfig(64, 128, 4, 2, 264)
    assert kv_cache._config(gpu, 16, None, 1 << 20, 4, 128, True) == DecodeConfig(16, 32, 1, 3, 1056)
    # Asked for the folded kernel, they keep its 16-row blocks.
    folded_16 = DecodeConfig(0, 32, 1, 3, 100, fold=True)
    assert kv_cache._config(gpu, 24, folded_16, 1 << 20, 4, 128, True) == replace(folded_16, block_m=16)
    mine = DecodeConfig(0, 32, 2, 2, 100, max_registers=168)
    assert kv_cache._config(gpu, 4, mine) == DecodeConfig(16, 32, 2, 2, 100, max_registers=168)
    assert kv_cache._config(gpu, 32, mine) == DecodeConfig(16, 32, 2, 2, 100, max_registers=168)
    assert kv_cache._config(gpu, 40, mine) == DecodeConfig(64, 32, 2, 2, 100, max_registers=168)


@pytest.mark.gpu
@pytest.mark.parametrize("bits", [4, 8])
def test_ptx_conversions_give_the_portable_paths_bits(bits):
    # The folded kernel's inline-PTX code conversions (GPU, fp16) against the path the interpreter
    # runs: the same dot operands, so the same output bits; and both within the emulation's budget.
    q, k, v = _qkv(12, 2, 8, 2, 1, 300, 128, F16, k_offset=1.0)
    cache = quantize_kv(k, v, bits=bits)
    tile = dict(block_m=16, block_n=64, num_warps=2, num_stages=3, target_programs=16)
    fast = decode_attention(q, cache, causal=True, config=DecodeConfig(**tile))
    plain = decode_attention(q, cache, causal=True, config=DecodeConfig(**tile, ptx=False))
    assert torch.equal(fast, plain)
    assert rel_l2(fast, decode_emulate(q, cache, causal=True)) <= EMULATION[F16]


def test_cache_says_whether_fp16_holds_its_metadata():
    # The dequantizing kernel's fp16 FMAs need every bf16 scale and offset to be an fp16 value: true of
    # ordinary fp16 caches; not of bf16 caches, nor of 8-bit groups so narrow that their scale is below
    # fp16's normal range (~1e-4 values: scales ~2e-6, where fp16 keeps only a few bits).
    _, k, v = _qkv(41, 1, 2, 2, 1, 64, 128, F16)
    assert quantize_kv(k, v, bits=4).fp16_meta and quantize_kv(k, v, bits=8).fp16_meta
    assert not quantize_kv(k.to(BF16), v.to(BF16), bits=4).fp16_meta
    tiny = (k.float() * 1e-4).half()
    assert quantize_kv(tiny, v, bits=4).fp16_meta
    assert not quantize_kv(tiny, v, bits=8).fp16_meta
    assert not quantize_kv(k, (v.float() * 1e-4).half(), bits=8).fp16_meta


@pytest.mark.gpu
@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("d", [64, 96, 128, 256])
def test_fp16_fmas_give_the_fp32_paths_bits(bits, d):
    # The dequantizing kernel forms code * scale + offset with one fp16 FMA where the cache's metadata
    # is exact in fp16, against the fp32 multiply-add rounded to fp16 of the portable path: one rounding
    # of the same exact value, so the same bits on Gaussian caches (a ragged batch, 17-64 rows).
    q, k, v = _qkv(51 + d, 2, 8, 2, 6, 600, d, F16, k_offset=0.5)
    cache = quantize_kv(k, v, bits=bits, lengths=on_device(torch.tensor([600, 377])))
    assert cache.fp16_meta
    tile = dict(block_m=64, block_n=128, num_warps=4, num_stages=2, target_programs=32, fold=False)
    for causal in (False, True):
        fast = decode_attention(q, cache, causal=causal, config=DecodeConfig(**tile))
        plain = decode_attention(q, cache, causal=causal, config=DecodeConfig(**tile, ptx=False))
        assert torch.equal(fast, plain)
        assert rel_l2(fast, decode_emulate(q, cache, causal=causal)) <= EMULATION[F16]
    # A cache whose metadata fp16 cannot hold keeps the fp32 path even where the PTX paths are asked
    # for (its scales below 2^-17 would lose bits as fp16 values).
    small = quantize_kv(k, (v.float() * 1e-4).half(), bits=8)
    assert not small.fp16_meta
    fast = decode_attention(q, small, config=DecodeConfig(**tile))
    assert torch.equal(fast, decode_attention(q, small, config=DecodeConfig(**tile, ptx=False)))


def test_copies_asked_where_rows_do_not_fit_is_refused():
    # 12 rows per KV head (GQA 4 x Nq 3) and 4 groups of K: 48 rows, more than a 16-row tile.
    q, k, v = _qkv(13, 1, 8, 2, 3, 40, 128, F16)
    cache = quantize_kv(k, v, bits=4)
    tile = dict(block_m=16, block_n=16, num_warps=4, num_stages=1, target_programs=4)
    with pytest.raises(ValueError, match="copies=True needs"):
        decode_attention(q, cache, config=DecodeConfig(**tile, copies=True))
    with pytest.raises(ValueError, match="copies=True needs"):
        decode_attention(q[:, :, :1], cache, config=DecodeConfig(**tile, fold=False, copies=True))
    # Asked for nothing, the rows that fit take the copies kernel and the rest the folded one: the
    # same answers as asking for each.
    one = q[:, :, :1]
    assert torch.equal(
        decode_attention(one, cache, config=DecodeConfig(**tile)),
        decode_attention(one, cache, config=DecodeConfig(**tile, copies=True)),
    )
    assert torch.equal(
        decode_attention(q, cache, config=DecodeConfig(**tile)),
        decode_attention(q, cache, config=DecodeConfig(**tile, fold=True)),
    )


@pytest.mark.parametrize(
    "hq, nq, d, group",
    [
        (16, 1, 128, None),  # GQA 8: K's words, 8 rows x 2 copies
        (8, 1, 256, None),  # GQA 4 at D = 256: 8 groups, 4 rows x 4 copies
        (16, 1, 64, 16),  # GQA 8 at D = 64 in groups of 16: the byte tiles, 8 rows x 2 copies
    ],
)
def test_copies_per_half_group_take_twice_the_rows(hq, nq, d, group):
    # Copy c holds group c of each half, whose dots go to separate score tiles; the same answer as the
    # folded kernel's group-by-group dots, up to rounding, against the emulation's budget. Without the
    # per-half copies these rows do not fit (a copy per group would need 32).
    q, k, v = _qkv(31 + d, 1, hq, 2, nq, 48, d, F16, k_offset=0.5)
    cache = quantize_kv(k, v, bits=4, **({} if group is None else {"group": group}))
    tile = dict(block_m=16, block_n=16, num_warps=4, num_stages=1, target_programs=4)
    for causal in (False, True):
        out = decode_attention(q, cache, causal=causal, config=DecodeConfig(**tile, copies=True))
        assert torch.isfinite(out).all()
        assert rel_l2(out, decode_emulate(q, cache, causal=causal)) <= EMULATION[F16]
        plain = decode_attention(q, cache, causal=causal, config=DecodeConfig(**tile, copies=False))
        assert rel_l2(out, plain) <= EMULATION[F16]
    if d == 128:
        # 8 bits reads K as words whose tiles mix the halves: no per-half copies, so in groups of 32
        # (4 of them) GQA 8 does not fit.
        cache8 = quantize_kv(k, v, bits=8, group=32)
        with pytest.raises(ValueError, match="at most 4 rows per KV head"):
            decode_attention(q, cache8, config=DecodeConfig(**tile, copies=True))


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("shape", ["growing", "sink", "huge_v"])
def test_copies_kernel_rescales_lazily_within_budget(bits, shape):
    # The copies kernel moves a row's running maximum only when a block passes it by more than 2^2:
    # scores that grow along the cache (rescales in the middle of a split), one dominant key at the
    # start (none after it), and growing scores with V near fp16's range (P, up to 4, times V's scale
    # must not overflow fp16).
    q, k, v = _qkv(21 + bits, 1, 4, 1, 1, 256, 128, F16)
    if shape in ("growing", "huge_v"):
        k = (k.float() * torch.linspace(0.2, 3.0, 256, device=k.device)[:, None]).half()
    if shape == "huge_v":
        v = (v.float() * 20000).clamp(-65000, 65000).half()
    if shape == "sink":
        k[:, :, 0] = q[0, 0, 0] * 2
    cache = quantize_kv(k, v, bits=bits)
    tile = dict(block_m=16, block_n=32, num_warps=1, num_stages=1, target_programs=2)
    out = decode_attention(q, cache, config=DecodeConfig(**tile, copies=True))
    assert torch.isfinite(out).all()
    assert rel_l2(out, decode_emulate(q, cache)) <= EMULATION[F16]
    # The folded kernel rescales at every step: the two differ by rounding only.
    assert (
        rel_l2(out, decode_attention(q, cache, config=DecodeConfig(**tile, copies=False))) <= EMULATION[F16]
    )


@pytest.mark.parametrize("bits", [4, 8])
def test_copies_kernel_reads_q_of_any_alignment_alike(bits):
    # The copies kernel loads whole rows of Q and permutes them into the word tiles' order; rows that
    # are not 16-byte aligned (Triton then loads them narrower) give the same tiles, so the same bits.
    q, k, v = _qkv(23, 1, 8, 2, 1, 64, 128, F16)
    odd = torch.zeros(1, 8, 1, 129, dtype=F16, device=q.device)[..., 1:]
    odd.copy_(q)
    assert odd.data_ptr() % 16 != 0 and torch.equal(odd, q)
    cache = quantize_kv(k, v, bits=bits)
    tile = dict(block_m=16, block_n=16, num_warps=4, num_stages=1, target_programs=4, copies=True)
    assert torch.equal(
        decode_attention(odd, cache, config=DecodeConfig(**tile)),
        decode_attention(q, cache, config=DecodeConfig(**tile)),
    )


def test_merge_takes_the_splits_a_block_at_a_time(monkeypatch):
    # Past MERGE_BLOCK_S splits (1024; only explicit configs ask for more) the split merge takes a
    # block at a time with a running maximum; two at a time, over 7 splits, gives the one-block answer
    # up to rounding, and the empty batch entry still comes out as zeros.
    q, k, v = _qkv(29, 2, 4, 1, 2, 100, 64, F16)
    cache = quantize_kv(k, v, bits=8, lengths=on_device(torch.tensor([100, 0], dtype=torch.int32)))
    cfg = DecodeConfig(block_m=16, block_n=16, num_warps=4, num_stages=1, target_programs=14)
    whole = decode_attention(q, cache, causal=True, config=cfg)
    monkeypatch.setattr(kv_cache, "MERGE_BLOCK_S", 2)
    blocks = decode_attention(q, cache, causal=True, config=cfg)
    assert rel_l2(blocks, whole) <= 1e-3
    assert rel_l2(blocks, decode_emulate(q, cache, causal=True)) <= EMULATION[F16]
    assert torch.equal(blocks[1], torch.zeros_like(blocks[1]))


def test_a_register_cap_changes_no_result():
    # ptxas's maxnreg is a compile option: the interpreter ignores it, the GPU spills; never a new answer.
    q, k, v = _qkv(11, 1, 4, 2, 1, 70, 64, F16)
    cache = quantize_kv(k, v, bits=8)
    tile = dict(block_m=16, block_n=16, num_warps=4, num_stages=1, target_programs=6)
    capped = decode_attention(q, cache, config=DecodeConfig(**tile, max_registers=128))
    assert torch.equal(capped, decode_attention(q, cache, config=DecodeConfig(**tile)))


def test_default_config_matches_small_tiles_and_sm_scale():
    q, k, v = _qkv(7, 1, 4, 2, 2, 70, 64, F16)
    cache = quant.quantize_kv(k, v, bits=4)
    out = decode_attention(q, cache, sm_scale=0.3)
    emu = decode_emulate(q, cache, sm_scale=0.3)
    assert rel_l2(out, emu) <= EMULATION[F16]
    assert rel_l2(out, attention_reference(q, k, v, sm_scale=0.3)) <= ORACLE[4]


def test_four_bits_read_fewer_bytes_and_eight_bits_are_more_accurate():
    q, k, v = _qkv(8, 1, 2, 1, 1, 96, 128, F16)
    ref = attention_reference(q, k, v)
    c4, c8 = quantize_kv(k, v, bits=4), quantize_kv(k, v, bits=8)
    # 152 vs 272 bytes per token at D = 128 (codes + bf16 scales and offsets), against 512 for fp16.
    assert c4.nbytes() == 96 * 152 and c8.nbytes() == 96 * 272
    e4, e8 = rel_l2(decode_attention(q, c4), ref), rel_l2(decode_attention(q, c8), ref)
    assert e8 < e4 / 8


def test_smoothing_helps_channel_offsets_and_leaves_k_alone():
    q, k, v = _qkv(9, 1, 2, 1, 4, 64, 64, F16)
    # Channels with a common offset, as in real K caches: unsmoothed, they stretch their group's range.
    k[..., :4] += 12
    before = k.clone()
    ref = attention_reference(q, k, v)
    smooth = rel_l2(decode_attention(q, quantize_kv(k, v, bits=4)), ref)
    plain = rel_l2(decode_attention(q, quantize_kv(k, v, bits=4, smooth_k=False)), ref)
    assert torch.equal(k, before)
    assert smooth < plain


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda q, k, v: quantize_kv(k, v, bits=2), "bits"),
        (lambda q, k, v: quantize_kv(k, v[:, :, :5]), "shape of k"),
        (lambda q, k, v: quantize_kv(k.float(), v.float()), "dtype"),
        (lambda q, k, v: quantize_kv(k, v, lengths=11), "lengths"),
        (lambda q, k, v: quantize_kv(k, v, lengths=torch.tensor([1.0])), "lengths"),
        (lambda q, k, v: quantize_kv(k, v, group=12), "group"),
        (lambda q, k, v: quantize_kv(k, v, group=8), "at least 16"),
        (lambda q, k, v: quantize_kv(k[..., :48], v[..., :48]), "head dim"),
        (lambda q, k, v: decode_attention(q, (k, v)), "QuantizedKV"),
        (lambda q, k, v: decode_attention(q.bfloat16(), quantize_kv(k, v)), "dtype"),
        (lambda q, k, v: decode_attention(q[:, :3], quantize_kv(k, v)), "multiple"),
        (lambda q, k, v: decode_attention(q[..., :32], quantize_kv(k, v)), "head dim"),
        (lambda q, k, v: decode_attention(q, quantize_kv(k, v), sm_scale=-1.0), "sm_scale"),
        (lambda q, k, v: decode_attention(q, quantize_kv(k, v), causal=1), "causal"),
        (lambda q, k, v: decode_attention(q, quantize_kv(k, v), config=(16, 32)), "DecodeConfig"),
        (
            lambda q, k, v: decode_attention(q, quantize_kv(k, v), config=DecodeConfig(24, 32, 1, 3, 8)),
            "block_m",
        ),
        (
            lambda q, k, v: decode_attention(q, quantize_kv(k, v), config=DecodeConfig(16, 20, 1, 3, 8)),
            "block_n",
        ),
        (
            lambda q, k, v: decode_attention(q, quantize_kv(k, v), config=DecodeConfig(16, 32, 3, 3, 8)),
            "num_warps",
        ),
        (
            lambda q, k, v: decode_attention(q, quantize_kv(k, v), config=DecodeConfig(16, 32, 1, 0, 8)),
            "num_stages",
        ),
        (
            lambda q, k, v: decode_attention(q, quantize_kv(k, v), config=DecodeConfig(16, 32, 1, 3, 0)),
            "target_prog",
        ),
        (
            lambda q, k, v: decode_attention(
                q, quantize_kv(k, v), config=DecodeConfig(16, 32, 1, 3, 8, fold=1)
            ),
            "config.fold",
        ),
        (
            lambda q, k, v: decode_attention(
                q, quantize_kv(k, v), config=DecodeConfig(16, 32, 1, 3, 8, max_registers=300)
            ),
            "max_registers",
        ),
    ],
)
def test_bad_input_raises_clear_errors(make, match):
    q, k, v = _qkv(0, 1, 4, 2, 2, 10, 64, F16)
    with pytest.raises(ValueError, match=match):
        make(q, k, v)


def test_cache_reports_its_shape():
    _, k, v = _qkv(1, 2, 2, 2, 1, 20, 32, BF16)
    cache = quantize_kv(k, v, bits=8, lengths=on_device(torch.tensor([20, 7])))
    assert isinstance(cache, QuantizedKV)
    assert cache.shape == (2, 2, 20, 32) and cache.bits == 8 and cache.max_length == 20
    assert cache.lengths.tolist() == [20, 7] and cache.dtype == BF16


# About 10 s an example in the interpreter: nightly (slow); the fixed CASES above run in CI.
@pytest.mark.slow
@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    heads=st.sampled_from([(1, 1), (4, 1), (4, 2), (6, 3), (8, 1)]),
    n_q=st.integers(1, 16),
    n_max=st.integers(1, 64),
    fill=st.floats(0.0, 1.0),
    d=st.sampled_from([32, 64, 96]),
    dtype=st.sampled_from([F16, BF16]),
    bits=st.sampled_from([4, 8]),
    causal=st.booleans(),
    fold=st.booleans(),
    small_groups=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_decode_fuzz_against_emulation(
    heads, n_q, n_max, fill, d, dtype, bits, causal, fold, small_groups, seed
):
    """Hypothesis draws the shape, the filled length, K's group and a seed; tensors come from the seed.
    fold=True runs the copies kernel wherever the rows fit (Nq = 1 mostly; with groups of 16 at D = 64
    up to 8 rows, a copy per group of a half), the folded one elsewhere."""
    hq, hkv = heads
    q, k, v = _qkv(seed, 2, hq, hkv, n_q, n_max, d, dtype, k_offset=0.5)
    lens = torch.tensor([n_max, round(fill * n_max)], dtype=torch.int32)
    cache = quantize_kv(k, v, bits=bits, lengths=lens, **({"group": 16} if small_groups else {}))
    cfg = DecodeConfig(block_m=16, block_n=16, num_warps=4, num_stages=1, target_programs=8, fold=fold)
    out = decode_attention(q, cache, causal=causal, config=cfg)
    assert torch.isfinite(out).all()
    assert rel_l2(out, decode_emulate(q, cache, causal=causal)) <= EMULATION[dtype]
    assert rel_l2(out, _oracle(q, k, v, lens, causal)) <= ORACLE[bits]
