"""The sage methods' two kernels on Hopper: pointer loads vs TMA + warp specialization, in one run.

    python bench/bench_sage_tma.py                              # GPU: hd 128, N 1k-16k, short queries
    python bench/bench_sage_tma.py --tiles s3=0,128,4,3         # also the TMA kernel with other tiles
    TRITON_INTERPRET=1 python bench/bench_sage_tma.py --tiny    # the same code paths on a CPU

Times ``flash_attention_sage_qk_int8`` and ``flash_attention_sage_fp8`` with ``kernel="pointer"``,
``kernel="tma"`` and ``kernel="auto"`` (what callers get), each with its quantization, beside SDPA flash
and cuDNN and the fp16 baseline; fp16 inputs, do_bench medians, rel-L2 against FP32 on the first two
heads. ``--tiles NAME=CAUSAL,BLOCK_M,WARPS,STAGES[,BLOCK_N]`` adds a row per method for the TMA kernel
with those tiles (CAUSAL 0 or 1: which launches it replaces; BLOCK_N divides the K-scale block).
Writes bench_sage_tma.json and bench_sage_tma.md under $OUT (or ./bench_sage_tma_out).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.timing import environment, sdpa_backends, timed_row  # noqa: E402

# (B, Hq, Hkv, Nq, Nk, D, causal): the shapes, then short query blocks against long caches.
GPU_SHAPES = (
    (1, 32, 32, 16384, 16384, 128, False), (1, 32, 32, 16384, 16384, 128, True),
    (4, 32, 32, 4096, 4096, 128, False), (4, 32, 32, 4096, 4096, 128, True),
    (2, 32, 32, 8192, 8192, 128, True), (16, 32, 32, 1024, 1024, 128, False),
    (16, 32, 32, 1024, 1024, 128, True), (1, 32, 8, 128, 16384, 128, False),
    (8, 32, 8, 1, 4096, 128, False), (8, 32, 8, 16, 4096, 128, True), (1, 32, 32, 16384, 16384, 96, False),
)  # fmt: skip
TINY_SHAPES = ((1, 2, 2, 64, 64, 128, False), (1, 2, 1, 70, 90, 96, True))
KERNELS = ("pointer", "tma", "auto")


def parse_tiles(specs: list[str]) -> dict[str, tuple[bool, tuple[int, ...]]]:
    """``NAME=CAUSAL,BLOCK_M,WARPS,STAGES[,BLOCK_N]`` -> {name: (causal, (block_m, warps, stages[, block_n]))}
    (the tiles of :class:`kernels.flash_sage_tma.SageTmaTiles`)."""
    out = {}
    for spec in specs:
        name, _, values = spec.partition("=")
        parts = values.split(",")
        ok = len(parts) in (4, 5) and all(p.strip().isdigit() for p in parts) and parts[0] in ("0", "1")
        if not name or not ok:
            raise SystemExit(
                f"--tiles: expected NAME=CAUSAL(0|1),BLOCK_M,WARPS,STAGES[,BLOCK_N], got {spec!r}"
            )
        causal, *tiles = (int(p) for p in parts)
        out[name] = (bool(causal), tuple(tiles))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (CPU interpreter)")
    parser.add_argument(
        "--tiles", action="append", default=[], metavar="NAME=CAUSAL,BLOCK_M,WARPS,STAGES[,BLOCK_N]"
    )
    args = parser.parse_args(argv)
    extra_tiles = parse_tiles(args.tiles)

    import torch

    from kernels import flash_sage_tma
    from kernels.backend import interpreting
    from kernels.flash_fp16 import flash_attention_fp16
    from kernels.flash_sage_fp8 import flash_attention_sage_fp8, flash_attention_sage_qk_int8
    from kernels.reference import attention_reference

    interpret = interpreting()
    device = "cpu" if interpret else "cuda"
    out_dir = Path(os.environ.get("OUT", "bench_sage_tma_out"))
    out_dir.mkdir(parents=True, exist_ok=True)
    env = environment(interpret)
    header = (
        f"{env['gpu']}, torch {env['torch']}, triton {env['triton']}; fp16 inputs, do_bench median, "
        "quantization counted"
    )
    print(header, flush=True)

    def with_tiles(causal, tiles, fn):
        # The TMA kernel with other tiles for the launches of one causality (restored afterwards).
        def run():
            saved = flash_sage_tma.SAGE_TMA_TILES[causal]
            flash_sage_tma.SAGE_TMA_TILES[causal] = flash_sage_tma.SageTmaTiles(*tiles)
            try:
                return fn()
            finally:
                flash_sage_tma.SAGE_TMA_TILES[causal] = saved

        return run

    rows = []
    for B, Hq, Hkv, Nq, Nk, D, causal in TINY_SHAPES if args.tiny else GPU_SHAPES:
        gen = torch.Generator(device=device).manual_seed(Nq + Nk + D)
        q = torch.randn(B, Hq, Nq, D, device=device, generator=gen).half()
        k, v = (torch.randn(B, Hkv, Nk, D, device=device, generator=gen).half() for _ in range(2))
        group = Hq // Hkv
        # FP32 reference on the first two query heads and the KV heads they read (bottom-right causal).
        kv = 2 if group == 1 else 1
        ref = attention_reference(q[:, :2], k[:, :kv], v[:, :kv], causal=causal, dtype=torch.float32)
        # Bottom-right causal: query i sees keys up to i + Nk - Nq.
        pairs = sum(min(Nk, i + Nk - Nq + 1) for i in range(Nq)) if causal else Nq * Nk
        flops = 4 * B * Hq * pairs * D
        methods = {"sage_qk_int8": flash_attention_sage_qk_int8, "sage_fp8": flash_attention_sage_fp8}
        fns = {
            f"{method}_{kernel}": functools.partial(fn, q, k, v, causal=causal, kernel=kernel)
            for method, fn in methods.items()
            for kernel in KERNELS
        }
        for name, (tile_causal, tiles) in extra_tiles.items():
            if tile_causal == causal:
                for method, fn in methods.items():
                    if method == "sage_fp8" and len(tiles) == 4:
                        continue  # its key step is its K-scale block (kernels.flash_sage_tma)
                    tma = functools.partial(fn, q, k, v, causal=causal, kernel="tma")
                    fns[f"{method}_tma_{name}"] = with_tiles(causal, tiles, tma)
        fns["fp16"] = functools.partial(flash_attention_fp16, q, k, v, causal=causal)
        if not interpret:
            fns |= sdpa_backends(q, k, v, causal and Nq == Nk, gqa=group > 1)
            if causal and Nq != Nk:
                # SDPA's is_causal is top-left for Nq != Nk: not the same problem, so not timed.
                fns = {n: f for n, f in fns.items() if not n.startswith("sdpa")}
        for name, fn in fns.items():
            row, _ = timed_row(
                fn, ref, interpret=interpret, flops=flops, select=lambda o: o[:, :2],
                B=B, Hq=Hq, Hkv=Hkv, Nq=Nq, Nk=Nk, D=D, causal=causal, name=name,
            )  # fmt: skip
            rows.append(row)
            print(row, flush=True)
    (out_dir / "bench_sage_tma.json").write_text(json.dumps({"env": env, "rows": rows}, indent=1))
    md = to_markdown(rows, header, list(extra_tiles))
    (out_dir / "bench_sage_tma.md").write_text(md)
    print(md)
    return 0


def to_markdown(rows: list[dict], header: str, extra: list[str]) -> str:
    """TFLOPS-equivalent per shape; each method's TMA kernel as a ratio of its pointer kernel."""
    shapes: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        key = (r["B"], r["Hq"], r["Hkv"], r["Nq"], r["Nk"], r["D"], r["causal"])
        shapes.setdefault(key, {})[r["name"]] = r
    names, heads = ["sdpa_flash", "sdpa_cudnn", "fp16"], ["SDPA flash", "SDPA cuDNN", "fp16"]
    for method, short in (("sage_qk_int8", "qk_int8"), ("sage_fp8", "fp8")):
        names += [f"{method}_{k}" for k in (*KERNELS, *(f"tma_{e}" for e in extra))]
        heads += [f"{short} {k}" for k in (*KERNELS, *(f"tma {e}" for e in extra))]
    lines = [
        header,
        "",
        "| B | Hq:Hkv | Nq | Nk | D | causal | "
        + " | ".join(heads)
        + " | qk_int8 TMA / pointer | fp8 TMA / pointer | qk_int8 auto / cuDNN | rel-L2 qk_int8 / fp8 |",
        "|" + "---|" * (6 + len(heads) + 4),
    ]
    nan = {"tflops": float("nan"), "rel_l2": float("nan")}
    for (B, Hq, Hkv, Nq, Nk, D, causal), by in shapes.items():
        t = {name: by.get(name, nan)["tflops"] for name in names}
        cells = " | ".join(f"{t[n]:.0f}" for n in names)
        rel = [by.get(f"{m}_auto", nan)["rel_l2"] for m in ("sage_qk_int8", "sage_fp8")]
        lines.append(
            f"| {B} | {Hq}:{Hkv} | {Nq} | {Nk} | {D} | {causal} | {cells} | "
            f"{t['sage_qk_int8_tma'] / t['sage_qk_int8_pointer']:.2f}x | "
            f"{t['sage_fp8_tma'] / t['sage_fp8_pointer']:.2f}x | "
            f"{t['sage_qk_int8_auto'] / t['sdpa_cudnn']:.2f}x | {rel[0]:.1e} / {rel[1]:.1e} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
