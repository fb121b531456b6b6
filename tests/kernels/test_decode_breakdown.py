"""bench/decode_breakdown.py on the CPU: the split kernel and the merge timed apart, the merge's replay
checked against the whole step."""

from __future__ import annotations

import json

import pytest

from tests.scripts import load_script


@pytest.mark.interpreter
def test_breakdown_times_each_part_and_restores_the_merge(tmp_path, monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path))
    breakdown = load_script("bench/decode_breakdown.py")
    import kernels.kv_cache as kv

    merge = kv._combine_splits_kernel
    assert breakdown.main(["--tiny", "--shape", "1", "4", "2", "64", "--bits", "4"]) == 0
    # The merge kernel is put back: a later decode step is whole again.
    assert kv._combine_splits_kernel is merge
    (row,) = json.loads((tmp_path / "decode_breakdown.json").read_text())["rows"]
    assert (row["Hq"], row["Hkv"], row["D"], row["Nk"], row["bits"]) == (4, 2, 64, 96, 4)
    assert row["splits"] >= 1
    assert min(row["whole_us"], row["split_us"], row["merge_alone_us"]) > 0
    assert "| 1 | 4 | 2 | 64 | 96 | 4 |" in (tmp_path / "decode_breakdown.md").read_text()


@pytest.mark.interpreter
def test_a_merge_that_does_not_reproduce_the_step_stops_the_run(tmp_path, monkeypatch):
    """The replay is checked bit for bit against a fresh step: a merge whose output changes from launch
    to launch (here it adds its launch count) must not be timed."""
    monkeypatch.setenv("OUT", str(tmp_path))
    breakdown = load_script("bench/decode_breakdown.py")
    import kernels.kv_cache as kv

    real = kv._combine_splits_kernel

    class Drifting:
        launches = 0

        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                real[grid](*args, **kwargs)
                Drifting.launches += 1
                args[3].add_(Drifting.launches)

            return launch

    monkeypatch.setattr(kv, "_combine_splits_kernel", Drifting())
    with pytest.raises(SystemExit, match="did not reproduce"):
        breakdown.main(["--tiny", "--shape", "1", "4", "2", "64", "--bits", "4"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nk", "0"], "--nk: expected cache lengths of at least 1"),
        (["--shape", "1", "0", "1", "64"], "--shape: expected positive B HQ HKV D"),
    ],
)
def test_bad_lengths_and_shapes_are_refused_by_name(argv, message, capsys):
    breakdown = load_script("bench/decode_breakdown.py")
    with pytest.raises(SystemExit):
        breakdown.main(["--tiny", *argv])
    assert message in capsys.readouterr().err
