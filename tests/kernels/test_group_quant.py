"""The fused group quantizer (kernels.group_quant) against the torch reference: the same bits, always."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kernels.group_quant import quantize_groups_fused
from kernels.kv_cache import default_kv_group
from kernels.quant_lowbit import dequantize_groups, quantize_groups
from tests.kernels.cases import on_device
from tests.scripts import REPO

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def _same(a, b) -> bool:
    """Codes and metadata bit for bit (metadata compared as raw bf16 bits, so NaNs count too)."""
    return (
        a.bits == b.bits
        and a.group == b.group
        and torch.equal(a.codes.cpu(), b.codes.cpu())
        and torch.equal(a.meta.cpu().view(torch.int16), b.meta.cpu().view(torch.int16))
    )


def _both(x, **kw):
    return quantize_groups(x, **kw), quantize_groups_fused(x, **kw)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    d=st.sampled_from([32, 64, 96, 128, 256]),
    bits=st.sampled_from([4, 8]),
    symmetric=st.booleans(),
    dtype=st.sampled_from(sorted(DTYPES)),
    smooth=st.booleans(),
    n=st.integers(1, 40),
    log2_scale=st.integers(-16, 14),
    seed=st.integers(0, 2**31 - 1),
)
# Tokens spanning 2^-16 .. 2^14 (fp16 subnormals to near its limit), ragged token tiles, D = 96's padded
# halves (and its 48-channel group, a whole half), the 8-bit symmetric group of a whole half at D = 256.
@example(d=96, bits=4, symmetric=False, dtype="fp16", smooth=True, n=37, log2_scale=-16, seed=1)
@example(d=96, bits=8, symmetric=False, dtype="bf16", smooth=False, n=23, log2_scale=0, seed=3)
@example(d=256, bits=8, symmetric=True, dtype="bf16", smooth=False, n=17, log2_scale=14, seed=2)
def test_fused_quantizer_gives_the_references_bits(d, bits, symmetric, dtype, smooth, n, log2_scale, seed):
    g = torch.Generator().manual_seed(seed)
    spread = torch.rand(2, 2, n, 1, generator=g) * 8 - 4
    x = (torch.randn(2, 2, n, d, generator=g) * (spread + log2_scale).exp2()).clamp(-6e4, 6e4)
    x = on_device(x.to(DTYPES[dtype]))
    # The methods' groups: Q's 8-bit symmetric one per power-of-two part of a half, K's 4-/8-bit ones,
    # and the KV cache's V, one group per half (48 channels at D = 96).
    group = (d // 2) & -(d // 2) if symmetric else default_kv_group(d, bits) if seed % 3 else d // 2
    center = x.float().mean(dim=2, keepdim=True) if smooth and not symmetric else None
    ref, fused = _both(x, bits=bits, group=group, symmetric=symmetric, center=center)
    assert _same(ref, fused)


@pytest.mark.parametrize("bits", [4, 8])
def test_special_values_match_and_nan_groups_stay_nan(bits):
    # Zeros, a constant group (span 0: scale 0, code 0), the fp16 limit, subnormals, and one NaN, which
    # makes its group's scale and offset NaN (never a finite dequantized value) and leaves others alone.
    x = torch.zeros(1, 2, 6, 64)
    x[0, 0, 1] = 3.25
    x[0, 0, 2, :32] = torch.linspace(-65504, 65504, 32)
    x[0, 0, 3] = torch.linspace(-1, 1, 64) * 2.0**-20
    x[0, 1, 4] = torch.randn(64, generator=torch.Generator().manual_seed(0))
    x[0, 1, 5, 7] = float("nan")
    x = on_device(x.half())
    ref, fused = _both(x, bits=bits, group=16)
    # Every token but the NaN one, bit for bit; the NaN token's codes are unspecified in both.
    rows = [(0, t) for t in range(6)] + [(1, t) for t in range(5)]
    for h, t in rows:
        assert torch.equal(ref.codes[0, h, t].cpu(), fused.codes[0, h, t].cpu())
        assert torch.equal(
            ref.meta[0, h, t].cpu().view(torch.int16), fused.meta[0, h, t].cpu().view(torch.int16)
        )
    assert fused.meta[0, 1, 5, 0].isnan().all() and not fused.meta[0, 1, 5, 1:].isnan().any()
    assert dequantize_groups(fused)[0, 1, 5, :16].isnan().all()
    assert torch.equal(dequantize_groups(fused)[0, 0, 1].cpu(), torch.full((64,), 3.25, dtype=torch.float64))


def test_bad_input_raises_clear_errors():
    x = on_device(torch.zeros(1, 2, 4, 64, dtype=torch.float16))
    with pytest.raises(ValueError, match="4-d tensor"):
        quantize_groups_fused(x[0], bits=4, group=32)
    with pytest.raises(ValueError, match="dtype"):
        quantize_groups_fused(x.double(), bits=4, group=32)
    with pytest.raises(ValueError, match="contiguous"):
        quantize_groups_fused(x.transpose(2, 3), bits=4, group=2)
    with pytest.raises(ValueError, match="half the head dim"):
        quantize_groups_fused(x, bits=4, group=64)
    with pytest.raises(ValueError, match="center"):
        quantize_groups_fused(x, bits=4, group=32, center=x.float())
    empty = quantize_groups_fused(x[:, :, :0], bits=4, group=32)
    assert empty.codes.shape == (1, 2, 0, 32) and empty.meta.shape == (1, 2, 0, 2, 2)


COMPILE = """
import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from kernels.group_quant import _quantize_groups_kernel as fn
sig = {n: "i32" for n in ("stride_xb", "stride_xh", "stride_xn", "H", "N", "NUM_T_BLOCKS")}
sig.update(X="*fp16", C="*fp32", CODES="*u8", META="*bf16")
VARIANTS = ((4, False, True, 64, 32), (4, True, False, 48, 16), (8, True, False, 64, 64),
            (8, False, True, 128, 64), (8, False, False, 48, 48))
for bits, symmetric, center, half, g in VARIANTS:
    values = dict(HAS_CENTER=center, BITS=bits, SYMMETRIC=symmetric, HALF=half, G=g, BLOCK_T=32,
                  BLOCK_H=triton.next_power_of_2(half))
    full = {n: sig.get(n, "constexpr") for n in fn.arg_names}
    const = {(fn.arg_names.index(n),): v for n, v in values.items()}
    triton.compile(ASTSource(fn, full, constexprs=const), target=GPUTarget("cuda", 90, 32),
                   options=dict(num_warps=4, enable_fp_fusion=False))
print("compiled")
"""


def test_the_kernel_compiles_for_hopper():
    # The interpreter accepts what the compiler refuses (a plain Python global in a jit function did
    # once): compile every variant the methods launch for sm_90, in a process without the interpreter.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run(
        [sys.executable, "-c", COMPILE], cwd=REPO, capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0 and "compiled" in proc.stdout, proc.stdout + proc.stderr[-3000:]
