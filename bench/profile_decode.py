"""One decode launch per width for a profiler: warm-up calls, then the call ncu should capture.

    ncu --clock-control none -k regex:_decode_kv_ --launch-skip 2 --launch-count 1 \\
        --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\\.ratio' \\
        python bench/profile_decode.py --bits 4              # the stall reasons of docs/perf.md "v8"
    TRITON_INTERPRET=1 python bench/profile_decode.py --tiny  # the same path on a CPU

Each width runs ``--warmup`` calls and then one more, so with W warm-up calls ncu's
``--launch-skip W --launch-count 1`` picks the last (first width), or ``--launch-skip 2W+1`` the
second width's. Shape: B=1, Hkv KV heads of D=128, a GQA group of ``--group`` query heads, fp16
Gaussian cache; the library's default config unless ``--block-n`` etc. are given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[4, 8], choices=(4, 8))
    parser.add_argument("--nk", type=int, default=32768, help="cache length (default 32768)")
    parser.add_argument("--nq", type=int, default=1, help="queries per step (default 1)")
    parser.add_argument("--group", type=int, default=4, help="query heads per KV head (default 4)")
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="a small shape (CPU interpreter)")
    args = parser.parse_args(argv)
    if min(args.nk, args.nq, args.group, args.kv_heads) < 1 or args.warmup < 0:
        parser.error("--nk, --nq, --group and --kv-heads must be at least 1, --warmup at least 0")

    import torch

    from kernels.backend import interpreting
    from kernels.kv_cache import decode_attention, decode_emulate, quantize_kv

    interpret = interpreting()
    device = "cpu" if interpret else "cuda"
    if not interpret and not torch.cuda.is_available():
        parser.error("expected a CUDA GPU (or TRITON_INTERPRET=1 with --tiny)")
    hkv, nk, d = (2, 96, 64) if args.tiny else (args.kv_heads, args.nk, 128)
    gen = torch.Generator(device=device).manual_seed(0)
    k = torch.randn(1, hkv, nk, d, device=device, generator=gen).half()
    v = torch.randn(1, hkv, nk, d, device=device, generator=gen).half()
    q = torch.randn(1, hkv * args.group, args.nq, d, device=device, generator=gen).half()
    for bits in args.bits:
        cache = quantize_kv(k, v, bits=bits)
        for _ in range(args.warmup + 1):
            out = decode_attention(q, cache)
        if not interpret:
            torch.cuda.synchronize()
        emu = decode_emulate(q, cache)
        err = float((out.double() - emu).norm() / emu.norm())
        print(f"int{bits}: {args.warmup + 1} launches, rel-L2 against the emulation {err:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
