"""bench/accuracy_vs_length.py and bench/plot_accuracy.py: the rows written and the worst-per-Nk reduction."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

from harness.search.distributions import DISTRIBUTION_NAMES
from tests.conftest import DEVICE

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sweep_rows_and_worst_by_length():
    sweep = _load("accuracy_vs_length")
    plot = _load("plot_accuracy")
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
