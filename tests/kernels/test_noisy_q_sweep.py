"""bench/noisy_q_sweep.py: the noisy-head rule's estimates and counts per distribution (CPU, float64)."""

from __future__ import annotations

import json

import pytest

from kernels import quant
from tests.scripts import load_script


def test_sweep_flags_no_gaussian_head_and_the_huge_ones(tmp_path, capsys):
    sweep = load_script("bench/noisy_q_sweep.py")
    out = tmp_path / "rows.json"
    assert sweep.main(["--seeds", "1", "--json", str(out)]) == 0
    rows = {r["distribution"]: r for r in json.loads(out.read_text())}
    assert rows["gaussian"]["heads"] == 12 and rows["gaussian"]["flagged"] == 0
    assert rows["gaussian"]["max_estimate"] < quant.Q_NOISE_MAX / 100
    assert rows["channel_outliers"]["flagged"] == 0
    # fp16-limit inputs (|q|, |k| up to 6e4): most heads are noisy (8 of these 12).
    assert rows["fp16_limit"]["flagged"] > rows["fp16_limit"]["heads"] // 2
    # Where nothing is flagged the two emulations agree exactly.
    assert rows["gaussian"]["worst_rel_l2_with_rule"] == rows["gaussian"]["worst_rel_l2_without_rule"]
    table = capsys.readouterr().out
    assert "| fp16_limit | 12 |" in table and f"flagged (> {quant.Q_NOISE_MAX:g})" in table


def test_bad_threshold_is_refused(capsys):
    sweep = load_script("bench/noisy_q_sweep.py")
    with pytest.raises(SystemExit) as exit_:
        sweep.main(["--max-noise", "0"])
    assert exit_.value.code == 2
    assert "--max-noise: expected a finite positive float, got 0.0" in capsys.readouterr().err
