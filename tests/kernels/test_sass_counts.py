"""bench/sass_counts.py: the decode kernel compiles for sm_90a on a machine without a GPU, and is counted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.scripts import REPO, load_script

SCRIPT = REPO / "bench" / "sass_counts.py"


def _run(tmp_path, *args):
    # Its own process: the tests' TRITON_INTERPRET=1 makes jit functions interpreted ones in this one.
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "TRITON_INTERPRET": "1"}, timeout=300,
    )  # fmt: skip


def test_counts_the_shipped_decode_kernel(tmp_path):
    out = tmp_path / "counts.json"
    proc = _run(tmp_path, "--bits", "8", "--block-n", "64", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    (r,) = json.loads(out.read_text())
    assert r["variant"] == "kv_cache" and r["bits"] == 8
    # Tensor-core dots for Q·K^T and P·V, and the int -> float conversions the dequantization needs.
    assert r["ops"].get("HMMA", 0) > 0
    assert 0 < r["conversions"] < r["total"] == sum(r["ops"].values())
    assert r["registers"] is not None and 0 < r["registers"] <= 255
    loop = f"{r['loop']} ({r['loop_without_first_branch']})"
    assert f"| kv_cache | 8 | {r['total']} | {loop} | {r['conversions']} |" in proc.stdout


def test_counts_the_copies_kernel_with_fewer_score_instructions(tmp_path):
    # The copies kernel scales one score tile instead of one per group of K: fewer instructions in all
    # than the folded kernel at the same tile (722 against 1596 per step at 4 bits, sm_90a, Triton
    # 3.6; with its word loads, softmax on the real rows and lazy rescaling).
    tile = ("--bits", "4", "--block-n", "32", "--num-warps", "1", "--num-stages", "3", "--fusion")
    folded, copies = tmp_path / "folded.json", tmp_path / "copies.json"
    proc = _run(tmp_path, *tile, "--json", str(folded))
    assert proc.returncode == 0, proc.stderr
    proc = _run(tmp_path, *tile, "--kernel", "_decode_kv_copies_kernel", "--json", str(copies))
    assert proc.returncode == 0, proc.stderr
    (f,), (c,) = json.loads(folded.read_text()), json.loads(copies.read_text())
    assert c["ops"]["HMMA"] == f["ops"]["HMMA"] > 0
    assert c["total"] < 0.9 * f["total"]
    # One 32-key step of its loop, and the step without the rarely taken rescale.
    assert 0 < c["loop_without_first_branch"] < c["loop"] < c["total"]
    assert f"| {c['loop']} ({c['loop_without_first_branch']}) |" in proc.stdout


def test_main_loop_is_found_and_its_first_branch_block_left_out():
    sass = load_script("bench/sass_counts.py")
    text = "\n".join(
        f"        /*{addr:04x}*/                   {ins} ;"
        for addr, ins in [
            (0x00, "MOV R1, c[0x0][0x28]"),
            (0x10, "IADD3 R2, R1, 0x1, RZ"),  # the loop starts here
            (0x20, "FADD R3, R2, R2"),
            (0x30, "@!P0 BRA 0x60"),  # the rarely taken block: 0x40, 0x50
            (0x40, "FMUL R4, R3, R3"),
            (0x50, "FMUL R5, R4, R4"),
            (0x60, "BSYNC B0"),
            (0x70, "@P1 BRA 0x10"),  # back to the loop's start
            (0x80, "EXIT"),
            (0x90, "BRA 0x90"),  # the trailing self-branch is not a loop
        ]
    )
    assert sass.main_loop(text) == {"loop": 7, "loop_without_first_branch": 5}
    assert sass.main_loop("        /*0000*/                   EXIT ;") is None


def test_a_module_without_the_kernel_is_refused(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    proc = _run(tmp_path, str(bad), "--bits", "8")
    assert proc.returncode != 0 and "_decode_kv_kernel" in proc.stderr


def test_importing_it_leaves_the_interpreter_on():
    before = dict(os.environ)
    module = load_script("bench/sass_counts.py")
    assert dict(os.environ) == before  # an in-process import must not switch this worker off it
    assert callable(module.count) and callable(module.main)


def test_fp16_fmas_take_the_conversions_out_of_the_dequantizing_loop(tmp_path):
    # The dequantizing kernel on an fp16 cache forms code * scale + offset with packed fp16 FMAs: the
    # fp32 path's per-code integer-to-float conversions and fp32 multiply-adds leave the loop (2681 ->
    # 1925 instructions per 128-key step at 32 rows, sm_90a, Triton 3.6; docs/perf.md "v17").
    counts = {}
    for flag in ([], ["--fp32-dequant"]):
        out = tmp_path / f"dequant{len(flag)}.json"
        args = ["--kernel", "_decode_kv_dequant_kernel", "--bits", "4", "--block-m", "32", "--json", str(out)]
        proc = _run(tmp_path, *args, *flag)
        assert proc.returncode == 0, proc.stderr
        (counts[bool(flag)],) = json.loads(out.read_text())
    fp16, fp32 = counts[False], counts[True]
    assert fp16["ops"].get("HFMA2", 0) > 0 and fp32["ops"].get("HFMA2", 0) == 0
    assert fp16["loop"] < fp32["loop"] and fp16["conversions"] < fp32["conversions"]
