"""bench/bench_fp16_tma.py on the CPU: every kernel choice runs, matches FP32, and lands in the table."""

from __future__ import annotations

import json

import pytest

from tests.scripts import load_script


@pytest.mark.interpreter
def test_tiny_run_times_each_kernel_choice(tmp_path, monkeypatch):
    bench = load_script("bench/bench_fp16_tma.py")
    monkeypatch.setenv("OUT", str(tmp_path))
    assert bench.main(["--tiny"]) == 0
    rows = json.loads((tmp_path / "bench_fp16_tma.json").read_text())["rows"]
    by_causal = {c: {r["name"] for r in rows if r["causal"] is c} for c in (False, True)}
    assert by_causal[False] == by_causal[True] == {"fp16_pointer", "fp16_auto", "fp16_tma"}
    assert all(0 < r["rel_l2"] < 1e-3 for r in rows)
    assert "| 1 | 2 | 70 | 128 | False |" in (tmp_path / "bench_fp16_tma.md").read_text()
