"""Compile the TMA kernels for sm_90a on a machine without a GPU and check what Triton made of them.

    python bench/tma_compile_check.py [--json FILE]

For each shipped tile of ``kernels/flash_fp16_tma.py`` (causal or not, per head dim) and of the sage
methods' TMA kernel (``kernels/flash_sage_tma.py``: ``sage_qk_int8`` and ``sage_fp8``, head dim 128,
fp16 and bf16, and its second launch for heads with a wide K block, fp16) this compiles the kernel with
Triton's bundled ptxas and reports: whether the loop was really warp specialized (``setmaxnreg`` in the
PTX: Triton 3.6 drops the specialization silently when the kernel grows a branch in the loop or a second
loop), the wgmma and TMA instruction counts, registers, spill stack and shared memory. Exits 1 when a
non-causal first launch lost its warp specialization, a causal one or a wide pass gained it (it
miscompiles the causal mask on the GPU, docs/perf.md v7), any variant spills, or shared memory exceeds
Hopper's 227 KB per block.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HOPPER_SHARED_BYTES = 232448
INTS = (
    "stride_qb", "stride_qh", "stride_qn", "stride_kb", "stride_kh", "stride_kn", "stride_vb",
    "stride_vh", "stride_vn", "Hq", "GROUP", "Nq", "Nk", "D", "NUM_M_BLOCKS", "NUM_ITEMS",
)  # fmt: skip
SAGE_INTS = (
    "stride_qb", "stride_qh", "stride_qn", "stride_vb", "stride_vh", "stride_vn", "Hq", "GROUP", "Nq",
    "NQ_PAD", "Nk", "NK_PAD", "D", "NUM_M_BLOCKS", "NUM_ITEMS",
)  # fmt: skip
# Token strides and per-head offsets are multiples of 16 bytes on every launch (tma_eligible).
ALIGNED = (
    "stride_qb",
    "stride_qh",
    "stride_qn",
    "stride_kb",
    "stride_kh",
    "stride_kn",
    "stride_vb",
    "stride_vh",
    "stride_vn",
)


def compile_variant(causal: bool, block_d: int, ragged: bool) -> dict:
    """The fp16 TMA kernel's shipped tile for (causal, head dim), with or without the ragged-end mask."""
    from kernels import flash_fp16_tma as tma

    fn = tma._flash_fp16_tma_kernel
    bm, bn, warps, stages = tma.TMA_TILES[(causal, block_d)]
    signature = {n: "*fp16" for n in ("Q", "K", "V", "O")} | {n: "i32" for n in INTS} | {"qk_scale": "fp32"}
    constexprs = dict(MASK=ragged, CAUSAL=causal, UPCAST=False, BLOCK_M=bm, BLOCK_N=bn, BLOCK_D=block_d)
    row = _compile(fn, signature, constexprs, ("Q", "K", "V", "O", *ALIGNED), warps, stages)
    return {
        "kernel": "fp16",
        "causal": causal,
        "head_dim": block_d,
        "ragged": ragged,
        "tile": [bm, bn, warps, stages],
    } | row


def compile_sage_variant(
    causal: bool, ragged: bool, dtype: str, pv_fp8: bool = False, wide_pass: bool = False
) -> dict:
    """The sage methods' TMA kernel at head dim 128 (K scales per 128 keys, as on the GPU):
    ``sage_qk_int8`` (V in ``dtype``) or, with ``pv_fp8``, ``sage_fp8`` (e4m3 V^T). ``wide_pass``: the
    second launch for flagged heads (a wide K block or noisy queries: the caller's Q in ``dtype``), on its
    own tiles, not warp-specialized."""
    from kernels import flash_sage_tma as sage_tma

    tiles = sage_tma.tiles_for(causal, False, wide_pass=wide_pass)
    v_type = "*fp8e4nv" if pv_fp8 else f"*{dtype}"
    signature = {
        "Q": f"*{dtype}",
        "Q8": "*i8",
        "QC": "*fp32",
        "K8": "*i8",
        "KS": "*fp32",
        "KSH": "*i32",
        "WH": "*i32",
        "V": v_type,
        "VS": "*fp32",
    }
    signature |= {"O": f"*{dtype}"} | {n: "i32" for n in SAGE_INTS} | {"qk_scale": "fp32"}
    constexprs = dict(
        MASK=int(ragged), CAUSAL=causal, UPCAST=False, PV_FP8=pv_fp8, FP8=pv_fp8,
        BLOCK_M=tiles.block_m, BLOCK_N=tiles.block_n or 128, BLOCK_D=128, K_BLOCK=128, WIDE_PASS=wide_pass,
    )  # fmt: skip
    aligned = (
        "Q", "Q8", "QC", "K8", "KS", "KSH", "WH", "V", "VS", "O", "stride_qb", "stride_qh", "stride_qn",
        "stride_vb", "stride_vh", "stride_vn",
    )  # fmt: skip
    row = _compile(
        sage_tma._sage_tma_kernel, signature, constexprs, aligned, tiles.num_warps, tiles.num_stages
    )
    tile = [tiles.block_m, tiles.block_n or 128, tiles.num_warps, tiles.num_stages]
    name = (f"sage_fp8 {dtype}" if pv_fp8 else f"sage_qk_int8 {dtype}") + (" wide pass" if wide_pass else "")
    row["expect_warp_specialized"] = not (causal or wide_pass)
    # The second launch holds the caller's 16-bit Q tile: 8-16 bytes of spill on 3 stages, which ran 1.7x
    # faster than the spill-free single stage on an H200 (kernels.flash_sage_tma.SAGE_TMA_WIDE_TILES).
    row["spill_allowed"] = 16 if wide_pass else 0
    return {"kernel": name, "causal": causal, "head_dim": 128, "ragged": ragged, "tile": tile} | row


