"""Error of a kernel output against the oracle, defined so that NaN can never look like a pass.

``rel_l2 = ||out - ref||_2 / max(||ref||_2, REL_L2_FLOOR * sqrt(numel))``: relative L2 error, except that
a reference whose root-mean-square is below ``REL_L2_FLOOR`` is treated as having RMS ``REL_L2_FLOOR``.
So an all-zero reference (all-zero values, or rows that see no key) gives ``rel_l2 = rms(out) /
REL_L2_FLOOR`` instead of 0/0, and a tiny reference cannot turn float16 rounding noise into a huge
relative error. ``max_abs = max |out - ref|``. ``worst_row_rel_l2`` is the largest relative L2 error of one
query row (the last dimension), each row's error divided by ``max(||ref_row||, ROW_NORM_FRACTION *
rms row norm, REL_L2_FLOOR * sqrt(D))``: a single wrong row hides in the whole-tensor error at long
sequences, never here.

Any non-finite output element where the reference is finite makes all three metrics ``inf``; they are then
compared with ``<=``, which is False for ``inf`` against a finite budget (and for NaN, which the metrics
never return).
"""

from __future__ import annotations

import math

import torch

# RMS below which a reference is treated as "zero" by rel_l2 (documented above). It sits above the
# float16 subnormal spacing (6e-8) by three orders of magnitude, so rounding an output into the subnormal
# range costs at most ~3e-4 of relative error, and below every output scale the distributions produce
# except exact zeros (attention outputs are convex combinations of value rows).
REL_L2_FLOOR = 1e-4

# A query row's relative error is taken against the larger of its own reference norm and this fraction of
# the whole reference's RMS row norm. Rows whose output nearly cancels (near-uniform attention over
# zero-mean values) would otherwise turn the method's absolute error into a huge relative one; a row that
# is wrong by a fraction of a typical row is still far over any row budget.
ROW_NORM_FRACTION = 0.125


def error_metrics(out: torch.Tensor, ref: torch.Tensor, *, floor: float = REL_L2_FLOOR) -> dict[str, float]:
    """``{"rel_l2", "max_abs", "ref_rms", "nonfinite"}`` of ``out`` against ``ref`` (same shape).

    Computed in the reference's dtype on the reference's device. Positions where the reference itself
    is not finite are left out of both norms. ``nonfinite`` counts output elements that are NaN/Inf
    where the reference is finite.
    """
    if out.shape != ref.shape:
        raise ValueError(f"output shape {tuple(out.shape)} does not match reference {tuple(ref.shape)}")
    o = out.detach().to(device=ref.device, dtype=ref.dtype)
    ref_ok = torch.isfinite(ref)
    bad = int((~torch.isfinite(o) & ref_ok).sum())
    n = int(ref_ok.sum())
    r = torch.where(ref_ok, ref, 0)
    ref_norm = float(torch.linalg.vector_norm(r))
    ref_rms = ref_norm / math.sqrt(n) if n else 0.0
    if bad:
        return {
            "rel_l2": math.inf,
            "max_abs": math.inf,
            "worst_row_rel_l2": math.inf,
            "ref_rms": ref_rms,
            "nonfinite": float(bad),
        }
    diff = torch.where(ref_ok, o - r, 0)
    err = float(torch.linalg.vector_norm(diff))
    max_abs = float(diff.abs().max()) if diff.numel() else 0.0
    denom = max(ref_norm, floor * math.sqrt(max(n, 1)))
    rel = err / denom
    # Overflow inside the norm (finite but huge values) must not slip through as NaN.
    if not math.isfinite(rel):
        rel = math.inf
    if not math.isfinite(max_abs):
        max_abs = math.inf
    return {
        "rel_l2": rel,
        "max_abs": max_abs,
        "worst_row_rel_l2": _worst_row(diff, r, ref_rms, floor),
        "ref_rms": ref_rms,
        "nonfinite": 0.0,
    }


def _worst_row(diff: torch.Tensor, ref: torch.Tensor, ref_rms: float, floor: float) -> float:
    """Largest relative L2 error of one query row (last dimension), with the floors documented above."""
    if diff.numel() == 0:
        return 0.0
    d = diff.shape[-1]
    err = torch.linalg.vector_norm(diff.reshape(-1, d), dim=-1)
    norm = torch.linalg.vector_norm(ref.reshape(-1, d), dim=-1)
    lowest = max(ROW_NORM_FRACTION * ref_rms * math.sqrt(d), floor * math.sqrt(d))
    worst = float((err / norm.clamp_min(lowest)).max())
    return worst if math.isfinite(worst) else math.inf


def within(value: float, limit: float) -> bool:
    """``value <= limit`` for finite ``value`` only: NaN and inf never pass."""
    return math.isfinite(value) and value <= limit


def error_ratio(metrics: dict[str, float], max_rel_l2: float, max_abs: float) -> float:
    """How far past the budget an output is (1.0 = exactly at the budget); inf for non-finite errors."""

    def ratio(err: float, limit: float) -> float:
        if not math.isfinite(err):
            return math.inf
        if limit <= 0:
            return 0.0 if err == 0 else math.inf
        return err / limit

    return max(ratio(metrics["rel_l2"], max_rel_l2), ratio(metrics["max_abs"], max_abs))
