"""SASS instruction counts of the decode kernel, compiled for Hopper on a machine without a GPU.

    python bench/sass_counts.py                              # kernels/kv_cache.py as it is
    python bench/sass_counts.py .carry/ab/*.py --bits 8 4    # variants written by ab_decode.py --export

Compiles ``_decode_kv_kernel`` (or ``--kernel``, e.g. ``_decode_kv_copies_kernel``) of each module for
sm_90a with Triton's bundled ptxas (fp16, D = 128; the tile from the options: BLOCK_N 128 on 4 warps,
2 stages unless given), with 16-byte alignment of the pointers as the runtime specializes them, and
prints the instruction mix from ``cuobjdump -sass`` plus registers and stack, and the instructions of
the main loop (one BLOCK_N step), also without its first forward branch's block (the copies kernel's
lazy rescale, taken rarely). ``--halves`` compiles the copies kernel's copy per group of a half of D;
``--fp32-dequant`` the dequantizing kernel's fp32 path instead of its fp16 FMAs.
The conversions (I2F, I2FP, F2FP) issue at a quarter of the FP32 rate on Hopper; docs/perf.md reads
these counts, e.g. ``--kernel _decode_kv_copies_kernel --bits 4 --block-n 32 --num-warps 1
--num-stages 3 --fusion`` for the shipped Nq = 1 tile.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CONVERSIONS = ("I2F", "I2FP", "F2FP", "F2F")
SIGNATURE = {
    "Q": "*fp16", "KC": "*u8", "KM": "*bf16", "VC": "*u8", "VM": "*bf16", "LENS": "*i32",
    "PACC": "*fp32", "PM": "*fp32", "PL": "*fp32", "stride_qb": "i32", "stride_qh": "i32",
    "stride_qn": "i32", "Hkv": "i32", "GROUP": "i32", "Nq": "i32", "Nmax": "i32", "NUM_BLOCKS": "i32",
    "qk_scale": "fp32",
    "NUM_M_BLOCKS": "i32", "CHUNK": "i32", "NUM_SPLITS": "i32",
}  # fmt: skip


def main_loop(sass: str) -> dict | None:
    """Instructions of the kernel's main loop in ``cuobjdump -sass`` text: from the target of the last
    backward branch to that branch, in all, and without the block of the loop's first forward branch
    (from the branch to the BSYNC that closes it: the copies kernel's lazy rescale, taken rarely).
    None when the code has no backward branch."""
    rows = []  # (address, instruction, branch target or None), each line parsed once
    for m in re.finditer(r"/\*([0-9a-f]{4,6})\*/\s+([^;]*);", sass):
        t = re.search(r"\bBRA 0x([0-9a-f]+)", m.group(2))
        rows.append((int(m.group(1), 16), m.group(2), int(t.group(1), 16) if t else None))
    back = [(target, addr) for addr, _, target in rows if target is not None and target < addr]
    if not back:
        return None
    start, end = back[-1]
    body = [row for row in rows if start <= row[0] <= end]
    skipped = 0
    for i, (addr, _, target) in enumerate(body):
        if target is not None and addr < target <= end:
            close = next((j for j in range(i + 1, len(body)) if body[j][1].startswith("BSYNC")), None)
            if close is not None:
                skipped = close - i - 1
            break
    return {"loop": len(body), "loop_without_first_branch": len(body) - skipped}


def _tool(name: str) -> str:
    import triton

    return os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", name)


def count(
    path: Path,
    bits: int,
    block_n: int,
    num_warps: int,
    num_stages: int,
    fusion: bool = False,
    kernel: str = "_decode_kv_kernel",
    halves: bool = False,
    block_m: int = 16,
    packed: bool = True,
) -> dict:
    """Compile one variant and return its instruction counts, registers and stack bytes."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from bench.ab_decode import load_module

    fn = getattr(load_module(path, "sass_", (kernel,), "a decode kernel module"), kernel)
    if not isinstance(fn, triton.runtime.JITFunction):
        raise SystemExit(
            "expected compiled jit functions: run this script in a process without TRITON_INTERPRET"
        )
    head_dim, group = 128, (32 if bits == 4 else 64)
    params = fn.arg_names
    # Constexprs the variants define; each variant takes those its signature names.
    candidates = dict(
        CAUSAL=False, BITS=bits, HALF=head_dim // 2, GSIZE=group, NG=head_dim // group,
        NG_P=head_dim // group, UPCAST=False, LOW_MATH=False, BLOCK_M=block_m, BLOCK_N=block_n,
        BLOCK_H=head_dim // 2, ASM=True, WORDS=True, HALVES=halves, PDL=False, PACKED=packed,
    )  # fmt: skip
    # The folded kernel's metadata pointers: int32 (scale, offset) words where the module says so
    # (kernels/kv_cache.py's FOLDED_META), bf16 in variants written before that.
    module = sys.modules[fn.fn.__module__]
    meta = "*i32" if getattr(module, "FOLDED_META", None) is not None else "*bf16"
    signature = {name: SIGNATURE.get(name, "constexpr") for name in params}
    signature.update({name: meta for name in ("KM", "VM") if name in signature})
    # The copies kernel reads the codes as int32 words (WORDS).
    if "WORDS" in signature:
        signature.update(KC="*i32", VC="*i32")
    unknown = [n for n, t in signature.items() if t == "constexpr" and n not in candidates]
    if unknown:
        raise SystemExit(f"{path}: no value known for the constexpr(s) {unknown}")
    constexprs = {(params.index(n),): candidates[n] for n, t in signature.items() if t == "constexpr"}
    aligned = {
        (params.index(n),): [["tt.divisibility", 16]] for n, t in signature.items() if t.startswith("*")
    }
    kernel = triton.compile(
        ASTSource(fn, signature, constexprs=constexprs, attrs=aligned),
        target=GPUTarget("cuda", 90, 32),
        options=dict(num_warps=num_warps, num_stages=num_stages, enable_fp_fusion=fusion),
    )
    with tempfile.TemporaryDirectory() as tmp:
        cubin = Path(tmp) / "k.cubin"
        cubin.write_bytes(kernel.asm["cubin"])
        sass = subprocess.run(
            [_tool("cuobjdump"), "-sass", str(cubin)], capture_output=True, text=True, check=True
        )
        usage = subprocess.run([_tool("cuobjdump"), "-res-usage", str(cubin)], capture_output=True, text=True)
    ops = Counter(re.findall(r"/\*[0-9a-f]{4,6}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)", sass.stdout))
    loop = main_loop(sass.stdout)
    regs = re.search(r"REG:(\d+)", usage.stdout)
    stack = re.search(r"STACK:(\d+)", usage.stdout)
    return {
        "variant": path.stem,
        "bits": bits,
        "total": sum(ops.values()),
        "conversions": sum(ops[c] for c in CONVERSIONS),
        "registers": int(regs.group(1)) if regs else None,
        "stack": int(stack.group(1)) if stack else None,
        **(loop or {"loop": None, "loop_without_first_branch": None}),
        "ops": dict(ops.most_common()),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=[str(ROOT / "kernels" / "kv_cache.py")])
    parser.add_argument("--bits", type=int, nargs="+", default=[8, 4], choices=(4, 8))
    parser.add_argument("--block-n", type=int, default=128)
    parser.add_argument("--block-m", type=int, default=16, help="rows per program (BLOCK_M)")
    parser.add_argument(
        "--fp32-dequant",
        action="store_true",
        help="the dequantizing kernel's fp32 path (bf16 caches; the default is its fp16 FMAs)",
    )
    parser.add_argument("--num-warps", type=int, default=4)
    parser.add_argument("--num-stages", type=int, default=2)
    parser.add_argument(
        "--fusion", action="store_true", help="compile with FP fusion on (the shipped launch turns it off)"
    )
    parser.add_argument("--kernel", default="_decode_kv_kernel", help="the jit function to compile")
    parser.add_argument(
        "--halves", action="store_true", help="the copies kernel's copy per group of a half (4 bits)"
    )
    parser.add_argument("--json", help="also write the counts to this file")
    args = parser.parse_args(argv)
    # Compiling needs real jit functions: under TRITON_INTERPRET=1 they are interpreted ones. Only the
    # script's own process is changed (importing this module leaves the environment be).
    os.environ.pop("TRITON_INTERPRET", None)
    results = []
    print(
        "| variant | bits | SASS instructions | main loop (without its first branch's block) | conversions "
        "| registers / stack | top instructions |"
    )
    print("|---|---|---|---|---|---|---|")
    for module in args.modules:
        for bits in args.bits:
            r = count(
                Path(module),
                bits,
                args.block_n,
                args.num_warps,
                args.num_stages,
                args.fusion,
                args.kernel,
                halves=args.halves,
                block_m=args.block_m,
                packed=not args.fp32_dequant,
            )
            results.append(r)
            top = " ".join(f"{op}:{n}" for op, n in list(r["ops"].items())[:10])
            loop = f"{r['loop']} ({r['loop_without_first_branch']})"
            print(
                f"| {r['variant']} | {bits} | {r['total']} | {loop} | {r['conversions']} | "
                f"{r['registers']} / {r['stack']} | {top} |"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
