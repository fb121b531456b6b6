"""The fp16 baseline's two kernels on Hopper: pointer loads vs TMA + warp specialization, in one run.

    python bench/bench_fp16_tma.py                              # GPU: hd 64/128, N 1k-16k
    TRITON_INTERPRET=1 python bench/bench_fp16_tma.py --tiny    # the same code paths on a CPU

Times ``flash_attention_fp16`` with ``kernel="pointer"``, ``kernel="tma"`` and
``kernel="auto"`` (what callers get) beside SDPA flash and cuDNN, fp16 inputs, do_bench medians, and
reports each output's rel-L2 against FP32 on the first two heads. Writes bench_fp16_tma.json and
bench_fp16_tma.md under $OUT (or ./bench_fp16_tma_out).
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

from bench.timing import sdpa_backends, timed_row  # noqa: E402

GPU_SHAPES = (
    (1, 32, 16384, 128, False), (1, 32, 16384, 128, True), (4, 32, 4096, 128, False),
    (4, 32, 4096, 128, True), (16, 32, 1024, 128, False), (1, 32, 16384, 64, False),
    (4, 32, 4096, 64, False), (16, 32, 1024, 64, False), (8, 32, 2048, 32, False), (1, 32, 16384, 64, True),
    (16, 32, 1024, 128, True),
)  # fmt: skip
TINY_SHAPES = ((1, 2, 64, 64, False), (1, 2, 70, 128, False), (1, 2, 64, 64, True))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (CPU interpreter)")
    args = parser.parse_args(argv)

    import torch
    import triton

    from kernels.backend import interpreting
    from kernels.flash_fp16 import flash_attention_fp16

    interpret = interpreting()
    device = "cpu" if interpret else "cuda"
    out_dir = Path(os.environ.get("OUT", "bench_fp16_tma_out"))
    out_dir.mkdir(parents=True, exist_ok=True)
    gpu = "CPU (Triton interpreter)" if interpret else torch.cuda.get_device_name()
    header = f"{gpu}, torch {torch.__version__}, triton {triton.__version__}; fp16 inputs, do_bench median"
    print(header, flush=True)
    rows = []
    for B, H, N, D, causal in TINY_SHAPES if args.tiny else GPU_SHAPES:
        gen = torch.Generator(device=device).manual_seed(N + D)
        q, k, v = (torch.randn(B, H, N, D, device=device, generator=gen).half() for _ in range(3))
        ref = torch.nn.functional.scaled_dot_product_attention(
            q[:, :2].float(), k[:, :2].float(), v[:, :2].float(), is_causal=causal
        )
        flops = 4 * B * H * N * N * D / (2 if causal else 1)
        fns = {
            f"fp16_{kernel}": functools.partial(flash_attention_fp16, q, k, v, causal=causal, kernel=kernel)
            for kernel in ("pointer", "tma", "auto")
        }
        if not interpret:
            fns |= sdpa_backends(q, k, v, causal)
        for name, fn in fns.items():
            row, _ = timed_row(
                fn, ref, interpret=interpret, flops=flops, select=lambda o: o[:, :2],
                B=B, H=H, N=N, D=D, causal=causal, name=name,
            )  # fmt: skip
            rows.append(row)
            print(rows[-1], flush=True)
    (out_dir / "bench_fp16_tma.json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))
    md = to_markdown(rows, header)
    (out_dir / "bench_fp16_tma.md").write_text(md)
    print(md)
    return 0


def to_markdown(rows: list[dict], header: str) -> str:
    """TFLOPS-equivalent per shape and kernel; TMA and auto as ratios of the pointer kernel and cuDNN."""
    shapes: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        shapes.setdefault((r["B"], r["H"], r["N"], r["D"], r["causal"]), {})[r["name"]] = r
    lines = [
        header,
        "",
        "| B | H | N | D | causal | SDPA flash | SDPA cuDNN | pointer | TMA | auto | auto / pointer "
        "| auto / cuDNN | rel-L2 auto |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    nan = {"tflops": float("nan"), "rel_l2": float("nan")}
    for (B, H, N, D, causal), by in shapes.items():
        t = {
            name: by.get(name, nan)["tflops"]
            for name in ("sdpa_flash", "sdpa_cudnn", "fp16_pointer", "fp16_tma", "fp16_auto")
        }
        lines.append(
            f"| {B} | {H} | {N} | {D} | {causal} | {t['sdpa_flash']:.0f} | {t['sdpa_cudnn']:.0f} | "
            f"{t['fp16_pointer']:.0f} | {t['fp16_tma']:.0f} | {t['fp16_auto']:.0f} | "
            f"{t['fp16_auto'] / t['fp16_pointer']:.2f}x | {t['fp16_auto'] / t['sdpa_cudnn']:.2f}x | "
            f"{by.get('fp16_auto', nan)['rel_l2']:.1e} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
