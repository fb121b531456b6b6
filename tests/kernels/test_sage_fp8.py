"""``sage_fp8`` and ``sage_qk_int8`` (kernels/flash_sage_fp8.py) against the FP64 oracle and their emulations.

In the CPU interpreter the FP8 casts are replaced by an exact round-to-e4m3 in fp32 (the interpreter of
Triton 3.6 mis-rounds fp8 casts), so these tests check everything else the kernel does — quantizers,
per-block K scales, the exact running maximum, masks, causal skipping, GQA, padding, the epilogue — tightly
against the float64 emulation, and the accuracy loosely against the true attention. The hardware FP8
path is checked by the ``gpu`` tests at the end.
"""

from __future__ import annotations

import zlib

import pytest
import torch
import triton
import triton.language as tl

from harness.search.cases import Case as FuzzCase
from kernels import REGISTRY, attention, quant
from kernels.emulation import emulate_sage_fp8, emulate_sage_qk_int8, quantize_sage_fp8, round_e4m3
from kernels.flash_sage_fp8 import (
    K_SHIFT_MAX,
    config_for,
    flash_attention_sage_fp8,
    flash_attention_sage_qk_int8,
)
from kernels.flash_sage_fp8 import quantize_kv as sage_quantize_kv
from kernels.fp8_round import round_e4m3_fp32
from kernels.launch import LOG2E
from kernels.reference import attention_reference
from tests.conftest import DEVICE
from tests.kernels.cases import (
    BF16,
    F16,
    Case,
    check_noisy_head_recomputed,
    make_case,
    noisy_middle_head_inputs,
    on_device,
    rel_l2,
)

EMULATIONS = {"sage_fp8": emulate_sage_fp8, "sage_qk_int8": emulate_sage_qk_int8}

# Ragged lengths (not multiples of the 32-key interpreter tile), Nq > Nk causal (blind rows), GQA, MQA,
# every head dim (96 padded to 128), both dtypes.
SHAPES = (
    Case(1, 4, 2, 40, 70, 64, F16, True),
    Case(1, 2, 1, 33, 65, 32, BF16, False),
    Case(2, 2, 2, 50, 17, 96, F16, True),
    Case(1, 8, 1, 1, 100, 128, BF16, True),
    Case(1, 1, 1, 20, 40, 256, F16, False),
)


def _emulation_tolerance(dtype: torch.dtype) -> float:
    # The kernel differs from its emulation by fp32 summation order, exp2 in fp32, and the output's
    # rounding to fp16 (2^-11 relative) or bf16 (2^-8).
    return 1e-3 if dtype == torch.float16 else 6e-3


@pytest.mark.parametrize("case", SHAPES, ids=lambda c: c.id)
@pytest.mark.parametrize("method", sorted(EMULATIONS))
def test_matches_emulation_and_reference(method, case):
    q, k, v = make_case(case, seed=zlib.crc32(case.id.encode()))
    k = k + 3.0 * torch.randn(1, 1, 1, case.head_dim, generator=torch.Generator().manual_seed(1)).to(
        k.device, k.dtype
    )
    k_before, v_before = k.clone(), v.clone()
    out = attention(q, k, v, causal=case.causal, method=method)
    assert torch.equal(k, k_before) and torch.equal(v, v_before), "inputs must not be modified"
    assert out.shape == q.shape and out.dtype == q.dtype and out.is_contiguous()
    emu = EMULATIONS[method](q, k, v, causal=case.causal)
    assert rel_l2(out, emu) <= _emulation_tolerance(case.dtype)
    ref = attention_reference(q, k, v, causal=case.causal)
    assert rel_l2(out, ref) <= REGISTRY[method].budget_for("gaussian", case.dtype).max_rel_l2
    if case.causal and case.n_q > case.n_k:
        blind = case.n_q - case.n_k
        assert torch.equal(out[:, :, :blind], torch.zeros_like(out[:, :, :blind]))


def test_emulation_reflects_fp8_rounding():
    """The emulation is not the exact attention: its e4m3 P and V put it ~3e-2 away on Gaussian inputs."""
    case = Case(1, 2, 2, 64, 96, 64, F16, False)
    q, k, v = make_case(case, seed=5)
    ref = attention_reference(q, k, v)
    err_fp8 = rel_l2(emulate_sage_fp8(q, k, v), ref)
    err_qk = rel_l2(emulate_sage_qk_int8(q, k, v), ref)
    assert 1e-2 < err_fp8 < 6e-2
    assert err_qk < 2e-2


def test_round_e4m3_grid():
    x = torch.tensor([0.0, 1.0, 1.0625, 1.0626, 1.1875, 447.0, 460.0, 1e4, -3.3, 2.0**-9, 2.0**-11])
    got = round_e4m3(x)
    # 1.0625 is the tie between 1 and 1.125 (ties to even -> 1); 460 and 1e4 saturate at 448.
    want = [0.0, 1.0, 1.0, 1.125, 1.25, 448.0, 448.0, 448.0, -3.25, 2.0**-9, 0.0]
    assert got.tolist() == want


