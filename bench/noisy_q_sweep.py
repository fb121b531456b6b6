"""Where the noisy-query-head rule (kernels.quant.Q_NOISE_MAX) fires, and what it buys, per distribution.

    python bench/noisy_q_sweep.py [--seeds 40] [--max-noise 4] [--json FILE]

CPU only, float64: no kernel runs. For every value distribution the harness draws, a few seeds and three
shapes (2 queries x 31 keys, 8 x 64, 16 x 100; GQA 2, head dim 96, fp16), it takes each KV head's
estimate of the logit noise per-token INT8 Q causes (``max_i q_scale_i · sm_scale · log2(e) · |k|_max /
sqrt(12)``, the quantity ``kernels.quant.noisy_heads`` compares with Q_NOISE_MAX, or with
``--max-noise``), counts the heads the rule flags, and measures ``sage_qk_int8``'s emulation against the
FP32 oracle with the rule and with it switched off (heads with a wide K block still take Q as given:
that is the wide-block rule, not this one). Prints a markdown table (docs/perf.md "v15").
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

SHAPES = ((2, 31), (8, 64), (16, 100))


def estimates(q, k) -> list[float]:
    """Each KV head's noise estimate (log2 units), as kernels.quant.noisy_heads forms its product."""
    import torch

    from kernels import quant

    _, q_scale = quant.quantize_per_token_reference(q)
    c = q_scale.float() * (math.log2(math.e) / math.sqrt(q.size(-1)))
    k_norm = quant.longest_token_reference(k, torch.mean(k, dim=2, dtype=torch.float32))
    hkv = k.size(1)
    head_c = c.amax(dim=2).reshape(q.size(0), hkv, q.size(1) // hkv).amax(dim=2)
    return (head_c * k_norm / math.sqrt(12.0)).flatten().tolist()


def sweep(seeds: int, max_noise: float) -> list[dict]:
    import triton.language as tl

    from harness.search.cases import Case
    from harness.search.distributions import DISTRIBUTION_NAMES
    from harness.search.metrics import error_metrics
    from kernels import quant
    from kernels.emulation import emulate_sage_qk_int8
    from kernels.reference import attention_reference

    rows = []
    shipped = quant.Q_NOISE_BOUND
    rule = tl.constexpr(max_noise * math.sqrt(12.0))
    for dist in DISTRIBUTION_NAMES:
        est, worst_on, worst_off = [], 0.0, 0.0
        for seed in range(seeds):
            for nq, nk in SHAPES:
                case = Case(
                    batch=2, hq=4, hkv=2, nq=nq, nk=nk, head_dim=96, dtype="float16", causal=False,
                    sm_scale=None, distribution=dist, seed=seed * 7 + nq,
                )  # fmt: skip
                q, k, v = case.make_inputs("cpu")
                ref = attention_reference(q, k, v)
                est += estimates(q, k)
                try:
                    quant.Q_NOISE_BOUND = rule
                    on = emulate_sage_qk_int8(q, k, v)
                    quant.Q_NOISE_BOUND = tl.constexpr(float("inf"))
                    off = emulate_sage_qk_int8(q, k, v)
                finally:
                    quant.Q_NOISE_BOUND = shipped
                worst_on = max(worst_on, error_metrics(on, ref)["rel_l2"])
                worst_off = max(worst_off, error_metrics(off, ref)["rel_l2"])
        rows.append(
            {
                "distribution": dist,
                "heads": len(est),
                "median_estimate": sorted(est)[len(est) // 2],
                "max_estimate": max(est),
                "flagged": sum(e > max_noise for e in est),
                "worst_rel_l2_without_rule": worst_off,
                "worst_rel_l2_with_rule": worst_on,
            }
        )
    return rows


def to_markdown(rows: list[dict], max_noise: float) -> str:
    lines = [
        f"| distribution | KV heads | median estimate | max estimate | flagged (> {max_noise:g}) | "
        "worst rel-L2 without the rule | with it |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['distribution']} | {r['heads']} | {r['median_estimate']:.3g} | {r['max_estimate']:.3g} | "
            f"{r['flagged']} | {r['worst_rel_l2_without_rule']:.3g} | {r['worst_rel_l2_with_rule']:.3g} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40, help="seeds per distribution and shape (default 40)")
    parser.add_argument("--max-noise", type=float, default=None, help="the threshold (default: Q_NOISE_MAX)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds: expected an int >= 1, got {args.seeds}")
    from kernels import quant

    max_noise = quant.Q_NOISE_MAX if args.max_noise is None else args.max_noise
    if not (math.isfinite(max_noise) and max_noise > 0):
        parser.error(f"--max-noise: expected a finite positive float, got {args.max_noise}")
    rows = sweep(args.seeds, max_noise)
    print(to_markdown(rows, max_noise))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
