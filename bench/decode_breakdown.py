"""Where a decode step's time goes: the whole step, the split kernel alone, the split merge alone.

    python bench/decode_breakdown.py                                  # GPU: issue shapes, 32k keys
    python bench/decode_breakdown.py --shape 1 32 4 128 --nk 16384 32768 --bits 4 8
    TRITON_INTERPRET=1 python bench/decode_breakdown.py --tiny        # the same code paths on a CPU

For each shape (B, Hq, Hkv, D; Nq = 1), length and width, times ``decode_attention`` with library
defaults as CUDA-graph replays (medians in µs, GPU time without launch overhead): the whole step; the
split kernel alone (the merge's launch replaced by nothing); the merge alone, replayed on the partial
sums the split kernel left; and SDPA cuDNN on the fp16 cache. "whole - split" is what the merge adds
to a step, against its own time alone. The merge replay must reproduce the step's output bit for bit,
or the script stops. Writes decode_breakdown.json and decode_breakdown.md under $OUT (or
./decode_breakdown_out).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.timing import environment, graph_samples_ms, sdpa_backends  # noqa: E402

GPU_SHAPES = ((1, 32, 8, 128), (1, 32, 4, 128), (1, 64, 8, 128), (1, 32, 1, 128))
TINY_SHAPES = ((1, 4, 2, 64), (1, 8, 1, 64))


class _MergeRecorder:
    """Stands in for the merge kernel: records its launch (grid, arguments) and runs nothing."""

    def __init__(self):
        self.launches = []

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.launches.append((grid, args, kwargs))

        return launch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shape", type=int, nargs=4, action="append", metavar=("B", "HQ", "HKV", "D"),
        help="batch, query heads, KV heads, head dim; repeatable (default: four layouts at D = 128)",
    )  # fmt: skip
    parser.add_argument("--nk", type=int, nargs="+", help="cache lengths (default 32768; --tiny 96)")
    parser.add_argument("--bits", type=int, nargs="+", choices=(4, 8), default=[4, 8])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (CPU interpreter)")
    args = parser.parse_args(argv)
    if args.nk and min(args.nk) < 1:
        parser.error(f"--nk: expected cache lengths of at least 1, got {args.nk}")
    if args.shape and min(min(s) for s in args.shape) < 1:
        parser.error(f"--shape: expected positive B HQ HKV D, got {args.shape}")

    import torch

    import kernels.kv_cache as kv
    from kernels.backend import interpreting

    interpret = interpreting()
    if not interpret and not torch.cuda.is_available():
        raise SystemExit("expected a CUDA GPU (or TRITON_INTERPRET=1 with --tiny)")
    device = "cpu" if interpret else "cuda"
    shapes = [tuple(s) for s in args.shape] if args.shape else list(TINY_SHAPES if args.tiny else GPU_SHAPES)
    lengths = args.nk or ([96] if args.tiny else [32768])
    out_dir = Path(os.environ.get("OUT", "decode_breakdown_out"))
    out_dir.mkdir(parents=True, exist_ok=True)

    def median_us(fn) -> float:
        return statistics.median(graph_samples_ms(fn, interpret)) * 1e3

    rows = []
    merge = kv._combine_splits_kernel
    for batch, hq, hkv, d in shapes:
        for n in lengths:
            g = torch.Generator(device=device).manual_seed(n + 7 * hkv + d)
            q = torch.randn(batch, hq, 1, d, device=device, generator=g).half()
            k = torch.randn(batch, hkv, n, d, device=device, generator=g).half()
            v = torch.randn(batch, hkv, n, d, device=device, generator=g).half()
            for bits in args.bits:
                cache = kv.quantize_kv(k, v, bits=bits)
                whole = median_us(lambda q=q, cache=cache: kv.decode_attention(q, cache))
                recorder = _MergeRecorder()
                kv._combine_splits_kernel = recorder
                try:
                    kv.decode_attention(q, cache)
                    split = median_us(lambda q=q, cache=cache: kv.decode_attention(q, cache))
                finally:
                    kv._combine_splits_kernel = merge
                if not recorder.launches:
                    raise SystemExit(f"no merge was launched for {hq}/{hkv} heads, {n} keys: nothing to time")
                grid, margs, mkw = recorder.launches[0]
                # Alone, the merge waits on no primary grid: it runs without the dependent launch.
                mkw = {key: val for key, val in mkw.items() if key not in ("PDL", "launch_pdl")}
                out = margs[3]
                merge[grid](*margs, **mkw)
                if not torch.equal(out, kv.decode_attention(q, cache)):
                    raise SystemExit(f"the merge replay did not reproduce the step ({hq}/{hkv}, {n} keys)")
                alone = median_us(lambda grid=grid, margs=margs, mkw=mkw: merge[grid](*margs, **mkw))
                row = {
                    "B": batch, "Hq": hq, "Hkv": hkv, "D": d, "Nk": n, "bits": bits,
                    "splits": margs[4], "whole_us": whole, "split_us": split, "merge_alone_us": alone,
                    "merge_adds_us": whole - split,
                }  # fmt: skip
                if not interpret:
                    row["sdpa_cudnn_us"] = median_us(sdpa_backends(q, k, v, False, gqa=True)["sdpa_cudnn"])
                    row["speedup_vs_cudnn"] = row["sdpa_cudnn_us"] / whole
                rows.append(row)
                print(
                    f"B={batch} Hq={hq} Hkv={hkv} D={d} Nk={n} int{bits}: whole {whole:.2f} us, split kernel "
                    f"{split:.2f}, merge alone {alone:.2f} ({margs[4]} splits)",
                    flush=True,
                )
    env = environment(interpret)
    header = f"{env['gpu']}, torch {env['torch']}, triton {env['triton']}; Nq = 1, medians in us"
    lines = [
        header,
        "",
        "| B | Hq | Hkv | D | Nk | bits | splits | whole | split kernel | merge alone | whole - split "
        "| SDPA cuDNN | x cuDNN |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cudnn_us = f"{r['sdpa_cudnn_us']:.2f}" if "sdpa_cudnn_us" in r else "-"
        ratio = f"{r['speedup_vs_cudnn']:.2f}" if "speedup_vs_cudnn" in r else "-"
        lines.append(
            f"| {r['B']} | {r['Hq']} | {r['Hkv']} | {r['D']} | {r['Nk']} | {r['bits']} | {r['splits']} "
            f"| {r['whole_us']:.2f} | {r['split_us']:.2f} | {r['merge_alone_us']:.2f} "
            f"| {r['merge_adds_us']:.2f} | {cudnn_us} | {ratio} |"
        )
    (out_dir / "decode_breakdown.md").write_text("\n".join(lines) + "\n")
    (out_dir / "decode_breakdown.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
