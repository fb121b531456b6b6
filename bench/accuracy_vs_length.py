"""Error of every registered method against FP32 as the number of keys grows, per value distribution.

    python bench/accuracy_vs_length.py [--lengths 256,1024,4096,16384] [--out DIR]

Runs on the GPU (or, slowly and only for tiny lengths, in the CPU interpreter). Inputs are the
harness's own distributions (harness.search.cases.Case.make_inputs), so the families are the ones the
budgets in kernels/registry.py are declared for. For each method, distribution, head dim, dtype and Nk
it records rel-L2 and max-abs against the FP32 oracle, and the kernel-only error (oracle on the
method's dequantized inputs) where the spec has ``dequantize``. Writes ``accuracy_vs_length.csv``;
``bench/plot_accuracy.py`` turns it into the picture in docs/img/.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import torch

from harness.search.cases import Case
from harness.search.device import select_device
from harness.search.distributions import DISTRIBUTION_NAMES
from harness.search.metrics import error_metrics

FIELDS = (
    "method",
    "distribution",
    "family",
    "head_dim",
    "dtype",
    "nq",
    "nk",
    "seed",
    "rel_l2",
    "max_abs",
    "kernel_only_rel_l2",
    "budget_rel_l2",
)


def measure(methods, lengths, head_dims, seeds, nq_max, device):
    from kernels import REGISTRY, attention
    from kernels.reference import attention_reference

    rows = []
    for method in methods:
        spec = REGISTRY[method]
        for distribution in DISTRIBUTION_NAMES:
            for head_dim in head_dims:
                for nk in lengths:
                    for seed in seeds:
                        dtype = ("float16", "bfloat16")[seed % 2]
                        case = Case(
                            batch=1,
                            hq=2,
                            hkv=1,
                            nq=min(nk, nq_max),
                            nk=nk,
                            head_dim=head_dim,
                            dtype=dtype,
                            causal=False,
                            sm_scale=None,
                            distribution=distribution,
                            seed=seed,
                        )
                        q, k, v = case.make_inputs(device)
                        out = attention(q, k, v, method=method)
                        ref = attention_reference(q, k, v, dtype=torch.float32)
                        m = error_metrics(out, ref.double())
                        kernel_only = float("nan")
                        if spec.dequantize is not None:
                            dq, dk, dv = spec.dequantize(q, k, v)
                            ref_q = attention_reference(dq, dk, dv, dtype=torch.float32)
                            kernel_only = error_metrics(out, ref_q.double())["rel_l2"]
                        budget = spec.budget_for(case.family, q.dtype, nk).max_rel_l2
                        rows.append(
                            {
                                "method": method,
                                "distribution": distribution,
                                "family": case.family,
                                "head_dim": head_dim,
                                "dtype": dtype,
                                "nq": case.nq,
                                "nk": nk,
                                "seed": seed,
                                "rel_l2": m["rel_l2"],
                                "max_abs": m["max_abs"],
                                "kernel_only_rel_l2": kernel_only,
                                "budget_rel_l2": budget,
                            }
                        )
        print(f"{method}: {sum(r['method'] == method for r in rows)} cases", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="256,1024,4096,16384")
    ap.add_argument("--head-dims", default="64,128")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--nq", type=int, default=256, help="query rows per case (at most)")
    ap.add_argument("--methods", default=None, help="comma-separated (default: every registered method)")
    ap.add_argument("--out", default=os.environ.get("OUT", "accuracy_out"))
    args = ap.parse_args()
    device = select_device(None)
    from kernels import REGISTRY

    methods = args.methods.split(",") if args.methods else sorted(REGISTRY)
    t0 = time.time()
    rows = measure(
        methods,
        [int(x) for x in args.lengths.split(",")],
        [int(x) for x in args.head_dims.split(",")],
        [int(x) for x in args.seeds.split(",")],
        args.nq,
        device,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "accuracy_vs_length.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    gpu = torch.cuda.get_device_name() if device == "cuda" else "CPU interpreter"
    print(f"{len(rows)} cases on {gpu} in {time.time() - t0:.0f}s; wrote {path}")


if __name__ == "__main__":
    main()
