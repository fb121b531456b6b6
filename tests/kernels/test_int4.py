"""INT4 prefill methods (int4, int4_seed): against their float64 emulation (tight) and the FP64 oracle."""

from __future__ import annotations

import pytest
import torch

from kernels import REGISTRY, attention
from kernels.flash_int4 import quantize_qk
from kernels.quant_lowbit import dequantize_groups, unpack_int4
from kernels.reference import attention_reference
from tests.kernels.cases import AWKWARD, make_case, on_device, rel_l2

METHODS = ("int4", "int4_seed")
# The kernel differs from its emulation only by P rounded to q's dtype and fp32 summation order.
EMULATION = {torch.float16: 2e-3, torch.bfloat16: 1.2e-2}


@pytest.mark.parametrize("method", METHODS)
# Four awkward shapes (GQA decode-like, MQA bf16 D=32, causal Nq > Nk D=96, bf16 D=128); every shape is
# also checked against the oracle by tests/kernels/test_awkward_shapes.py.
@pytest.mark.parametrize("case", AWKWARD[:4], ids=lambda c: c.id)
def test_matches_emulation_and_oracle(method, case):
    spec = REGISTRY[method]
    q, k, v = make_case(case, seed=13)
    k = k + 0.5  # a common offset: smoothing (int4) and the zero point (both) have work to do
    out = attention(q, k, v, causal=case.causal, method=method)
    emu = spec.emulate(q, k, v, causal=case.causal)
    assert emu.dtype == torch.float64 and emu.shape == out.shape
    assert rel_l2(out, emu) <= EMULATION[case.dtype]
    ref = attention_reference(q, k, v, causal=case.causal)
    assert rel_l2(out, ref) <= spec.budget_for("gaussian", case.dtype).max_rel_l2


def test_zero_point_is_applied():
    # K far from zero on every channel: without the zero-point term (codes fed straight to the dot,
    # as the seed's public code does) the logits would be garbage; with it the error is 4-bit noise.
    g = torch.Generator().manual_seed(5)
    q = on_device(torch.randn(1, 2, 40, 64, generator=g).half())
    k = on_device((torch.randn(1, 2, 50, 64, generator=g) * 0.5 + 3.0).half())
    v = on_device(torch.randn(1, 2, 50, 64, generator=g).half())
    _, qk = quantize_qk(q, k, q_bits=8, smooth_k=False)
    assert float(qk.offset.float().mean()) > 1.5  # the offsets really carry the mean
    out = attention(q, k, v, method="int4_seed")
    ref = attention_reference(q, k, v)
    assert rel_l2(out, ref) < 0.1
    codes_only = attention_reference(q, unpack_int4(qk.codes).half(), v)
    assert rel_l2(codes_only, ref) > 3 * rel_l2(out, ref)


def test_quantized_operands_layout():
    g = torch.Generator().manual_seed(6)
    q = torch.randn(2, 4, 33, 96, generator=g).bfloat16()
    k = torch.randn(2, 2, 21, 96, generator=g).bfloat16()
    q4, k4 = quantize_qk(q, k, q_bits=4, smooth_k=True)
    # 96 channels: two per byte by halves, groups of 16 (a group never straddles the halves).
    assert q4.codes.shape == (2, 4, 33, 48) and q4.group == 16 and q4.meta.shape == (2, 4, 33, 6, 2)
    assert k4.codes.shape == (2, 2, 21, 48)
    centered = k.double() - k.float().mean(dim=2, keepdim=True).double()
    err = (dequantize_groups(k4) - centered).abs().reshape(2, 2, 21, 6, 16).amax(-1)
    assert (err <= 0.5 * k4.scale.double() * (1 + 1e-6) + 1e-6).all()
    q8, _ = quantize_qk(q, k, q_bits=8, smooth_k=False)
    assert q8.codes.shape == (2, 4, 33, 96) and q8.bits == 8


@pytest.mark.parametrize("method", METHODS)
def test_unsupported_input_raises(method):
    q = on_device(torch.randn(1, 2, 8, 80).half())
    with pytest.raises(ValueError, match="head dim"):
        attention(q, q, q, method=method)
    q = on_device(torch.randn(1, 2, 8, 64).float())
    with pytest.raises(ValueError, match="dtype"):
        attention(q, q, q, method=method)
