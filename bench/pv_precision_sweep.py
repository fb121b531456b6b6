"""What each precision of P·V costs in accuracy, on top of the sage methods' INT8 Q·Kᵀ (issue 12's bound).

    python bench/pv_precision_sweep.py [--n 2048 8192] [--seeds 2] [--json FILE]

CPU only, float64: no kernel runs. Issue 12 asks for ≥ 830 TFLOPS-equivalent within rel-L2 1.5e-2 of FP32
on Gaussian inputs. With 16-bit P·V the matmul ceilings bound the speed below that (docs/perf.md "v16"),
so the goal needs 8-bit P·V. This sweep measures the accuracy of every 8-bit P·V a Triton kernel on
Hopper can issue, on the Q·Kᵀ both sage methods share (per-token INT8 Q, smoothed K in INT8 per
block of 128 keys, :func:`kernels.emulation.sage_replay`'s online softmax) unless said:

* ``fp16 P, V as given``: ``sage_qk_int8`` (:func:`kernels.emulation.emulate_sage_qk_int8`);
* ``e4m3 P, e4m3 V per channel``: ``sage_fp8`` (:func:`kernels.emulation.emulate_sage_fp8`);
* ``int8 P``: P per block row at steps of its largest weight / 127 (the ``int8`` method's P), and
  ``uint8 P`` at steps of / 255 (P is never negative: as s8 codes less 128, plus 128 times V's column
  sums, an s8 × s8 MMA takes it);
* V as given, INT8 per channel over all tokens (``int8``'s V), or INT8 per channel per block of keys;
* and, with K scaled per key (``int8_qk_smooth``'s Q·Kᵀ: less error, a multiply more per score), the
  8-bit P·V mixes again.

Gaussian fp16 inputs, head dim 128, one head pair per seed and length; prints the worst rel-L2 against
the float64 oracle per variant and length, and whether it is within 1.5e-2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GOAL = 1.5e-2
BLOCK_N = 128
HEAD_DIM = 128


def _round_p(levels: int):
    """P per block row at steps of its largest weight / ``levels`` (round half up), as the ``int8`` kernel
    rounds it with 127 (:func:`kernels.emulate.round_p_per_block_row`)."""
    from kernels.emulate import round_p_per_block_row

    return lambda p: round_p_per_block_row(p, levels)


def _int8_v(v, per_block: bool):
    """V rounded to symmetric INT8 per channel: over all tokens, or per block of BLOCK_N keys."""
    import torch

    vd = v.double()
    if not per_block:
        scale = vd.abs().amax(dim=2, keepdim=True) / 127
        return torch.round(vd / torch.where(scale > 0, scale, 1.0)) * scale
    out = torch.empty_like(vd)
    for start in range(0, vd.size(2), BLOCK_N):
        t = vd[:, :, start : start + BLOCK_N]
        scale = t.abs().amax(dim=2, keepdim=True) / 127
        out[:, :, start : start + BLOCK_N] = torch.round(t / torch.where(scale > 0, scale, 1.0)) * scale
    return out


def _replay(q, k, v_val, p_round, per_token_k: bool = False):
    """INT8 Q·Kᵀ and the online softmax with ``p_round`` applied to P in both the sum and the dot. K's
    scales: per block of BLOCK_N keys as the sage methods have them, or with ``per_token_k`` one per
    key (``int8_qk_smooth``'s, a multiply more per score)."""
    import torch

    from kernels import quant
    from kernels.emulation import LOG2E, quantize_sage_fp8, sage_q, sage_replay

    scale = LOG2E / math.sqrt(q.size(-1))
    kv = quantize_sage_fp8(k, k, BLOCK_N)  # K's codes and scales (its V half is not used here)
    q_val, q_scale = sage_q(q, kv, scale)
    k_int, k_scale = kv.k_int, kv.k_scale
    if per_token_k:
        k_int, k_scale = quant.quantize_per_token_reference(k, torch.mean(k, dim=2, dtype=torch.float32))
    acc, l_sum = sage_replay(
        q_val, q_scale, k_int.double(), k_scale.double(), v_val.double(), scale=scale, causal=False,
        block_n=BLOCK_N, p_sum=p_round, p_dot=p_round,
    )  # fmt: skip
    return acc / torch.where(l_sum > 0, l_sum, torch.ones_like(l_sum))


def variants():
    """name -> f(q, k, v) in float64, every one on the sage methods' INT8 Q·Kᵀ."""
    from kernels.emulation import emulate_sage_fp8, emulate_sage_qk_int8

    def ident(p):
        return p

    out = {
        "fp16 P, V as given (sage_qk_int8)": lambda q, k, v: emulate_sage_qk_int8(q, k, v, block_n=BLOCK_N),
        "e4m3 P, e4m3 V per channel (sage_fp8)": lambda q, k, v: emulate_sage_fp8(q, k, v, block_n=BLOCK_N),
        "exact P, V as given (Q·Kᵀ alone)": lambda q, k, v: _replay(q, k, v.double(), ident),
    }
    for p_name, levels in (("int8 P", 127), ("uint8 P", 255)):
        out[f"{p_name}, V as given"] = lambda q, k, v, n=levels: _replay(q, k, v.double(), _round_p(n))
        out[f"{p_name}, int8 V per channel"] = lambda q, k, v, n=levels: _replay(
            q, k, _int8_v(v, False), _round_p(n)
        )
        out[f"{p_name}, int8 V per channel per {BLOCK_N} keys"] = lambda q, k, v, n=levels: _replay(
            q, k, _int8_v(v, True), _round_p(n)
        )
    # The one fully 8-bit mix left: K scaled per key (int8_qk_smooth's Q·Kᵀ, less error than per block).
    out["per-key K: exact P, V as given (Q·Kᵀ alone)"] = lambda q, k, v: _replay(
        q, k, v.double(), ident, True
    )
    out[f"per-key K: uint8 P, int8 V per channel per {BLOCK_N} keys"] = lambda q, k, v: _replay(
        q, k, _int8_v(v, True), _round_p(255), True
    )
    out[f"per-key K: int8 P, int8 V per channel per {BLOCK_N} keys"] = lambda q, k, v: _replay(
        q, k, _int8_v(v, True), _round_p(127), True
    )
    return out


def sweep(lengths, seeds: int) -> list[dict]:
    import torch

    from kernels.reference import attention_reference

    rows = []
    for name, fn in variants().items():
        for n in lengths:
            worst = 0.0
            for seed in range(seeds):
                g = torch.Generator().manual_seed(seed)
                q, k, v = (torch.randn(1, 2, n, HEAD_DIM, generator=g).half() for _ in range(3))
                ref = attention_reference(q, k, v)
                out = fn(q, k, v).double()
                worst = max(worst, float((out - ref).norm() / ref.norm()))
            rows.append(dict(variant=name, n=n, seeds=seeds, worst_rel_l2=worst, within_goal=worst <= GOAL))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[2048, 8192], help="keys (= queries)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.n) or args.seeds < 1:
        parser.error(f"--n and --seeds: expected positive ints, got {args.n} and {args.seeds}")
    rows = sweep(args.n, args.seeds)
    print(
        f"| P·V on INT8 Q·Kᵀ (Gaussian, head dim {HEAD_DIM}) | " + " | ".join(f"N {n}" for n in args.n) + " |"
    )
    print("|---|" + "---|" * len(args.n))
    for name in dict.fromkeys(r["variant"] for r in rows):
        cells = [r for r in rows if r["variant"] == name]
        print(
            f"| {name} | "
            + " | ".join(f"{r['worst_rel_l2']:.2e}" + ("" if r["within_goal"] else " ✗") for r in cells)
            + " |"
        )
    print(f"\n✗: above issue 12's {GOAL:g}.")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
