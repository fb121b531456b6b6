"""bench/bench_llama_prefill.py on the CPU: the stack runs, each row is measured, and bad input is refused."""

from __future__ import annotations

import json

import pytest
import torch

from tests.scripts import load_script


def _bench():
    return load_script("bench/bench_llama_prefill.py")


def test_tiny_stack_rows_and_accuracy(tmp_path):
    bench = _bench()
    out = tmp_path / "llama.json"
    assert (
        bench.main(
            ["--device", "cpu", "--tokens", "24", "--layers", "2", "--methods", "fp16", "--out", str(out)]
        )
        == 0
    )
    rows = json.loads(out.read_text())["rows"]
    assert [r["attention"] for r in rows] == ["sdpa_math", "fp16"]
    sdpa, ours = rows
    assert sdpa["rel_l2_vs_first"] == 0.0 and sdpa["speedup_vs_sdpa_math"] == 1.0
    # fp16 flash attention against SDPA's math path through two layers: only rounding apart.
    assert 0.0 < ours["rel_l2_vs_first"] < 1e-2 and ours["finite"]
    assert ours["tokens_per_s"] > 0 and ours["ms"] > 0 and 0.0 <= ours["attention_share"] < 1.0


def test_the_stack_is_causal():
    bench = _bench()
    dims, device = bench.TINY, "cpu"
    weights = bench.make_weights(dims, 1, device, torch.float32)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 12, dims.hidden, generator=g)
    y = x.clone()
    y[:, 8:] = torch.randn(1, 4, dims.hidden, generator=g)  # change only the last tokens
    attend = bench.attention_fn("sdpa_math")
    a = bench.prefill(x, weights, dims, bench.rope_tables(dims, 12, device), attend)
    b = bench.prefill(y, weights, dims, bench.rope_tables(dims, 12, device), attend)
    assert torch.equal(a[:, :8], b[:, :8]) and not torch.equal(a[:, 8:], b[:, 8:])


def test_bad_arguments_are_refused(capsys):
    bench = _bench()
    for argv in (["--methods", "int9"], ["--tokens", "8k"], ["--layers", "0"]):
        with pytest.raises(SystemExit) as exc:
            bench.main(["--device", "cpu", *argv])
        assert exc.value.code == 2
    assert "unknown int9" in capsys.readouterr().err