def _compile(fn, signature: dict, constexprs: dict, aligned, warps: int, stages: int) -> dict:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from bench.sass_counts import _tool

    params = fn.arg_names
    signature = signature | {n: "constexpr" for n in constexprs}
    attrs = {(params.index(n),): [["tt.divisibility", 16]] for n in aligned}
    kernel = triton.compile(
        ASTSource(
            fn, signature, constexprs={(params.index(n),): v for n, v in constexprs.items()}, attrs=attrs
        ),
        target=GPUTarget("cuda", 90, 32),
        options=dict(num_warps=warps, num_stages=stages),
    )
    ptx = kernel.asm["ptx"]
    with tempfile.TemporaryDirectory() as tmp:
        cubin = Path(tmp) / "k.cubin"
        cubin.write_bytes(kernel.asm["cubin"])
        usage = subprocess.run([_tool("cuobjdump"), "-res-usage", str(cubin)], capture_output=True, text=True)
    regs = re.search(r"REG:(\d+)", usage.stdout)
    stack = re.search(r"STACK:(\d+)", usage.stdout)
    return {
        "warp_specialized": "setmaxnreg" in ptx,
        "wgmma": len(re.findall(r"wgmma\.mma_async", ptx)),
        "tma_loads": len(re.findall(r"cp\.async\.bulk\.tensor", ptx)),
        "registers": int(regs.group(1)) if regs else None,
        "stack": int(stack.group(1)) if stack else None,
        "shared": kernel.metadata.shared,
    }


def problems(r: dict) -> list[str]:
    out = []
    expect = r.get("expect_warp_specialized", not r["causal"])
    if r["warp_specialized"] != expect:
        where = "causal" if r["causal"] else "wide pass"
        out.append("warp specialization lost" if expect else f"warp specialization present ({where})")
    if r["stack"] and r["stack"] > r.get("spill_allowed", 0):
        out.append(f"{r['stack']} bytes of spill stack")
    if r["shared"] > HOPPER_SHARED_BYTES:
        out.append(f"{r['shared']} bytes of shared memory")
    if not r["wgmma"] or not r["tma_loads"]:
        out.append("no wgmma or no TMA load")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the report to this file")
    args = parser.parse_args(argv)
    # Compiling needs real jit functions: under TRITON_INTERPRET=1 they are interpreted ones. Only the
    # script's own process is changed (importing this module for `problems` leaves the environment be).
    os.environ.pop("TRITON_INTERPRET", None)
    from kernels.flash_fp16_tma import TMA_TILES

    rows, failed = [], False
    print(
        "| kernel | causal | head dim | ragged | tile | warp-specialized | wgmma | TMA loads | regs | stack "
        "| shared | problems |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    # The ragged-end mask only exists without causal (the causal mask covers the ragged end).
    variants = [
        functools.partial(compile_variant, causal, block_d, ragged)
        for causal, block_d in sorted(TMA_TILES)
        for ragged in ((False,) if causal else (False, True))
    ]
    variants += [
        functools.partial(compile_sage_variant, causal, ragged, dtype, pv_fp8)
        for pv_fp8 in (False, True)
        for causal in (False, True)
        for ragged in ((False,) if causal else (False, True))
        for dtype in ("fp16", "bf16")
    ]
    variants += [
        functools.partial(compile_sage_variant, causal, ragged, "fp16", pv_fp8, wide_pass=True)
        for pv_fp8 in (False, True)
        for causal in (False, True)
        for ragged in ((False,) if causal else (False, True))
    ]
    for variant in variants:
        r = variant()
        r["problems"] = problems(r)
        failed |= bool(r["problems"])
        rows.append(r)
        print(
            f"| {r['kernel']} | {r['causal']} | {r['head_dim']} | {r['ragged']} | {r['tile']} | "
            f"{r['warp_specialized']} | {r['wgmma']} | {r['tma_loads']} | {r['registers']} | {r['stack']} | "
            f"{r['shared']} | {'; '.join(r['problems'])} |",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
