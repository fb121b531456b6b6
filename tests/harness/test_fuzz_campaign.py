"""bench/fuzz_campaign.py: `lowbit fuzz` over methods and seeds on lanes, and the table of its runs."""

from __future__ import annotations

import json

import pytest

from tests.scripts import load_script


def _campaign():
    return load_script("bench/fuzz_campaign.py")


def test_summary_flags_failures_and_unfinished_runs(tmp_path):
    campaign = _campaign()
    passed = {"examples": 400, "passed": 398, "unsupported": 2, "failed_property": None, "elapsed_s": 12.0}
    passed["worst"] = {"family": "outliers", "error_ratio": 0.92}
    (tmp_path / "int8-11.json").write_text(json.dumps(passed))
    table, ok = campaign.summarize(tmp_path)
    assert ok and "| int8-11 | 400 | 398 | 2 | none | 12 | outliers 0.92 |" in table

    failed = dict(passed, failed_property="worst_row", repro_command="lowbit fuzz --kernel int8 --case '{}'")
    (tmp_path / "int8-12.json").write_text(json.dumps(failed))
    (tmp_path / "int8-13.json").write_text("")  # killed before it printed its JSON
    table, ok = campaign.summarize(tmp_path)
    assert not ok
    assert "worst_row: `lowbit fuzz --kernel int8 --case '{}'`" in table
    assert "| int8-13 | - | - | - | did not finish (no JSON) |" in table
    assert campaign.summarize(tmp_path / "empty")[1] is False


def test_bad_arguments_are_refused(tmp_path, capsys):
    campaign = _campaign()
    for argv in (["--methods", "int9", "--out", str(tmp_path)], ["--seeds", "a", "--out", str(tmp_path)], []):
        with pytest.raises(SystemExit) as exc:
            campaign.main(argv)
        assert exc.value.code == 2
    assert "unknown int9" in capsys.readouterr().err


def test_a_small_campaign_runs_lowbit_fuzz_per_method_and_seed(tmp_path):
    campaign = _campaign()
    argv = ["--methods", "fp16", "--seeds", "1,2", "--examples", "2", "--profile", "dev", "--device", "cpu"]
    assert campaign.main([*argv, "--lanes", "2", "--out", str(tmp_path)]) == 0
    for seed in (1, 2):
        report = json.loads((tmp_path / f"fp16-{seed}.json").read_text())
        assert report["kernel"] == "fp16" and report["seed"] == seed and report["examples"] == 2
    assert not list(tmp_path.glob("long-*.json"))  # no 2^31-offset cases on the CPU
    assert "| fp16-1 | 2 |" in (tmp_path / "summary.md").read_text()
