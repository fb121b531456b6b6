"""Every registered method against SDPA flash, SDPA cuDNN and (when installed) sageattention, in one run.

    python bench/compare_attention.py [--shapes default|quick] [--out DIR]

For each shape: do_bench medians (warm-up 25 ms, 100 ms of repeats) of every implementation on the same
fp16 inputs, TFLOPS-equivalent 4·B·H·N²·D/t (halved for causal), and ratios against SDPA flash, SDPA
cuDNN and our fp16 baseline. The sage methods are also timed without their K/V quantization (the
attention launch alone on pre-quantized K/V), to show what the quantizers cost. Prints a markdown table
with the GPU name, torch, triton and ptxas versions, and writes ``compare.md`` plus ``compare.json``,
a pytest-benchmark-compatible file that ``lowbit ingest compare.json --commit SHA`` records.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from triton.testing import do_bench

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.timing import benchmark_document, benchmark_record, environment  # noqa: E402

SHAPES = {
    "quick": [(1, 32, 16384, 128, False), (1, 32, 16384, 128, True), (4, 32, 4096, 128, False)],
    "default": [
        (1, 32, 16384, 128, False),
        (1, 32, 16384, 128, True),
        (4, 32, 4096, 128, False),
        (4, 32, 4096, 128, True),
        (16, 32, 1024, 128, False),
        (1, 32, 16384, 64, False),
        (1, 32, 16384, 64, True),
        (4, 32, 4096, 64, False),
        (16, 32, 1024, 64, False),
    ],
}


def tflops(B, H, N, D, causal, ms):
    return 4 * B * H * N * N * D * (0.5 if causal else 1.0) / (ms * 1e-3) / 1e12


def implementations():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from kernels import REGISTRY, attention

    def sdpa(backend):
        def fn(q, k, v, causal):
            with sdpa_kernel(backend):
                return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)

        return fn

    impls = {"sdpa_flash": sdpa(SDPBackend.FLASH_ATTENTION), "sdpa_cudnn": sdpa(SDPBackend.CUDNN_ATTENTION)}
    for name in sorted(REGISTRY):
        impls[name] = lambda q, k, v, causal, name=name: attention(q, k, v, causal=causal, method=name)
    try:
        from sageattention import sageattn

        impls["sageattn_1.0.6"] = lambda q, k, v, causal: sageattn(q, k, v, is_causal=causal, smooth_k=True)
    except Exception:  # not installed: the comparison simply lacks that column
        pass
    return impls


def kernel_only(method, q, k, v, causal):
    """The sage attention launch alone, on K/V quantized once beforehand."""
    from kernels import flash_sage_fp8 as sage
    from kernels._validate import HEAD_DIMS, check_attention_inputs

    pv_fp8 = method == "sage_fp8"
    shape = check_attention_inputs(q, k, v, causal=causal, sm_scale=None, head_dims=HEAD_DIMS, method=method)
    cfg = sage.config_for(shape.head_dim, shape.n_k, pv_fp8=pv_fp8)
    qkv = sage.quantize_kv(k, v, cfg, quant_v=pv_fp8)
    o = torch.empty_like(q)
    return lambda: sage.launch_attention(q, v, qkv, o, shape, causal=causal, cfg=cfg, pv_fp8=pv_fp8)


def bench(fn):
    fn()
    torch.cuda.synchronize()
    samples = do_bench(fn, warmup=25, rep=100, return_mode="all")
    samples = sorted(float(s) for s in samples)
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", choices=sorted(SHAPES), default="default")
    ap.add_argument("--out", default=os.environ.get("OUT", "compare_out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = environment()
    impls = implementations()
    benchmarks, table = [], []
    for B, H, N, D, causal in SHAPES[args.shapes]:
        g = torch.Generator(device="cuda").manual_seed(0)
        q, k, v = (torch.randn(B, H, N, D, device="cuda", generator=g).half() for _ in range(3))
        times = {}
        runs = dict(impls)
        for method in ("sage_fp8", "sage_qk_int8"):
            if method in impls:
                runs[method + "_kernel_only"] = kernel_only(method, q, k, v, causal)
        for name, fn in runs.items():
            if name.endswith("_kernel_only"):
                call = fn
            else:
                call = lambda fn=fn, q=q, k=k, v=v, c=causal: fn(q, k, v, c)  # noqa: E731
            try:
                samples = bench(call)
            except Exception as exc:  # e.g. a backend that refuses the shape: recorded as missing
                print(f"{name} B={B} H={H} N={N} D={D} causal={causal}: {exc.__class__.__name__}: {exc}")
                continue
            median = samples[len(samples) // 2]
            times[name] = median
            params = {"B": B, "H": H, "N": N, "D": D, "causal": causal}
            tag = f"b{B}h{H}n{N}d{D}{'-causal' if causal else ''}"
            benchmarks.append(
                benchmark_record(
                    name, "bench/compare_attention.py", params, samples,
                    {"tflops": tflops(B, H, N, D, causal, median)}, tag=tag,
                )
            )  # fmt: skip
        table.append(((B, H, N, D, causal), times))
        print(
            f"B={B} H={H} N={N} D={D} causal={causal}: "
            + ", ".join(f"{n}={t:.3f}ms" for n, t in times.items())
        )

    names = list(dict.fromkeys(n for _, t in table for n in t))
    lines = [
        f"GPU {env['gpu']} (sm {env['compute_capability']}), torch {env['torch']} (CUDA {env['cuda']}), "
        f"triton {env['triton']}, ptxas {env['ptxas']}; fp16 inputs, do_bench median.",
        "",
        "TFLOPS-equivalent (4·B·H·N²·D/t, halved for causal):",
        "",
        "| B | H | N | D | causal | " + " | ".join(names) + " |",
        "|---" * (5 + len(names)) + "|",
    ]
    for (B, H, N, D, causal), times in table:
        cells = [f"{tflops(B, H, N, D, causal, times[n]):.0f}" if n in times else "-" for n in names]
        lines.append(f"| {B} | {H} | {N} | {D} | {causal} | " + " | ".join(cells) + " |")
    lines += ["", "Speed-up of each method (time of the reference / time of the method):", ""]
    ours = [n for n in names if not n.startswith("sdpa")]
    lines.append("| B | H | N | D | causal | method | vs SDPA flash | vs SDPA cuDNN | vs our fp16 |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for (B, H, N, D, causal), times in table:
        for n in ours:
            if n not in times:
                continue
            ratios = [
                f"{times[r] / times[n]:.2f}x" if r in times else "-"
                for r in ("sdpa_flash", "sdpa_cudnn", "fp16")
            ]
            lines.append(f"| {B} | {H} | {N} | {D} | {causal} | {n} | " + " | ".join(ratios) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    (out / "compare.md").write_text(text)
    doc = benchmark_document(env, benchmarks, "bench/compare_attention.py")
    (out / "compare.json").write_text(json.dumps(doc, indent=1))
    print(f"wrote {out / 'compare.md'} and {out / 'compare.json'}, {len(benchmarks)} benchmarks")


if __name__ == "__main__":
    main()
