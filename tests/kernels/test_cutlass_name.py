"""bench/cutlass_name.py on the CPU: renamed copies of the kernels load, run and match the originals."""

from __future__ import annotations

import json

import pytest

from tests.scripts import REPO, load_script


def test_renamed_copy_changes_the_kernel_name_only(tmp_path):
    cn = load_script("bench/cutlass_name.py")
    path = cn.renamed_copy("kernels/flash_fp16.py", "_flash_fp16_kernel", tmp_path)
    src, copy = (REPO / "kernels/flash_fp16.py").read_text(), path.read_text()
    assert "def _flash_fp16_kernel_cutlass(" in copy and "def _flash_fp16_kernel(" not in copy
    assert copy.replace("_flash_fp16_kernel_cutlass", "_flash_fp16_kernel") == src
    with pytest.raises(SystemExit, match="expected a jit function named _no_such_kernel"):
        cn.renamed_copy("kernels/flash_fp16.py", "_no_such_kernel", tmp_path)


@pytest.mark.interpreter
def test_tiny_run_times_both_names_with_identical_outputs(tmp_path, monkeypatch):
    cn = load_script("bench/cutlass_name.py")
    monkeypatch.setenv("OUT", str(tmp_path))
    assert cn.main(["--tiny"]) == 0
    rows = json.loads((tmp_path / "cutlass_name.json").read_text())["rows"]
    names = {r["name"] for r in rows}
    assert names == {f"{m}{s}" for m in ("fp16", "sage_fp8", "sage_qk_int8") for s in ("", "_cutlass")}
    err = {(r["causal"], r["name"]): r["rel_l2"] for r in rows}
    for causal, name in list(err):
        if not name.endswith("_cutlass"):
            assert err[(causal, f"{name}_cutlass")] == err[(causal, name)]
            assert 0 < err[(causal, name)] < 0.1
    assert "| 1 | 2 | 64 | 64 | True | sage_fp8 |" in (tmp_path / "cutlass_name.md").read_text()
