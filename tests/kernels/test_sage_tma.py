"""The sage methods' Hopper kernel (kernels/flash_sage_tma.py): TMA loads, warp specialization.

The CPU interpreter runs the same kernel code (descriptors included; warp specialization is a compiler
pass with no effect there), judged against the method's float64 emulation and the pointer kernel; the
GPU tests check the dispatch and the compiled kernel's outputs.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import kernels.flash_sage_fp8 as sage
import kernels.flash_sage_tma as sage_tma
from kernels._validate import AttentionShape
from kernels.emulation import emulate_sage_fp8, emulate_sage_qk_int8
from kernels.flash_sage_fp8 import flash_attention_sage_fp8, flash_attention_sage_qk_int8, prefer_tma_sage
from kernels.flash_sage_tma import quantize_q
from kernels.quant import quantize_per_token_reference
from kernels.reference import attention_reference
from tests.kernels.cases import on_device, rel_l2, seeded_randn, tma_shapes


def _emulation_tolerance(dtype: torch.dtype) -> float:
    # fp32 summation order, exp2 in fp32 and the output's rounding to fp16 (2^-11) or bf16 (2^-8).
    return 1e-3 if dtype == torch.float16 else 6e-3


@settings(max_examples=20, deadline=None, derandomize=True)
@given(**tma_shapes([96, 128]))
@example(n_q=1, n_k=33, heads=(2, 1), batch=1, head_dim=96, bf16=False, bnhd=False, causal=False, seed=0)
@example(n_q=64, n_k=64, heads=(1, 1), batch=2, head_dim=128, bf16=True, bnhd=True, causal=True, seed=1)
@example(n_q=70, n_k=20, heads=(2, 1), batch=1, head_dim=128, bf16=False, bnhd=False, causal=True, seed=2)
# Non-causal first launches are persistent: 24 query blocks walked by the interpreter's 4 programs.
@example(n_q=70, n_k=50, heads=(4, 2), batch=2, head_dim=128, bf16=False, bnhd=True, causal=False, seed=3)
def test_matches_its_emulation_and_the_pointer_kernel(
    n_q, n_k, heads, batch, head_dim, bf16, bnhd, causal, seed
):
    """Ragged ends, GQA, strided V, head dim 96 padded to 128, bottom-right causal (blind rows zero).
    K carries a common offset per channel, which smoothing must remove."""
    dtype = torch.bfloat16 if bf16 else torch.float16
    g = torch.Generator().manual_seed(seed)
    hq, hkv = heads
    q = seeded_randn(g, batch, hq, n_q, head_dim, dtype=dtype, bnhd=bnhd)
    k = seeded_randn(g, batch, hkv, n_k, head_dim, dtype=dtype, bnhd=bnhd)
    k = k + on_device((3.0 * torch.randn(head_dim, generator=g)).to(dtype))
    v = seeded_randn(g, batch, hkv, n_k, head_dim, dtype=dtype, bnhd=bnhd)
    k_before, v_before = k.clone(), v.clone()
    out = flash_attention_sage_qk_int8(q, k, v, causal=causal, kernel="tma")
    assert torch.equal(k, k_before) and torch.equal(v, v_before), "inputs must not be modified"
    assert out.shape == (batch, hq, n_q, head_dim) and out.is_contiguous() and out.dtype == dtype
    assert not torch.isnan(out).any()
    if causal and n_q > n_k:
        assert torch.all(out[:, :, : n_q - n_k] == 0)
    emu = emulate_sage_qk_int8(q, k, v, causal=causal)
    assert rel_l2(out, emu) <= _emulation_tolerance(dtype)
    pointer = flash_attention_sage_qk_int8(q, k, v, causal=causal, kernel="pointer")
    assert rel_l2(out, pointer) <= _emulation_tolerance(dtype)


@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    n_q=st.integers(1, 70),
    n_k=st.integers(1, 100),
    heads=st.sampled_from([(1, 1), (2, 1), (4, 2)]),
    head_dim=st.sampled_from([96, 128]),
    bf16=st.booleans(),
    causal=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
@example(n_q=70, n_k=33, heads=(2, 1), head_dim=96, bf16=False, causal=True, seed=3)
def test_sage_fp8_matches_its_emulation_and_the_pointer_kernel(n_q, n_k, heads, head_dim, bf16, causal, seed):
    """``sage_fp8`` on the TMA kernel: V^T's e4m3 tiles by descriptor, P rounded to e4m3 on the
    interpreter's exact grid, V's channel scales in the epilogue."""
    dtype = torch.bfloat16 if bf16 else torch.float16
    g = torch.Generator().manual_seed(seed)
    hq, hkv = heads
    q = seeded_randn(g, 1, hq, n_q, head_dim, dtype=dtype)
    k, v = (
        seeded_randn(g, 1, hkv, n_k, head_dim, dtype=dtype),
        seeded_randn(g, 1, hkv, n_k, head_dim, dtype=dtype, scale=4.0),
    )
    out = flash_attention_sage_fp8(q, k, v, causal=causal, kernel="tma")
    assert out.shape == q.shape and out.dtype == dtype and not torch.isnan(out).any()
    if causal and n_q > n_k:
        assert torch.all(out[:, :, : n_q - n_k] == 0)
    assert rel_l2(out, emulate_sage_fp8(q, k, v, causal=causal)) <= _emulation_tolerance(dtype)
    pointer = flash_attention_sage_fp8(q, k, v, causal=causal, kernel="pointer")
    assert rel_l2(out, pointer) <= _emulation_tolerance(dtype)


@pytest.mark.parametrize("block_m", [32, 128])
def test_q_quantizer_matches_the_reference_rounding(block_m):
    """INT8 codes and scales of the Q launch are kernels.quant's per-token ones; padding to whole row
    blocks of the attention tile is zero (the launch itself takes at most 64 rows per program)."""
    g = torch.Generator().manual_seed(4)
    q = seeded_randn(g, 2, 3, 45, 96, scale=3.0)
    q[0, 1, 7] = 0  # an all-zero row: codes 0, factor 0
    q8, c = quantize_q(q, block_m, 128, 0.5)
    codes, scale = quantize_per_token_reference(q)
    pad = -(-45 // block_m) * block_m
    assert q8.shape == (6, pad, 128) and c.shape == (6, pad)
    assert torch.equal(q8.view(2, 3, pad, 128)[:, :, :45, :96].cpu(), codes.to(torch.int8).cpu())
    assert torch.all(q8.view(2, 3, pad, 128)[:, :, 45:] == 0) and torch.all(q8[..., 96:] == 0)
    torch.testing.assert_close(
        c.view(2, 3, pad)[:, :, :45].cpu(), (scale.float() * 0.5).cpu(), rtol=0, atol=0
    )
    assert torch.all(c.view(2, 3, pad)[:, :, 45:] == 0) and c.view(2, 3, pad)[0, 1, 7] == 0


def test_large_logits_pick_the_maximum_exactly():
    """Logits around 1e9: the maximum is taken on the exact int32 dot, so each row is one-hot on its
    maximum key with FP fusion on (the FMA bug of huge logits cannot occur)."""
    g = torch.Generator().manual_seed(7)
    q, k = seeded_randn(g, 1, 1, 8, 128, scale=3e3), seeded_randn(g, 1, 1, 40, 128, scale=3e3)
    v = seeded_randn(g, 1, 1, 40, 128)
    out = flash_attention_sage_qk_int8(q, k, v, kernel="tma")
    qd, kd, _ = sage_dequantized(q, k, v)
    winner = (qd @ kd.transpose(-1, -2)).argmax(-1)
    assert torch.equal(out, v[0, 0, winner[0, 0]].unsqueeze(0).unsqueeze(0))


@pytest.mark.parametrize("method", ["sage_qk_int8", "sage_fp8"])
@pytest.mark.parametrize("kernel", ["tma", "pointer"])
def test_logits_at_the_noisy_bound_match_the_emulation(method, kernel):
    """Logits near the largest a head the noisy rule leaves can have (kernels.quant.UNFLAGGED_LOGIT_MAX),
    two tied keys in different K blocks: the first launch's one-FMA exponent (non-causal TMA loop, and
    sage_fp8's pointer kernel) gives each block its own rounding of the offset, which must not move
    the weights beyond the emulation's tolerance."""
    from kernels import quant
    from kernels.emulation import quantize_sage_fp8

    g = torch.Generator().manual_seed(11)
    d = 128
    pv_fp8 = method == "sage_fp8"
    bn = sage.config_for(d, 80, pv_fp8=pv_fp8).block_n
    n_k = 2 * bn + 5
    # The tie, one key in each of the first two blocks, of equal magnitudes (codes all +-127) and the
    # largest elements of their blocks (equal block scales), the other keys within 2^3 of them (no wide
    # block).
    k = torch.randn(1, 1, n_k, d, generator=g) * 6.0
    sign = torch.where(torch.rand(d, generator=g) < 0.5, -1.0, 1.0)
    k[0, 0, 0] = k[0, 0, bn] = sign * 40.0
    kv = quantize_sage_fp8(k.half(), k.half(), bn)
    scale = d**-0.5 * 1.4426950408889634
    a = 0.95 * quant.Q_NOISE_BOUND.value * 127 / (scale * float(kv.k_norm))
    q = sign * a + torch.randn(1, 2, 16, d, generator=g) * (0.005 * a)
    q, k, v = on_device(q.half()), on_device(k.half()), seeded_randn(g, 1, 1, n_k, d)
    q_scale = quant.quantize_per_token_reference(q)[1].cpu()
    assert not kv.wide_heads.any() and not quant.noisy_heads(q_scale, kv.k_norm, scale).any()
    attend = flash_attention_sage_fp8 if pv_fp8 else flash_attention_sage_qk_int8
    emulate = emulate_sage_fp8 if pv_fp8 else emulate_sage_qk_int8
    out = attend(q, k, v, kernel=kernel)
    emu = emulate(q, k, v)
    tie = ((v[0, 0, 0] + v[0, 0, bn]) / 2).float()
    # The tie shares the weight (up to P's rounding, and V's to e4m3 for sage_fp8).
    assert rel_l2(emu[0, :, :1], tie.expand(2, 1, d)) < (5e-2 if pv_fp8 else 5e-3)
    assert rel_l2(out, emu) <= _emulation_tolerance(torch.float16)