@triton.jit
def _round_kernel(X, Y, N: tl.constexpr):
    o = tl.arange(0, N)
    tl.store(Y + o, round_e4m3_fp32(tl.load(X + o)))


def test_interpreter_round_matches_torch_cast():
    """The kernel's fp32 round-to-e4m3 (used in the interpreter) equals torch's float8_e4m3fn cast."""
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(512, generator=g) * s for s in (1e-3, 1.0, 30.0, 300.0)])
    xd, yd = x.to(DEVICE), torch.empty(x.numel(), device=DEVICE)
    _round_kernel[(1,)](xd, yd, N=x.numel())
    assert torch.equal(yd.cpu().double(), round_e4m3(x))


def test_fully_masked_and_zero_rows():
    """All-zero Q rows (scale 0) attend uniformly; Nk < Nq causal rows are zero; no NaN anywhere."""
    case = Case(1, 2, 1, 48, 20, 64, F16, True)
    q, k, v = make_case(case, seed=3)
    q[:, :, 40:] = 0
    out = attention(q, k, v, causal=True, method="sage_fp8")
    assert torch.isfinite(out).all()
    emu = emulate_sage_fp8(q, k, v, causal=True)
    assert rel_l2(out, emu) <= 1e-3


@pytest.mark.gpu
@pytest.mark.parametrize("method", sorted(EMULATIONS))
@pytest.mark.parametrize(("n_q", "n_k", "d", "causal"), [(300, 1024, 128, False), (777, 777, 64, True)])
def test_gpu_fp8_matches_emulation(method, n_q, n_k, d, causal):
    g = torch.Generator(device="cuda").manual_seed(n_k + d)
    q = torch.randn(1, 4, n_q, d, device="cuda", generator=g).half()
    k = torch.randn(1, 2, n_k, d, device="cuda", generator=g).half()
    v = torch.randn(1, 2, n_k, d, device="cuda", generator=g).half()
    out = attention(q, k, v, causal=causal, method=method)
    # The hardware e4m3 casts and FP8 MMA against the float64 emulation: a few roundings at fp32 apart.
    assert rel_l2(out, EMULATIONS[method](q, k, v, causal=causal)) <= 2e-3


@pytest.mark.parametrize("pv_fp8", [True, False])
@pytest.mark.parametrize("head_dim", [32, 64, 96, 128, 256])
def test_gpu_tiles_keep_the_key_tile_across_lengths(pv_fp8, head_dim):
    """The key-length buckets change rows and warps only: the K scales are per key tile, so a bucket
    that changed BLOCK_N would change the quantization (and the output) with the length."""
    from kernels.flash_sage_fp8 import config_for

    lengths = (1, 1024, 4096, 4097, 1 << 20)
    cfgs = [config_for(head_dim, n_k, pv_fp8=pv_fp8, interpret=False) for n_k in lengths]
    assert len({c.block_n for c in cfgs}) == 1
    assert len({c.two_level for c in cfgs}) == 1
    if pv_fp8 and head_dim == 128:
        # H200, docs/perf.md "v12": one warp group per program up to 4096 keys, two beyond.
        assert (cfgs[2].block_m, cfgs[2].num_warps, cfgs[3].block_m, cfgs[3].num_warps) == (64, 4, 128, 8)


# Found by `lowbit fuzz --device cuda` on the TMA kernel (v13), the same on the pointer kernel and in the
# CPU interpreter, with the emulation agreeing: one K scale per block of keys, set by the block's largest
# Pareto-tailed key, left the others' scores without digits (rel-L2 1.09 against the outliers budget
# 0.5). A wide block's per-key powers of two (kernels.flash_sage_fp8.K_WIDE_MIN) bring it to 0.22.
_PARETO_ONE_ROW = FuzzCase(
    batch=1, hq=1, hkv=1, nq=1, nk=66, head_dim=96, dtype="float16", causal=False, sm_scale=None,
    distribution="heavy_tailed", seed=3,
)  # fmt: skip


@pytest.mark.parametrize("method", sorted(EMULATIONS))
def test_pareto_tailed_keys_in_one_row_within_budget(method):
    q, k, v = _PARETO_ONE_ROW.make_inputs(DEVICE)
    out = attention(q, k, v, method=method)
    assert rel_l2(out, EMULATIONS[method](q, k, v)) <= _emulation_tolerance(q.dtype)
    budget = REGISTRY[method].budget_for(_PARETO_ONE_ROW.family, q.dtype)
    assert rel_l2(out, attention_reference(q, k, v)) <= budget.max_rel_l2


