"""bench/tma_compile_check.py: the TMA kernels (fp16, sage) compile for sm_90a without a GPU, as designed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.scripts import REPO, load_script

SCRIPT = REPO / "bench" / "tma_compile_check.py"


def test_shipped_tiles_are_warp_specialized_exactly_when_not_causal(tmp_path):
    out = tmp_path / "tma.json"
    # Its own process: the tests' TRITON_INTERPRET=1 makes jit functions interpreted ones in this one.
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", str(out)], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "TRITON_INTERPRET": "1"}, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())
    assert {(r["kernel"], r["causal"], r["head_dim"]) for r in rows} == {
        ("fp16", c, d) for c in (False, True) for d in (32, 64, 128)
    } | {
        (f"{m} {t}", c, 128)
        for m in ("sage_qk_int8", "sage_fp8")
        for c in (False, True)
        for t in ("fp16", "bf16")
    } | {(f"{m} fp16 wide pass", c, 128) for m in ("sage_qk_int8", "sage_fp8") for c in (False, True)}
    for r in rows:
        # The second launch for flagged heads (wide K blocks, noisy queries) has a branch in its loop:
        # never specialized. It holds the caller's 16-bit Q tile and may spill its allowance (16 bytes on
        # 3 stages, which measured faster than the spill-free single stage); nothing else may spill.
        wide_pass = r["kernel"].endswith("wide pass")
        allowed = 16 if wide_pass else 0
        assert r["warp_specialized"] is not (r["causal"] or wide_pass)
        assert r["stack"] <= allowed and r.get("spill_allowed", 0) == allowed
        assert r["wgmma"] > 0 and r["tma_loads"] > 0 and r["problems"] == []
        assert 0 < r["shared"] <= 232448


def test_problems_names_each_broken_promise():
    before = dict(os.environ)
    check = load_script("bench/tma_compile_check.py")
    assert dict(os.environ) == before  # importing it must not switch this process off the interpreter
    good = dict(causal=False, warp_specialized=True, stack=0, shared=197024, wgmma=32, tma_loads=6)
    assert check.problems(good) == []
    assert check.problems(good | {"warp_specialized": False}) == ["warp specialization lost"]
    assert check.problems(good | {"causal": True}) == ["warp specialization present (causal)"]
    wide_pass = good | {"warp_specialized": False, "expect_warp_specialized": False}
    assert check.problems(wide_pass) == []
    present = ["warp specialization present (wide pass)"]
    assert check.problems(wide_pass | {"warp_specialized": True}) == present
    # A spill within the row's allowance (the second launch's 16 bytes) passes; past it, it is named.
    assert check.problems(wide_pass | {"stack": 16, "spill_allowed": 16}) == []
    assert check.problems(wide_pass | {"stack": 24, "spill_allowed": 16}) == ["24 bytes of spill stack"]
    assert check.problems(good | {"stack": 96, "shared": 262680}) == [
        "96 bytes of spill stack",
        "262680 bytes of shared memory",
    ]