def sage_dequantized(q, k, v):
    from kernels.emulation import dequantize_sage_qk_int8

    return tuple(t.double() for t in dequantize_sage_qk_int8(q, k, v))


def test_explicit_requests_never_fall_back():
    g = torch.Generator().manual_seed(2)
    q = seeded_randn(g, 1, 2, 20, 64)
    for empty in (q, q[:, :, :0]):  # an empty problem is no excuse for a bad argument
        with pytest.raises(ValueError, match="'auto', 'pointer' or 'tma'"):
            flash_attention_sage_qk_int8(empty, q, q, kernel="cuda")
    with pytest.raises(ValueError, match=r"head dim.*kernel='tma'"):
        flash_attention_sage_qk_int8(q, q, q, kernel="tma")
    assert rel_l2(flash_attention_sage_qk_int8(q, q, q), attention_reference(q, q, q)) <= 2e-2


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("preferred", [False, True])
def test_auto_asks_the_dispatch_rule_once_and_follows_it(causal, preferred, monkeypatch):
    """``kernel="auto"`` calls :func:`prefer_tma_sage` with the padded head dim, the causal flag, Nq and
    the operands, and launches the kernel it names; an explicit ``config`` keeps the pointer kernel."""
    asked, launched = [], []
    monkeypatch.setattr(
        sage,
        "prefer_tma_sage",
        lambda pv_fp8, block_d, causal, shape, *t: (
            asked.append((pv_fp8, block_d, causal, shape.n_q, len(t))) or preferred
        ),
    )
    real = sage.launch_sage_tma
    monkeypatch.setattr(sage, "launch_sage_tma", lambda *a, **kw: launched.append(1) or real(*a, **kw))
    g = torch.Generator().manual_seed(9)
    q, k, v = seeded_randn(g, 1, 2, 40, 96), seeded_randn(g, 1, 1, 50, 96), seeded_randn(g, 1, 1, 50, 96)
    out = flash_attention_sage_qk_int8(q, k, v, causal=causal)
    assert asked == [(False, 128, causal, 40, 2)] and launched == ([1] if preferred else [])
    assert rel_l2(out, emulate_sage_qk_int8(q, k, v, causal=causal)) <= _emulation_tolerance(q.dtype)
    flash_attention_sage_qk_int8(q, k, v, causal=causal, config=sage.config_for(96, 50, pv_fp8=False))
    assert len(asked) == 1 and len(launched) == int(preferred)


