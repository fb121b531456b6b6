"""Group-wise 4/8-bit quantizer and nibble packing: exact round trips, error bounds, layouts, bad input."""

from __future__ import annotations

import pytest
import torch

from kernels.quant_lowbit import dequantize_groups, pack_int4, quantize_groups, unpack_int4


def _x(seed, shape, dtype=torch.float16, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 3 + offset).to(dtype)


@pytest.mark.parametrize("d", [2, 32, 96, 256])
def test_pack_unpack_round_trip_and_nibble_layout(d):
    g = torch.Generator().manual_seed(d)
    codes = torch.randint(0, 16, (3, 5, d), generator=g, dtype=torch.uint8)
    packed = pack_int4(codes)
    assert packed.shape == (3, 5, d // 2) and packed.dtype == torch.uint8
    assert torch.equal(unpack_int4(packed), codes)
    # Byte j: channel j in the low nibble, channel j + D/2 in the high nibble.
    j = d // 2 - 1
    assert int(packed[1, 2, j]) == int(codes[1, 2, j]) + 16 * int(codes[1, 2, j + d // 2])


def test_pack_rejects_out_of_range_codes_and_odd_widths():
    with pytest.raises(ValueError, match=r"0\.\.15"):
        pack_int4(torch.tensor([[3, 16]], dtype=torch.uint8))
    with pytest.raises(ValueError, match="even"):
        pack_int4(torch.zeros(2, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        unpack_int4(torch.zeros(2, 2, dtype=torch.int8))


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_quantize_error_is_half_a_step(bits, symmetric, dtype):
    x = _x(bits, (2, 3, 17, 64), dtype, offset=1.5)
    qx = quantize_groups(x, bits=bits, group=16, symmetric=symmetric)
    width = 32 if bits == 4 else 64
    assert qx.codes.shape == (2, 3, 17, width) and qx.codes.dtype == torch.uint8
    assert qx.scale.shape == (2, 3, 17, 4) and qx.scale.dtype == torch.bfloat16
    codes = unpack_int4(qx.codes) if bits == 4 else qx.codes
    top = (1 << bits) - 1
    assert int(codes.max()) <= top
    if symmetric:
        assert int(codes.min()) >= 1
        assert torch.equal(qx.offset.float(), -(1 << (bits - 1)) * qx.scale.float())
    err = (dequantize_groups(qx) - x.double()).reshape(2, 3, 17, 4, 16).abs().amax(-1)
    # Every element within half a stored step: the bf16 metadata is rounded so that nothing clamps.
    assert (err <= 0.5 * qx.scale.double() * (1 + 1e-9)).all()
    # The step is the group's span over the levels, up to bf16 rounding up (never more than 2^-7).
    xg = x.double().reshape(2, 3, 17, 4, 16)
    span = xg.abs().amax(-1) / ((1 << (bits - 1)) - 1) if symmetric else (xg.amax(-1) - xg.amin(-1)) / top
    assert (qx.scale.double() >= span).all() and (qx.scale.double() <= span * (1 + 2**-6) + 1e-30).all()


def test_constant_and_zero_groups_are_exact_and_input_untouched():
    x = _x(1, (1, 1, 4, 32))
    x[0, 0, 1] = 0
    x[0, 0, 2, :16] = 0.75
    before = x.clone()
    center = torch.full((1, 1, 1, 32), 0.25)
    qx = quantize_groups(x, bits=4, group=16, center=center)
    assert torch.equal(x, before)
    deq = dequantize_groups(qx) + 0.25
    assert qx.scale[0, 0, 2, 0] == 0
    assert torch.equal(deq[0, 0, 2, :16], torch.full((16,), 0.75, dtype=torch.float64))
    assert torch.equal(deq[0, 0, 1], torch.zeros(32, dtype=torch.float64))


def test_asymmetric_beats_symmetric_on_offset_data():
    # What the layout choice rests on: with an offset, min/max groups use all 16 levels.
    x = _x(3, (1, 4, 64, 64), torch.float32, offset=2.0)
    errs = {
        sym: (dequantize_groups(quantize_groups(x, bits=4, group=32, symmetric=sym)) - x.double()).norm()
        for sym in (False, True)
    }
    assert errs[False] < 0.75 * errs[True]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"bits": 3, "group": 16}, "bits"),
        ({"bits": 4, "group": 24}, "group"),
        ({"bits": 4, "group": 0}, "group"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        quantize_groups(_x(0, (1, 1, 2, 64)), **kwargs)
    with pytest.raises(ValueError, match="floating"):
        quantize_groups(torch.zeros(2, 64, dtype=torch.int32), bits=4, group=32)
