"""bench/accuracy_vs_length.py and bench/plot_accuracy.py: the rows written and the worst-per-Nk reduction."""

from __future__ import annotations

import math

from harness.search.distributions import DISTRIBUTION_NAMES
from tests.conftest import DEVICE
from tests.scripts import load_script


def test_sweep_rows_and_worst_by_length():
    sweep = load_script("bench/accuracy_vs_length.py")
    plot = load_script("bench/plot_accuracy.py")
    rows = sweep.measure(["int8"], [24, 40], [32], [0], 8, DEVICE)
    assert len(rows) == 2 * len(DISTRIBUTION_NAMES)
    for r in rows:
        assert set(r) == set(sweep.FIELDS)
        assert 0 <= r["rel_l2"] < 1 and math.isfinite(r["kernel_only_rel_l2"])
    as_csv = [{k: str(v) for k, v in r.items()} for r in rows]
    worst, claimed = plot.worst_by_length(as_csv)
    gaussian = [r["rel_l2"] for r in rows if r["family"] == "gaussian" and r["nk"] == 40]
    assert worst["gaussian"]["int8"][40] == max(gaussian)
    # Every budget is a finite claim now, "extreme" included (kernels/spec.py refuses infinite ones).
    assert claimed["gaussian"]["int8"] and claimed["extreme"]["int8"]