def test_the_interpreter_never_prefers_the_tma_kernel(monkeypatch):
    # The rule as it runs under TRITON_INTERPRET=1, on any machine (on a GPU this process compiles).
    monkeypatch.setattr(sage, "interpreting", lambda: True)
    t = on_device(torch.zeros(1, 1, 8, 128, dtype=torch.float16))
    assert not prefer_tma_sage(False, 128, False, _shape(1, 32, 16384, 16384), t, t)


def _shape(batch, heads, n_q, n_k):
    return AttentionShape(batch, heads, heads, n_q, n_k, 128, 128**-0.5)


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("block_d", "causal", "shape", "expected"),
    [
        (128, False, _shape(8, 32, 1, 4096), True),
        (128, False, _shape(16, 32, 1024, 1024), True),
        (128, False, _shape(2, 8, 1024, 1024), False),
        (128, True, _shape(1, 32, 16384, 16384), True),
        (128, True, _shape(2, 32, 8192, 8192), False),
        (64, False, _shape(1, 32, 16384, 16384), False),
    ],
)
def test_gpu_dispatch_rule_follows_the_measurements(block_d, causal, shape, expected):
    t = torch.zeros(1, 1, 8, 128, dtype=torch.float16, device="cuda")
    hopper = torch.cuda.get_device_capability()[0] == 9
    assert prefer_tma_sage(False, block_d, causal, shape, t) is (expected and hopper)


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("causal", "shape", "expected"),
    [
        (False, _shape(1, 32, 16384, 16384), True),
        (True, _shape(1, 32, 16384, 16384), False),
        (False, _shape(4, 32, 4096, 4096), False),
        (False, _shape(1, 32, 128, 16384), False),
    ],
)
def test_gpu_sage_fp8_dispatch_rule_follows_the_measurements(causal, shape, expected):
    t = torch.zeros(1, 1, 8, 128, dtype=torch.float16, device="cuda")
    hopper = torch.cuda.get_device_capability()[0] == 9
    assert prefer_tma_sage(True, 128, causal, shape, t) is (expected and hopper)


