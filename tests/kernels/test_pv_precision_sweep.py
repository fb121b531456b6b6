"""bench/pv_precision_sweep.py: the accuracy of each P·V precision on INT8 Q·Kᵀ (CPU, float64)."""

from __future__ import annotations

import json

import pytest

from tests.scripts import load_script


def test_sweep_orders_the_precisions(tmp_path, capsys):
    sweep = load_script("bench/pv_precision_sweep.py")
    out = tmp_path / "rows.json"
    assert sweep.main(["--n", "384", "--seeds", "1", "--json", str(out)]) == 0
    err = {r["variant"]: r["worst_rel_l2"] for r in json.loads(out.read_text())}
    qk_alone = err["exact P, V as given (Q·Kᵀ alone)"]
    # The replay with exact P is the Q·Kᵀ error, and sage_qk_int8's fp16 P adds next to nothing to it.
    assert err["fp16 P, V as given (sage_qk_int8)"] == pytest.approx(qk_alone, rel=0.02)
    # Every rounding of P adds error; 255 steps less than 127; e4m3's 3 bits the most.
    assert qk_alone < err["uint8 P, V as given"] < err["int8 P, V as given"]
    assert err["int8 P, V as given"] < err["e4m3 P, e4m3 V per channel (sage_fp8)"]
    # Rounding V too adds error; scales per block of keys are finer than per channel over all tokens.
    for p in ("int8 P", "uint8 P"):
        per_block = err[f"{p}, int8 V per channel per 128 keys"]
        assert err[f"{p}, V as given"] < per_block < err[f"{p}, int8 V per channel"]
    table = capsys.readouterr().out
    assert "| e4m3 P, e4m3 V per channel (sage_fp8) | 3." in table and "✗" in table
    # Scaling K per key takes error out of Q·Kᵀ, which leaves room for 8-bit P and V.
    per_key = err["per-key K: uint8 P, int8 V per channel per 128 keys"]
    assert err["per-key K: exact P, V as given (Q·Kᵀ alone)"] < qk_alone
    assert per_key < err["uint8 P, int8 V per channel per 128 keys"]


def test_bad_arguments_are_refused(capsys):
    sweep = load_script("bench/pv_precision_sweep.py")
    with pytest.raises(SystemExit) as exit_:
        sweep.main(["--seeds", "0"])
    assert exit_.value.code == 2
    assert "--n and --seeds: expected positive ints" in capsys.readouterr().err
