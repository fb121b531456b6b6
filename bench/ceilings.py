"""Matmul ceilings of the GPU at each operand width, through torch's libraries and through Triton.

    python bench/ceilings.py [--size 8192] [--out DIR]

Issue 12's bound on low-bit attention is a mix of two matmul rates: Q·Kᵀ at the 8-bit rate and P·V at
the 16-bit one (or 8-bit). What torch's libraries reach (cuBLAS through ``torch.mm``, ``torch._int_mm``,
``torch._scaled_mm``) is one measure of those rates; a Triton kernel with TMA descriptors and the same
wgmma instructions the attention kernels issue is the other, and the one that bounds what a Triton kernel
can do. Each is timed on an ``--size``³ product of N(0, 1) operands (rounded to the operand type;
clamped to ±127 for int8), median of ``triton.testing.do_bench``, and checked against an fp32 product
(int8: exact against an int64 product). Prints a table and writes ``ceilings.json`` under ``--out``
(default ``$OUT`` or ./ceilings_out). GPU only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages) tried for each operand width; the best is reported.
TILES = {
    16: [(128, 256, 64, 8, 3), (128, 128, 64, 4, 4), (128, 256, 64, 8, 4)],
    8: [(128, 128, 128, 4, 4), (128, 128, 128, 8, 4), (128, 256, 64, 8, 4)],
}


@triton.jit
def _matmul_kernel(
    A, B, C, M, N, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ACC_INT: tl.constexpr, GROUP_M: tl.constexpr,
):  # fmt: skip
    # C = A · Bᵀ with A (M, K) and B (N, K) both K-major, the layout Hopper's 8-bit MMAs need for both
    # operands. Programs walk the output in groups of GROUP_M row blocks so neighbours share B tiles in L2.
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    group = pid // (GROUP_M * num_n)
    first_m = group * GROUP_M
    rows = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % (GROUP_M * num_n)) % rows
    pid_n = (pid % (GROUP_M * num_n)) // rows
    da = tl.make_tensor_descriptor(A, shape=[M, K], strides=[K, 1], block_shape=[BLOCK_M, BLOCK_K])
    db = tl.make_tensor_descriptor(B, shape=[N, K], strides=[K, 1], block_shape=[BLOCK_N, BLOCK_K])
    dc = tl.make_tensor_descriptor(C, shape=[M, N], strides=[N, 1], block_shape=[BLOCK_M, BLOCK_N])
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.int32 if ACC_INT else tl.float32)
    for k in range(0, K, BLOCK_K):
        a = da.load([pid_m * BLOCK_M, k])
        b = db.load([pid_n * BLOCK_N, k])
        acc = tl.dot(a, b.T, acc, out_dtype=tl.int32 if ACC_INT else tl.float32)
    dc.store([pid_m * BLOCK_M, pid_n * BLOCK_N], acc.to(C.dtype.element_ty))


def triton_matmul(a, b, c, tile) -> None:
    """``c = a · bᵀ`` on the Triton kernel with ``tile`` = (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages)."""
    import torch

    from kernels.flash_fp16_tma import _ensure_allocator

    _ensure_allocator()
    bm, bn, bk, warps, stages = tile
    M, K = a.shape
    N = b.shape[0]
    grid = (triton.cdiv(M, bm) * triton.cdiv(N, bn),)
    _matmul_kernel[grid](
        a, b, c, M, N, K, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, ACC_INT=a.dtype == torch.int8, GROUP_M=8,
        num_warps=warps, num_stages=stages,
    )  # fmt: skip


def operands(n: int, kind: str, seed: int):
    """(a, b, reference) for ``kind``: N(0, 1) rounded to the operand type (int8: 16·N(0, 1) rounded and
    clamped to ±127), B stored (N, K); the reference is an fp32 product (int8: exact, from int64)."""
    import torch

    g = torch.Generator(device="cuda").manual_seed(seed)
    a = torch.randn(n, n, device="cuda", generator=g)
    b = torch.randn(n, n, device="cuda", generator=g)
    if kind == "int8":
        a = (a * 16).round().clamp(-127, 127).to(torch.int8)
        b = (b * 16).round().clamp(-127, 127).to(torch.int8)
        return a, b, None
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp8": torch.float8_e4m3fn}[kind]
    a, b = a.to(dtype), b.to(dtype)
    return a, b, a.float() @ b.float().T


def check(out, a, b, ref) -> float:
    """rel-L2 of ``out`` against ``ref``; int8: the largest difference from the exact product on a
    256-row slice (0.0 when exact)."""
    if ref is None:
        # float64 is exact here: |sums| <= 127^2 * K < 2^53.
        exact = a[:256].double() @ b.double().T
        return float((out[:256].double() - exact).abs().max())
    out = out.float()
    return float((out - ref).norm() / ref.norm())


def main(argv=None) -> int:
    import torch
    from triton.testing import do_bench

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="M = N = K (default 8192)")
    parser.add_argument("--out", default=os.environ.get("OUT", "ceilings_out"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("a CUDA GPU is needed")
    n = args.size
    flops = 2.0 * n**3
    rows = []

    def record(kind, lib, tile, fn, a, b, ref):
        out = fn()
        err = check(out, a, b, ref)
        ms = do_bench(fn, warmup=25, rep=200, return_mode="median")
        rows.append(dict(operands=kind, library=lib, tile=tile, ms=ms, tflops=flops / ms / 1e9, error=err))
        print(f"{kind:5} {lib:18} {tile!s:26} {ms:8.3f} ms {flops / ms / 1e9:7.0f} T(FL)OP/s  err {err:.2e}")

    for kind in ("fp16", "bf16", "int8", "fp8"):
        a, b, ref = operands(n, kind, seed=1)
        if kind in ("fp16", "bf16"):
            record(kind, "torch.mm", None, lambda a=a, b=b: a @ b.T, a, b, ref)
        elif kind == "int8":
            record(kind, "torch._int_mm", None, lambda a=a, b=b: torch._int_mm(a, b.T), a, b, ref)
        else:
            one = torch.ones((), device="cuda")
            record(
                kind,
                "torch._scaled_mm",
                None,
                lambda a=a, b=b, one=one: torch._scaled_mm(a, b.T, one, one, out_dtype=torch.bfloat16),
                a,
                b,
                ref,
            )
        out_dtype = torch.int32 if kind == "int8" else torch.float32 if kind == "fp8" else a.dtype
        c = torch.empty((n, n), dtype=out_dtype, device="cuda")
        for tile in TILES[8 if kind in ("int8", "fp8") else 16]:
            try:
                record(
                    kind,
                    "triton",
                    list(tile),
                    lambda a=a, b=b, c=c, t=tile: (triton_matmul(a, b, c, t), c)[1],
                    a,
                    b,
                    ref,
                )
            except triton.runtime.errors.OutOfResources as err:
                print(f"{kind:5} {'triton':18} {list(tile)!s:26} does not fit: {err}")
        del a, b, ref, c
        torch.cuda.empty_cache()
    env = dict(
        gpu=torch.cuda.get_device_name(),
        torch=torch.__version__,
        triton=triton.__version__,
        size=n,
    )
    best = {}
    for r in rows:
        key = (r["operands"], r["library"] == "triton")
        if key not in best or r["tflops"] > best[key]["tflops"]:
            best[key] = r
    print(f"\n{env['gpu']}, torch {env['torch']}, Triton {env['triton']}, {n}^3")
    print("| operands | torch library | Triton (best tile) |\n|---|---|---|")
    for kind in ("fp16", "bf16", "int8", "fp8"):
        lib, tri = best.get((kind, False)), best.get((kind, True))
        print(f"| {kind} | {lib['tflops']:.0f} | {tri['tflops']:.0f} {tri['tile']} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ceilings.json").write_text(json.dumps(dict(env=env, rows=rows), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
