"""GPU sweep for the sage kernels: correctness against FP32, tile candidates, timings beside SDPA.

    python bench/sweep_sage.py [--quick] [--sweep] [--out DIR]

One run on one GPU: (1) every method's rel-L2 against an FP32 reference on fresh Gaussian inputs, the
sage kernels also against their float64 emulation, K-channel-outlier inputs against sageattention 1.0.6
when it is importable; (2) with ``--sweep``, every tile candidate of the sage kernels at N = 16k;
(3) do_bench medians of every method beside SDPA flash and cuDNN; (4) the PTX of each compiled sage
kernel, counted for wgmma instructions. Writes ``sweep.json`` and prints tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import time
from pathlib import Path

import torch
import triton
from triton.testing import do_bench

from kernels import attention
from kernels import flash_sage_fp8 as sage
from kernels import flash_sage_tma as sage_tma
from kernels._validate import check_attention_inputs
from kernels.emulation import emulate_sage_fp8, emulate_sage_qk_int8
from kernels.reference import attention_reference

METHODS = ["fp16", "int8", "int8_qk_smooth", "sage_qk_int8", "sage_fp8"]
# sage_qk_int8's two kernels by name (the method itself takes the TMA one on Hopper at head dim 128).
QK_INT8_KERNELS = ("pointer", "tma")


def qk_int8_kernel(kernel):
    def fn(q, k, v, causal):
        return sage.flash_attention_sage_qk_int8(q, k, v, causal=causal, kernel=kernel)

    return fn


def rel(out, ref):
    out = out.double()
    if not torch.isfinite(out).all():
        return float("inf")
    return ((out - ref.double()).norm() / ref.double().norm()).item()


def inputs(B, Hq, Hkv, Nq, Nk, D, seed, outliers=False):
    g = torch.Generator(device="cuda").manual_seed(seed)
    q = torch.randn(B, Hq, Nq, D, device="cuda", generator=g)
    k = torch.randn(B, Hkv, Nk, D, device="cuda", generator=g)
    v = torch.randn(B, Hkv, Nk, D, device="cuda", generator=g)
    if outliers:
        # K-channel outliers: a few channels with a large common offset and scale (what K smoothing is for).
        ch = torch.randperm(D, generator=torch.Generator().manual_seed(seed))[: max(1, D // 16)]
        k[..., ch] = k[..., ch] * 5 + 20
    return q.half(), k.half(), v.half()


def sdpa(backend):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    b = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}[backend]

    def fn(q, k, v, causal):
        with sdpa_kernel(b):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)

    return fn


def sageattn_fn():
    try:
        from sageattention import sageattn
    except Exception as exc:  # not installed, or its import fails on this machine
        return None, repr(exc)

    def fn(q, k, v, causal):
        # sageattention 1.0.6 subtracts K's mean in place: give it a copy when accuracy matters.
        return sageattn(q, k, v, is_causal=causal, smooth_k=True)

    return fn, None


def tflops(B, H, N, D, causal, ms):
    return 4 * B * H * N * N * D * (0.5 if causal else 1.0) / (ms * 1e-3) / 1e12


def accuracy(report, sage1):
    rows = []
    for D in (64, 128):
        for causal in (False, True):
            q, k, v = inputs(1, 8, 8, 2048, 2048, D, seed=D + causal)
            ref = attention_reference(q, k, v, causal=causal, dtype=torch.float32)
            for m in METHODS:
                rows.append(
                    ("gaussian", m, D, causal, 2048, rel(attention(q, k, v, causal=causal, method=m), ref))
                )
            if sage1:
                rows.append(
                    ("gaussian", "sageattn-1.0.6", D, causal, 2048, rel(sage1(q, k.clone(), v, causal), ref))
                )
            q, k, v = inputs(1, 8, 8, 2048, 2048, D, seed=7 + D + causal, outliers=True)
            ref = attention_reference(q, k, v, causal=causal, dtype=torch.float32)
            for m in METHODS:
                rows.append(
                    ("k_outliers", m, D, causal, 2048, rel(attention(q, k, v, causal=causal, method=m), ref))
                )
            rows.append(
                (
                    "k_outliers",
                    "sage_qk_int8[pointer]",
                    D,
                    causal,
                    2048,
                    rel(qk_int8_kernel("pointer")(q, k, v, causal), ref),
                )
            )
            if sage1:
                rows.append(
                    (
                        "k_outliers",
                        "sageattn-1.0.6",
                        D,
                        causal,
                        2048,
                        rel(sage1(q, k.clone(), v, causal), ref),
                    )
                )
    # Long rows (issue 14): error vs Nk, hd 128 and the hd 32 case at 1.5x softmax scale.
    for nk in (1024, 4096, 16384):
        q, k, v = inputs(1, 2, 2, 256, nk, 128, seed=nk)
        ref = attention_reference(q, k, v, dtype=torch.float32)
        for m in METHODS:
            rows.append(("gaussian_long", m, 128, False, nk, rel(attention(q, k, v, method=m), ref)))
    g = torch.Generator(device="cuda").manual_seed(1)
    q, k, v = (torch.randn(2, 1, 4976, 32, device="cuda", generator=g).half() for _ in range(3))
    ref = attention_reference(q, k, v, sm_scale=0.265165, dtype=torch.float32)
    for m in METHODS:
        rows.append(
            ("issue14_like", m, 32, False, 4976, rel(attention(q, k, v, sm_scale=0.265165, method=m), ref))
        )
    # Tight: kernel vs its own float64 emulation.
    for D, causal, nk in ((128, False, 1024), (64, True, 777), (96, True, 300)):
        q, k, v = inputs(1, 4, 2, 300, nk, D, seed=nk)
        for m, emu in (("sage_fp8", emulate_sage_fp8), ("sage_qk_int8", emulate_sage_qk_int8)):
            e = emu(q, k, v, causal=causal)
            rows.append(
                ("vs_emulation", m, D, causal, nk, rel(attention(q, k, v, causal=causal, method=m), e))
            )
            if m == "sage_qk_int8":
                for kern in QK_INT8_KERNELS if D > 64 else ("pointer",):
                    out = qk_int8_kernel(kern)(q, k, v, causal)
                    rows.append(("vs_emulation", f"{m}[{kern}]", D, causal, nk, rel(out, e)))
    report["accuracy"] = [
        dict(zip(("family", "method", "D", "causal", "nk", "rel_l2"), r, strict=True)) for r in rows
    ]
    print("\n## accuracy (rel-L2 vs FP32; vs_emulation: vs float64 emulation)")
    for r in rows:
        print(f"{r[0]:>14} {r[1]:>16} D={r[2]:<4} causal={r[3]!s:<5} nk={r[4]:<6} {r[5]:.3e}")


def time_fn(fn):
    fn()
    torch.cuda.synchronize()
    return do_bench(fn, warmup=25, rep=100, return_mode="median")


def sage_kernel_only(q, k, v, causal, pv_fp8):
    shape = check_attention_inputs(
        q, k, v, causal=causal, sm_scale=None, head_dims=(32, 64, 96, 128, 256), method="x"
    )
    cfg = sage.config_for(shape.head_dim, shape.n_k, pv_fp8=pv_fp8)
    qkv = sage.quantize_kv(k, v, cfg, quant_v=pv_fp8)
    o = torch.empty_like(q)
    return (
        lambda: sage.launch_attention(q, v, qkv, o, shape, causal=causal, cfg=cfg, pv_fp8=pv_fp8),
        lambda: sage.quantize_kv(k, v, cfg, quant_v=pv_fp8),
    )


def tma_kernel_only(q, k, v, causal):
    """``sage_qk_int8``'s TMA kernel on K, Q quantized beforehand, and Q's quantizer alone."""
    shape = check_attention_inputs(q, k, v, causal=causal, sm_scale=None, head_dims=(96, 128), method="x")
    cfg = sage.config_for(shape.head_dim, shape.n_k, pv_fp8=False)
    qkv = sage.quantize_kv(k, v, cfg, quant_v=False)
    block_m = sage_tma.tiles_for(causal, False).block_m
    qk_scale = shape.sm_scale * sage_tma.LOG2E
    flags = dict(k_norm=qkv.k_norm, wide_heads=qkv.wide_heads)
    q8, c = sage_tma.quantize_q(q, block_m, cfg.block_d, qk_scale, **flags)
    o = torch.empty_like(q)
    return (
        lambda: sage_tma.launch_sage_tma_kernel(
            q, q8, c, v, qkv.k8, qkv.k_scale, qkv.k_shift, qkv.wide_heads, None, o, shape,
            block_n=cfg.block_n, block_d=cfg.block_d, causal=causal,
        ),
        lambda: sage_tma.quantize_q(q, block_m, cfg.block_d, qk_scale, **flags),
    )  # fmt: skip


def timings(report, sage1, shapes):
    impls = {"sdpa_flash": sdpa("flash"), "sdpa_cudnn": sdpa("cudnn")}
    for m in METHODS:
        impls[m] = (lambda mm: lambda q, k, v, c: attention(q, k, v, causal=c, method=mm))(m)
    for kern in QK_INT8_KERNELS:
        impls[f"sage_qk_int8[{kern}]"] = qk_int8_kernel(kern)
    if sage1:
        impls["sageattn-1.0.6"] = sage1
    rows = []
    for B, H, N, D, causal in shapes:
        q, k, v = inputs(B, H, H, N, N, D, seed=0)
        row = {"B": B, "H": H, "N": N, "D": D, "causal": causal}
        for name, fn in impls.items():
            try:
                row[name] = time_fn(lambda fn=fn, q=q, k=k, v=v, c=causal: fn(q, k, v, c))
            except Exception as exc:
                row[name] = None
                row[name + "_error"] = repr(exc)[:200]
        for name, pv in (("sage_fp8", True), ("sage_qk_int8", False)):
            kern, quant = sage_kernel_only(q, k, v, causal, pv)
            row[name + "_kernel_only"] = time_fn(kern)
            row[name + "_quant_only"] = time_fn(quant)
        if D > 64:
            kern, quant_q = tma_kernel_only(q, k, v, causal)
            row["sage_qk_int8[tma]_kernel_only"] = time_fn(kern)
            row["sage_qk_int8[tma]_quant_q_only"] = time_fn(quant_q)
        rows.append(row)
        print(
            f"B={B} H={H} N={N} D={D} causal={causal}: "
            + ", ".join(
                f"{n}={row[n]:.3f}ms/{tflops(B, H, N, D, causal, row[n]):.0f}T"
                for n in row
                if isinstance(row[n], float)
            ),
            flush=True,
        )
    report["timings"] = rows


TILES = [(128, 128, 8), (128, 64, 8), (64, 128, 4), (64, 64, 4)]


def sweep(report, D, N, pv_fp8, B=1, H=32, tiles=TILES, stages_list=(2, 3, 4), two_levels=(False, True)):
    q, k, v = inputs(B, H, H, N, N, D, seed=1)
    ref = attention_reference(q[:, :1], k[:, :1], v[:, :1], dtype=torch.float32)
    out = []
    bd = max(32, triton.next_power_of_2(D))
    candidates = [
        (bm, bn, warps, stages, two)
        for bm, bn, warps in tiles
        for stages in stages_list
        for two in (two_levels if pv_fp8 else (False,))
    ]
    for bm, bn, warps, stages, two in candidates:
        cfg = sage.SageConfig(bm, bn, bd, warps, stages, two)
        fn = sage.flash_attention_sage_fp8 if pv_fp8 else sage.flash_attention_sage_qk_int8
        try:
            o = fn(q, k, v, config=cfg)
            err = rel(o[:, :1], ref)
            ms = time_fn(lambda fn=fn, cfg=cfg: fn(q, k, v, config=cfg))
            ms_c = time_fn(lambda fn=fn, cfg=cfg: fn(q, k, v, causal=True, config=cfg))
        except Exception as exc:
            out.append({"cfg": list(cfg.__dict__.values()), "error": repr(exc)[:160]})
            continue
        r = {
            "cfg": [bm, bn, warps, stages, two],
            "ms": ms,
            "B": B,
            "tflops": tflops(B, H, N, D, False, ms),
            "ms_causal": ms_c,
            "tflops_causal": tflops(B, H, N, D, True, ms_c),
            "rel_l2": err,
        }
        out.append(r)
        print(f"sweep pv_fp8={pv_fp8} D={D} N={N} {r}", flush=True)
    report.setdefault("sweep", []).append({"D": D, "N": N, "pv_fp8": pv_fp8, "rows": out})


def ptx_report(report):
    found = []
    for kern in (sage._sage_fp8_kernel, sage._quantize_kv_kernel, sage_tma._sage_tma_kernel):
        caches = getattr(kern, "device_caches", {})
        for dev_cache in caches.values():
            cache = dev_cache[0] if isinstance(dev_cache, tuple) else dev_cache
            for key, compiled in list(cache.items()):
                ptx = compiled.asm.get("ptx", "")
                meta = getattr(compiled, "metadata", None)
                found.append(
                    {
                        "kernel": getattr(
                            compiled, "name", kern.__name__ if hasattr(kern, "__name__") else "?"
                        ),
                        "wgmma": len(re.findall(r"wgmma\.mma_async", ptx)),
                        "wgmma_kinds": sorted(set(re.findall(r"wgmma\.mma_async\.[\w.]+", ptx)))[:6],
                        "spill": str(getattr(meta, "n_spills", "")),
                        "regs": str(getattr(meta, "n_regs", "")),
                        "key": str(key)[:300],
                    }
                )
    report["ptx"] = found
    print("\n## PTX")
    for f in found[:40]:
        print(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument("--no-timings", action="store_true")
    ap.add_argument("--sweep-small", action="store_true", help="hd 64/256 and short-N tile sweeps")
    ap.add_argument("--out", default=os.environ.get("OUT", "sweep_out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        ptxas = (
            subprocess.run([triton.knobs.nvidia.ptxas.path, "--version"], capture_output=True, text=True)
            .stdout.strip()
            .splitlines()[-1]
        )
    except Exception as exc:
        ptxas = repr(exc)
    report = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "ptxas": ptxas,
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(report, flush=True)
    sage1, why = sageattn_fn()
    report["sageattention"] = "1.0.6" if sage1 else why
    t0 = time.time()
    if not args.no_accuracy:
        accuracy(report, sage1)
    print(f"accuracy done {time.time() - t0:.0f}s", flush=True)
    if args.sweep:
        sweep(report, 128, 16384, True)
        sweep(report, 128, 16384, False)
    if args.sweep_small:
        tiles_256 = [(64, 64, 4), (64, 32, 4), (128, 64, 8)]
        for pv in (True, False):
            sweep(report, 64, 16384, pv, stages_list=(3,), two_levels=(False,))
            sweep(report, 128, 1024, pv, B=16, stages_list=(3,), two_levels=(False,))
            sweep(report, 256, 4096, pv, B=4, tiles=tiles_256, stages_list=(2,), two_levels=(False,))
    shapes = [(1, 32, 16384, 128, False), (1, 32, 16384, 128, True), (4, 32, 4096, 128, False)]
    if not args.quick:
        shapes += [
            (4, 32, 4096, 128, True),
            (16, 32, 1024, 128, False),
            (1, 32, 16384, 64, False),
            (1, 32, 16384, 64, True),
            (4, 32, 4096, 64, False),
            (16, 32, 1024, 64, False),
        ]
    if not args.no_timings:
        timings(report, sage1, shapes)
    ptx_report(report)
    (out / "sweep.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"total {time.time() - t0:.0f}s; wrote {out / 'sweep.json'}")


if __name__ == "__main__":
    main()
