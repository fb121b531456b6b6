"""A/B of a kernel name: the same Triton kernels with and without "cutlass" in their jit function's name.

    python bench/cutlass_name.py                               # GPU: hd 128/64, N 4k-16k
    TRITON_INTERPRET=1 python bench/cutlass_name.py --tiny     # the same code paths on a CPU

Triton issues report that ptxas compiles kernels whose name contains "cutlass" differently (faster FP8
on Hopper, slower on sm_100). This script copies ``kernels/flash_fp16.py`` and
``kernels/flash_sage_fp8.py`` with their kernels renamed to ``..._cutlass`` (nothing else changes),
loads each copy as its own module, and times fp16, sage_fp8 and sage_qk_int8 from both beside SDPA
flash and cuDNN in one run. The outputs must be bit-identical: a name never changes the numerics.
Writes cutlass_name.json and cutlass_name.md under $OUT (or ./cutlass_name_out).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ab_decode import load_module  # noqa: E402
from bench.timing import sdpa_backends, timed_row  # noqa: E402

# (module file, jit kernel to rename, launchers timed from it)
MODULES = (
    ("kernels/flash_fp16.py", "_flash_fp16_kernel", ("flash_attention_fp16",)),
    (
        "kernels/flash_sage_fp8.py",
        "_sage_fp8_kernel",
        ("flash_attention_sage_fp8", "flash_attention_sage_qk_int8"),
    ),
)
GPU_SHAPES = (
    (1, 32, 16384, 128, False),
    (1, 32, 16384, 128, True),
    (4, 32, 4096, 128, False),
    (1, 32, 16384, 64, False),
)
TINY_SHAPES = ((1, 2, 64, 64, False), (1, 2, 64, 64, True))


def renamed_copy(relative: str, kernel: str, dest: Path) -> Path:
    """``relative`` with every whole-word use of ``kernel`` renamed to ``kernel + '_cutlass'``."""
    src = (ROOT / relative).read_text()
    if not re.search(rf"\bdef {kernel}\(", src):
        raise SystemExit(f"{relative}: expected a jit function named {kernel}")
    path = dest / f"{Path(relative).stem}_cutlass.py"
    path.write_text(re.sub(rf"\b{kernel}\b", f"{kernel}_cutlass", src))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (CPU interpreter)")
    args = parser.parse_args(argv)

    import importlib

    import torch
    import triton

    from kernels.backend import interpreting

    interpret = interpreting()
    device = "cpu" if interpret else "cuda"
    out_dir = Path(os.environ.get("OUT", "cutlass_name_out"))
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = {}
    with tempfile.TemporaryDirectory() as tmp:
        for relative, kernel, launchers in MODULES:
            plain = importlib.import_module(relative[:-3].replace("/", "."))
            named = load_module(renamed_copy(relative, kernel, Path(tmp)), "cutlass_", launchers, "launchers")
            for launcher in launchers:
                short = launcher.removeprefix("flash_attention_")
                entries[short] = getattr(plain, launcher)
                entries[f"{short}_cutlass"] = getattr(named, launcher)

        gpu = "CPU (Triton interpreter)" if interpret else torch.cuda.get_device_name()
        header = (
            f"{gpu}, torch {torch.__version__}, triton {triton.__version__}; fp16 inputs, do_bench median"
        )
        print(header, flush=True)
        rows = []
        for B, H, N, D, causal in TINY_SHAPES if args.tiny else GPU_SHAPES:
            gen = torch.Generator(device=device).manual_seed(N + D)
            q, k, v = (torch.randn(B, H, N, D, device=device, generator=gen).half() for _ in range(3))
            ref = torch.nn.functional.scaled_dot_product_attention(
                q.float(), k.float(), v.float(), is_causal=causal
            )
            flops = 4 * B * H * N * N * D / (2 if causal else 1)
            fns = {name: functools.partial(fn, q, k, v, causal=causal) for name, fn in entries.items()}
            if not interpret:
                fns |= sdpa_backends(q, k, v, causal)
            outputs = {}
            for name, fn in fns.items():
                row, outputs[name] = timed_row(
                    fn, ref, interpret=interpret, flops=flops, B=B, H=H, N=N, D=D, causal=causal, name=name
                )
                rows.append(row)
            for name in entries:
                if name.endswith("_cutlass") and not torch.equal(
                    outputs[name], outputs[name[: -len("_cutlass")]]
                ):
                    raise SystemExit(f"{name}: output differs from the same kernel without the name")
    (out_dir / "cutlass_name.json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))
    md = to_markdown(rows, header)
    (out_dir / "cutlass_name.md").write_text(md)
    print(md)
    return 0


def to_markdown(rows: list[dict], header: str) -> str:
    """TFLOPS-equivalent of each kernel with and without the name, and the ratio."""
    by = {(r["B"], r["H"], r["N"], r["D"], r["causal"], r["name"]): r for r in rows}
    lines = [
        header,
        "",
        '| B | H | N | D | causal | kernel | TFLOPS | with "cutlass" | ratio | SDPA flash | SDPA cuDNN |',
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (B, H, N, D, causal, name), r in by.items():
        named = by.get((B, H, N, D, causal, f"{name}_cutlass"))
        if named is None:
            continue
        flash = by.get((B, H, N, D, causal, "sdpa_flash"), {}).get("tflops", float("nan"))
        cudnn = by.get((B, H, N, D, causal, "sdpa_cudnn"), {}).get("tflops", float("nan"))
        lines.append(
            f"| {B} | {H} | {N} | {D} | {causal} | {name} | {r['tflops']:.0f} | {named['tflops']:.0f} | "
            f"{named['tflops'] / r['tflops']:.3f} | {flash:.0f} | {cudnn:.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
