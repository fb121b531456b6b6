"""bench/ab_decode.py on the CPU: a ref's kv_cache.py is exported, loaded as its own module and measured."""

from __future__ import annotations

import json
import subprocess

import pytest

from harness.store.ingest import parse_benchmark_json
from tests.scripts import REPO, load_script


def _ab():
    return load_script("bench/ab_decode.py")


@pytest.mark.interpreter
def test_exported_variants_run_side_by_side(tmp_path, monkeypatch):
    ab = _ab()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    (path,) = ab.export([head.stdout.strip()], tmp_path)
    assert (
        path.read_text()
        == subprocess.run(
            ["git", "show", "HEAD:kernels/kv_cache.py"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
    )
    twin = tmp_path / "twin.py"
    twin.write_text(path.read_text())
    monkeypatch.setenv("OUT", str(tmp_path))
    assert ab.main(["--tiny", str(path), str(twin)]) == 0
    rows = json.loads((tmp_path / "ab_decode.json").read_text())["rows"]
    # Two variants x two widths x two query counts, each a separate module with the same kernel.
    assert {r["name"] for r in rows} == {f"{v} int{b}" for v in (path.stem, "twin") for b in (8, 4)}
    assert len(rows) == 8
    by = {(r["name"].split()[1], r["nq"], r["name"].split()[0]): r["rel_l2"] for r in rows}
    for bits, nq in ((b, n) for b in ("int8", "int4") for n in (1, 3)):
        assert by[(bits, nq, "twin")] == by[(bits, nq, path.stem)]
        assert 0 < by[(bits, nq, "twin")] < (0.02 if bits == "int8" else 0.2)
    # Each kernel is also held to the float64 emulation of its own algorithm, much tighter.
    assert all(0 < r["rel_l2_emulation"] < 2e-3 for r in rows)
    assert "| 96 | 1 | twin int8 |" in (tmp_path / "ab_decode.md").read_text()
    # The defaults' timings in pytest-benchmark's form, as `lowbit ingest` reads them.
    machine, benchmarks = parse_benchmark_json(tmp_path / "ab_decode_bench.json")
    assert machine["gpu"] == "CPU (Triton interpreter)"
    assert {b.kernel for b in benchmarks} == {f"{v} int{b}" for v in (path.stem, "twin") for b in (8, 4)}
    assert len(benchmarks) == 8
    for b in benchmarks:
        assert b.row.case_params["params"]["Nk"] == 96 and b.row.case_params["params"]["Nq"] in (1, 3)
        assert 0 < b.row.metrics["rel_l2"] < 0.2 and b.row.latency["p50_ms"] > 0
        assert 0 < b.row.metrics["rel_l2_emulation"] < 2e-3


def test_other_head_layouts_and_groups(tmp_path, monkeypatch):
    # --shape picks the head layouts (each row says which) and --group K's quantization group.
    ab = _ab()
    monkeypatch.setenv("OUT", str(tmp_path))
    module = REPO / "kernels" / "kv_cache.py"
    assert ab.main(["--tiny", str(module), "--shape", "1", "4", "1", "128", "--group", "64"]) == 0
    rows = json.loads((tmp_path / "ab_decode.json").read_text())["rows"]
    # The variant's rows (on a GPU the run adds SDPA's and the copy's).
    rows = [r for r in rows if r["name"].startswith("kv_cache ")]
    assert len(rows) == 4 and {r["shape"] for r in rows} == {"1,4,1,128"}
    assert all(0 < r["rel_l2_emulation"] < 2e-3 for r in rows)
    # Groups of 64 at 4 bits, D = 128: 64 + 2 * 4 bytes of K and 64 + 2 * 4 of V per token (the
    # library's groups of 32 would make K's metadata 16 bytes).
    four = [r for r in rows if r["name"] == "kv_cache int4"]
    assert four and all(r["bytes"] == 96 * 144 for r in four)
    assert "| 1,4,1,128 |" in (tmp_path / "ab_decode.md").read_text()


def test_a_module_without_the_api_is_refused(tmp_path):
    ab = _ab()
    bad = tmp_path / "bad.py"
    bad.write_text("def quantize_kv():\n    pass\n")
    with pytest.raises(SystemExit, match="decode_attention is missing"):
        ab.load_variant(bad)
    with pytest.raises(SystemExit, match="missing"):
        ab.main([str(tmp_path / "absent.py")])


def test_an_unknown_ref_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="git show no-such-ref"):
        _ab().export(["no-such-ref"], tmp_path)
