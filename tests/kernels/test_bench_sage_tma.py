"""bench/bench_sage_tma.py on the CPU: every kernel choice and extra tile runs and lands in the table."""

from __future__ import annotations

import json

import pytest

from tests.scripts import load_script


@pytest.mark.interpreter
def test_tiny_run_times_each_kernel_choice(tmp_path, monkeypatch):
    bench = load_script("bench/bench_sage_tma.py")
    monkeypatch.setenv("OUT", str(tmp_path))
    assert bench.main(["--tiny", "--tiles", "two=1,32,4,2", "--tiles", "n16=0,32,4,1,16"]) == 0
    rows = json.loads((tmp_path / "bench_sage_tma.json").read_text())["rows"]
    by_causal = {c: {r["name"] for r in rows if r["causal"] is c} for c in (False, True)}
    kernels = {f"{m}_{k}" for m in ("sage_qk_int8", "sage_fp8") for k in ("pointer", "tma", "auto")}
    assert by_causal[False] == kernels | {"fp16", "sage_qk_int8_tma_n16"}  # sage_fp8's step is its K block
    assert by_causal[True] == kernels | {"fp16", "sage_qk_int8_tma_two", "sage_fp8_tma_two"}
    # rel-L2 on Gaussian inputs: INT8 Q and K about 1e-2, e4m3 P about 3.7e-2 (the budgets' scale).
    limit = {"fp16": 1e-3, "sage_qk": 2e-2, "sage_fp": 5e-2}
    assert all(0 < r["rel_l2"] < limit[r["name"][:7]] for r in rows)
    assert "| 1 | 2:1 | 70 | 90 | 96 | True |" in (tmp_path / "bench_sage_tma.md").read_text()


def test_tiles_are_refused_by_name_when_malformed():
    bench = load_script("bench/bench_sage_tma.py")
    assert bench.parse_tiles(["s3=0,128,4,3"]) == {"s3": (False, (128, 4, 3))}
    assert bench.parse_tiles(["n64=1,128,8,3,64"]) == {"n64": (True, (128, 8, 3, 64))}
    for bad in ("s3=2,128,4,3", "=0,128,4,3", "s3=0,128,4", "s3=0,a,4,3", "s3=0,1,2,3,4,5"):
        with pytest.raises(SystemExit, match="NAME=CAUSAL"):
            bench.parse_tiles([bad])