def test_a_wide_block_gives_each_key_its_digits_and_others_keep_one_scale():
    """One key 1000x the others: its block is wide, and every other key of that block has its codes
    scaled up by the largest power of two (up to 2^K_SHIFT_MAX) that keeps them within +-127, so they use
    at least half the range instead of a few steps; the block's scale is negated (the kernels' flag).
    Blocks without the key (all about the mean's shift, which the large key moves) keep one scale and no
    shift, as every block did before."""
    g = torch.Generator().manual_seed(5)
    k = torch.randn(1, 1, 128, 64, generator=g)
    k[0, 0, 3] *= 1000.0
    k = on_device(k.half())
    cfg = config_for(64, 128, pv_fp8=False)
    qkv = sage_quantize_kv(k, k, cfg, quant_v=False)
    codes = qkv.k8[0, 0, :128, :64].float().cpu()
    shift = qkv.k_shift[0, 0, :128].cpu()
    scale = qkv.k_scale[0, 0].cpu()
    top = K_SHIFT_MAX.value
    assert shift[3] == top and codes[3].abs().max() == 127
    first = torch.arange(128) < cfg.block_n
    others = first & (torch.arange(128) != 3)
    assert torch.all(shift[others] < top)  # scaled up by 2^e, e >= 1
    assert codes[others].abs().amax(dim=1).min() >= 64
    assert scale[0] < 0 and torch.all(scale[1:] > 0) and torch.all(shift[~first] == 0)
    kv = quantize_sage_fp8(k, k, cfg.block_n)
    assert torch.equal(kv.k_int[0, 0].cpu(), codes.double())
    key_scale = scale.abs().double().repeat_interleave(cfg.block_n)[:128] * 2.0 ** shift.double()
    assert torch.equal(kv.k_scale[0, 0].cpu(), key_scale)
    assert kv.wide_heads.tolist() == [[True]] and qkv.wide_heads.tolist() == [[1]]
    # The longest smoothed key's norm, for the noisy-query test: the quantizer's fp32 sum against torch's.
    assert torch.allclose(qkv.k_norm.cpu(), kv.k_norm.cpu(), rtol=1e-6)


@pytest.mark.parametrize("head_dim", [32, 128])
def test_gaussian_keys_keep_one_scale_per_block(head_dim):
    """No block of N(0, 1) keys is wide: their codes, scales and speed are those of one scale per block."""
    k = on_device(torch.randn(2, 2, 1024, head_dim, generator=torch.Generator().manual_seed(0)).half())
    qkv = sage_quantize_kv(k, k, config_for(head_dim, 1024, pv_fp8=False), quant_v=False)
    assert torch.all(qkv.k_scale > 0) and torch.all(qkv.k_shift == 0)


@pytest.mark.parametrize("kernel", ["pointer", "tma"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("method", sorted(EMULATIONS))
def test_heads_with_and_without_wide_blocks_in_one_call(method, causal, kernel):
    """GQA 2, three KV heads, only the middle one with Pareto-scaled keys: the second launch redoes that
    head's query blocks (more blocks than its programs, so each program strides over several) and
    leaves the others as the first launch wrote them; every head matches the emulation."""
    g = torch.Generator().manual_seed(11)
    q, k, v = (torch.randn(1, h, 96, 96, generator=g) for h in (6, 3, 3))
    k[:, 1] *= torch.rand(1, 96, 1, generator=g).pow(-1 / 1.5)  # Pareto (alpha 1.5) per key
    q, k, v = (on_device(t.half()) for t in (q, k, v))
    qkv = sage_quantize_kv(k, v, config_for(96, 96, pv_fp8=method == "sage_fp8"), quant_v=False)
    assert qkv.wide_heads.cpu().tolist() == [[0, 1, 0]]
    run = flash_attention_sage_fp8 if method == "sage_fp8" else flash_attention_sage_qk_int8
    out = run(q, k, v, causal=causal, kernel=kernel)
    assert rel_l2(out, EMULATIONS[method](q, k, v, causal=causal)) <= _emulation_tolerance(q.dtype)


@pytest.mark.parametrize("kernel", ["pointer", "tma"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("method", sorted(EMULATIONS))
def test_noisy_query_heads_are_computed_with_q_as_given(method, causal, kernel, monkeypatch):
    """GQA 2, three KV heads; the middle one's queries carry one channel at 1000x (a massive activation),
    so per-token INT8 rounds their other channels to nothing and the head is noisy
    (kernels.quant.Q_NOISE_MAX). Every head matches the emulation, and the noisy head is far from the
    emulation of per-token Q there: the second launch computed it with Q as given."""
    q, k, v = noisy_middle_head_inputs()
    kv = quantize_sage_fp8(k, v, config_for(96, 96, pv_fp8=method == "sage_fp8").block_n)
    _, q_scale = quant.quantize_per_token_reference(q)
    assert quant.noisy_heads(q_scale, kv.k_norm, LOG2E / 96**0.5).cpu().tolist() == [[False, True, False]]
    run = flash_attention_sage_fp8 if method == "sage_fp8" else flash_attention_sage_qk_int8
    out = run(q, k, v, causal=causal, kernel=kernel)
    emulate = lambda: EMULATIONS[method](q, k, v, causal=causal)  # noqa: E731
    check_noisy_head_recomputed(out, emulate, _emulation_tolerance(q.dtype), monkeypatch)