def _gpu_inputs(seed, hq, hkv, n_q, n_k, dtype):
    """Fresh N(0, 1) q, k, v at head dim 128 from a CUDA generator."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    q = torch.randn(1, hq, n_q, 128, device="cuda", generator=g).to(dtype)
    k, v = (torch.randn(1, hkv, n_k, 128, device="cuda", generator=g).to(dtype) for _ in range(2))
    return q, k, v


@pytest.mark.gpu
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    ("n_q", "n_k", "heads", "dtype"),
    [(4096, 4096, (4, 4), torch.float16), (300, 1000, (8, 2), torch.bfloat16)],
)
def test_gpu_dispatch_and_emulation(causal, n_q, n_k, heads, dtype, monkeypatch):
    """On sm_90 ``kernel="auto"`` runs the TMA kernel where :func:`prefer_tma_sage` says (the launches
    are counted); the forced TMA kernel and auto are within the emulation's tolerance. Elsewhere the
    forced kernel is refused by name."""
    hq, hkv = heads
    q, k, v = _gpu_inputs(n_k, hq, hkv, n_q, n_k, dtype)
    if torch.cuda.get_device_capability()[0] != 9:
        with pytest.raises(ValueError, match="sm_90"):
            flash_attention_sage_qk_int8(q, k, v, causal=causal, kernel="tma")
        return
    launches = []
    real = sage.launch_sage_tma
    monkeypatch.setattr(sage, "launch_sage_tma", lambda *a, **kw: launches.append(1) or real(*a, **kw))
    out = flash_attention_sage_qk_int8(q, k, v, causal=causal)
    auto = prefer_tma_sage(False, 128, causal, _shape(1, hq, n_q, n_k), q)
    assert len(launches) == int(auto)
    forced = flash_attention_sage_qk_int8(q, k, v, causal=causal, kernel="tma")
    assert len(launches) == 1 + int(auto)
    emu = emulate_sage_qk_int8(q, k, v, causal=causal)
    for o in (out, forced):
        assert rel_l2(o, emu) <= _emulation_tolerance(dtype)
    pointer = flash_attention_sage_qk_int8(q, k, v, causal=causal, kernel="pointer")
    assert rel_l2(forced, pointer) <= _emulation_tolerance(dtype)


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("n_q", "n_k", "heads", "dtype", "causal"),
    [
        (4096, 4096, (4, 2), torch.float16, False),
        (300, 1000, (8, 2), torch.bfloat16, True),
        (777, 1500, (2, 2), torch.float16, False),
    ],
)
def test_gpu_sage_fp8_tma_matches_its_emulation(n_q, n_k, heads, dtype, causal):
    """The hardware e4m3 casts and FP8 MMA (two-level) against the float64 emulation, as the pointer
    kernel is held (tests/kernels/test_sage_fp8.py)."""
    hq, hkv = heads
    q, k, v = _gpu_inputs(n_q + n_k, hq, hkv, n_q, n_k, dtype)
    if torch.cuda.get_device_capability()[0] != 9:
        with pytest.raises(ValueError, match="sm_90"):
            flash_attention_sage_fp8(q, k, v, causal=causal, kernel="tma")
        return
    out = flash_attention_sage_fp8(q, k, v, causal=causal, kernel="tma")
    assert rel_l2(out, emulate_sage_fp8(q, k, v, causal=causal)) <= (
        2e-3 if dtype == torch.float16 else 1.5e-2
    )
    pointer = flash_attention_sage_fp8(q, k, v, causal=causal, kernel="pointer")
    assert rel_l2(out, pointer) <= (2e-3 if dtype == torch.float16 else 1.5e-2)


def test_key_steps_shorter_than_the_k_scale_block(monkeypatch):
    """``sage_qk_int8``: a loop step of half the K-scale block (tiles.block_n) reads each block's scale
    twice, same method. ``sage_fp8`` refuses it: its e4m3 P follows the running maximum of each step."""
    g = torch.Generator().manual_seed(11)
    q, k, v = seeded_randn(g, 1, 2, 40, 128), seeded_randn(g, 1, 1, 77, 128), seeded_randn(g, 1, 1, 77, 128)
    block = sage.config_for(128, 77, pv_fp8=False).block_n  # 32 in the interpreter, 128 on a GPU
    step = block // 2
    monkeypatch.setattr(sage_tma, "tiles_for", lambda *a, **kw: sage_tma.SageTmaTiles(32, 4, 1, step))
    for causal in (False, True):
        out = flash_attention_sage_qk_int8(q, k, v, causal=causal, kernel="tma")
        assert rel_l2(out, emulate_sage_qk_int8(q, k, v, causal=causal)) <= _emulation_tolerance(q.dtype)
    with pytest.raises(ValueError, match=rf"the K-scale block {block} \(sage_fp8\), got {step}"):
        flash_attention_sage_fp8(q, k, v, kernel="tma")
    monkeypatch.setattr(sage_tma, "tiles_for", lambda *a, **kw: sage_tma.SageTmaTiles(32, 4, 1, 2 * block))
    with pytest.raises(ValueError, match=f"a divisor of the K-scale block {block}, got {2 * block}"):
        flash_attention_sage_qk_int8(q, k, v, kernel="tma")


def test_forced_tma_specs_keep_their_method_and_run_the_tma_kernel(monkeypatch):
    """tests/kernels/tma_variants.py: `lowbit fuzz` on the TMA kernel judges it by its method's budgets and
    emulation, on the head dims that kernel runs."""
    from kernels import REGISTRY
    from tests.kernels import tma_variants

    specs = {"sage_qk_int8": tma_variants.SAGE_QK_INT8_TMA, "sage_fp8": tma_variants.SAGE_FP8_TMA}
    launched = []
    real = sage.launch_sage_tma
    monkeypatch.setattr(sage, "launch_sage_tma", lambda *a, **kw: launched.append(1) or real(*a, **kw))
    g = torch.Generator().manual_seed(4)
    q, k, v = (seeded_randn(g, 1, 1, 24, 96) for _ in range(3))
    for method, spec in specs.items():
        registered = REGISTRY[method]
        assert spec.budgets == registered.budgets and spec.emulate is registered.emulate
        assert spec.head_dims == (96, 128)
        before = len(launched)
        out = spec.fn(q, k, v, causal=False)
        assert len(launched) == before + 1
        assert rel_l2(out, registered.emulate(q, k, v, causal=False)) <= _emulation_tolerance(q.dtype)
