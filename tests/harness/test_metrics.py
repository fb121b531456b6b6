"""Error metrics: the near-zero-reference rule, and NaN/Inf never passing."""

import math

import pytest
import torch

from harness.search.metrics import REL_L2_FLOOR, error_metrics, error_ratio, within


def test_relative_l2_and_max_abs_of_an_ordinary_pair():
    ref = torch.tensor([3.0, 4.0], dtype=torch.float64)
    out = torch.tensor([3.0, 4.5], dtype=torch.float16)
    m = error_metrics(out, ref)
    assert m["rel_l2"] == pytest.approx(0.5 / 5.0)
    assert m["max_abs"] == pytest.approx(0.5)
    assert m["nonfinite"] == 0


def test_zero_reference_uses_the_floor():
    ref = torch.zeros(4, dtype=torch.float64)
    out = torch.full((4,), 2e-5, dtype=torch.float64)
    m = error_metrics(out, ref)
    # ||out|| / (floor * sqrt(n)) = rms(out) / floor
    assert m["rel_l2"] == pytest.approx(2e-5 / REL_L2_FLOOR)
    assert error_metrics(torch.zeros(4), ref)["rel_l2"] == 0.0


def test_tiny_reference_does_not_inflate_rounding_noise():
    ref = torch.full((100,), 1e-7, dtype=torch.float64)
    out = ref + 1e-7
    assert error_metrics(out, ref)["rel_l2"] == pytest.approx(1e-7 / REL_L2_FLOOR)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_output_gives_inf_and_never_passes(bad):
    ref = torch.ones(3, dtype=torch.float64)
    out = torch.tensor([1.0, bad, 1.0])
    m = error_metrics(out, ref)
    assert m["rel_l2"] == math.inf and m["max_abs"] == math.inf and m["nonfinite"] == 1
    assert not within(m["rel_l2"], 1e9)
    assert not within(math.nan, 1e9)
    assert error_ratio(m, 1.0, 1.0) == math.inf


def test_non_finite_reference_positions_are_ignored():
    ref = torch.tensor([1.0, math.inf], dtype=torch.float64)
    out = torch.tensor([1.0, 5.0])
    assert error_metrics(out, ref)["rel_l2"] == 0.0


def test_error_ratio_with_a_zero_budget():
    assert error_ratio({"rel_l2": 0.0, "max_abs": 0.0}, 0.0, 0.0) == 0.0
    assert error_ratio({"rel_l2": 1e-9, "max_abs": 0.0}, 0.0, 1.0) == math.inf
    assert error_ratio({"rel_l2": 0.5, "max_abs": 0.1}, 1.0, 0.05) == pytest.approx(2.0)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        error_metrics(torch.zeros(3), torch.zeros(4, dtype=torch.float64))
