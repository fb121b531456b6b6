"""Accuracy and speed of the low-bit methods against torch SDPA, prefill and KV-cache decode, in one run.

    python bench/bench_lowbit.py                 # on the GPU machine
    python bench/bench_lowbit.py --quick         # fewer shapes (a first look)
    TRITON_INTERPRET=1 python bench/bench_lowbit.py --tiny   # the same code paths on a CPU

Decode: B=1, Hq=32 query heads over Hkv=8 KV heads (GQA 4:1), D=128, Nq in 1, 4, 16 against Nk from
4k to 128k keys. Compared: torch SDPA on the fp16 cache (each backend that accepts the shape, and the
best of them), our fp16 Triton FlashAttention baseline on the same fp16 cache, and the low-bit cache
(``quantize_kv`` once, ``decode_attention`` timed) at 8 and 4 bits. Each decode kernel's achieved
bandwidth is the bytes it must read (the cache's codes and metadata, or the fp16 K and V) over its
time, against the device-to-device copy bandwidth measured in the same run. A short sweep of the
decode kernel's tiles and split counts at Nq = 1 picks the configuration of the table's Nq = 1 rows
(all are printed); other query counts run the library's defaults.

Prefill: B=1, H=16, D=128, N in 1k, 4k, 16k, not causal: every registered method, our fp16 baseline
and SDPA (flash, cuDNN), in TFLOPS (4·N²·D·H per call).

Accuracy: rel-L2 against an FP32 oracle (SDPA's math on fp32 copies, per head) on fresh Gaussian inputs
and on channel-outlier inputs (a few K channels scaled by 10 with an offset of 5, Q channels by 3, V
channels by 8). Timings: triton.testing.do_bench medians after warm-up (L2 flushed between calls).

Writes bench_lowbit.json and bench_lowbit.md under $OUT (or ./bench_lowbit_out) and prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _inputs(torch, shape_q, shape_kv, dist, seed, device, dtype=None):
    dtype = dtype or torch.float16
    g = torch.Generator(device=device).manual_seed(seed)
    q = torch.randn(shape_q, generator=g, device=device)
    k = torch.randn(shape_kv, generator=g, device=device)
    v = torch.randn(shape_kv, generator=g, device=device)
    if dist == "outliers":
        D = shape_q[-1]
        idx = torch.randperm(D, generator=torch.Generator().manual_seed(seed))[:8].to(device)
        k[..., idx[:6]] = k[..., idx[:6]] * 10 + 5
        q[..., idx[:6]] *= 3
        v[..., idx[4:8]] *= 8
    return q.to(dtype), k.to(dtype), v.to(dtype)


def oracle(torch, q, k, v, causal=False):
    """FP32 attention, one query head at a time (SDPA's math on fp32 copies)."""
    F = torch.nn.functional
    B, Hq, Nq, D = q.shape
    g = Hq // k.shape[1]
    out = torch.empty((B, Hq, Nq, D), dtype=torch.float32, device=q.device)
    for h in range(Hq):
        out[:, h : h + 1] = F.scaled_dot_product_attention(
            q[:, h : h + 1].float(), k[:, h // g : h // g + 1].float(), v[:, h // g : h // g + 1].float()
        )
    return out


def rel_l2(torch, out, ref) -> float:
    out = out.float()
    if not torch.isfinite(out).all():
        return float("inf")
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def bench(fn, interpret: bool, graph: bool = False) -> float:
    """Median ms: do_bench (launch overhead included, as a caller sees it) or, with ``graph``, replayed
    from a CUDA graph (GPU time alone)."""
    import triton

    if interpret:
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3
    if graph:
        return float(triton.testing.do_bench_cudagraph(fn, rep=100, return_mode="median"))
    return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))


def copy_bandwidth(torch, interpret: bool) -> float:
    """Device-to-device copy bandwidth in GB/s (bytes read + bytes written over time)."""
    n = (1 << 20) if interpret else (1 << 30)
    src = torch.empty(n, dtype=torch.uint8, device="cuda" if not interpret else "cpu")
    dst = torch.empty_like(src)
    ms = bench(lambda: dst.copy_(src), interpret)
    return 2 * n / ms / 1e6


def sdpa_variants(torch):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    F = torch.nn.functional
    out = {}
    for name, backend in (
        ("sdpa_flash", SDPBackend.FLASH_ATTENTION),
        ("sdpa_efficient", SDPBackend.EFFICIENT_ATTENTION),
        ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION),
    ):

        def call(q, k, v, backend=backend):
            with sdpa_kernel(backend):
                gqa = q.shape[1] != k.shape[1]
                return F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)

        out[name] = call
    return out


def decode_section(torch, args, interpret, rows, log):
    from kernels.flash_fp16 import flash_attention_fp16
    from kernels.kv_cache import DecodeConfig, decode_attention, quantize_kv

    device = "cpu" if interpret else "cuda"
    B, Hq, Hkv, D = (1, 4, 2, 64) if args.tiny else (1, 32, 8, 128)
    nks = (
        (64, 200)
        if args.tiny
        else ((4096, 32768, 131072) if args.quick else (4096, 16384, 32768, 65536, 131072))
    )
    nqs = (1, 3) if args.tiny else (1, 4, 16)
    sdpa = {} if interpret else sdpa_variants(torch)

    # Tile / split sweep at one long shape per width; the best goes into the table.
    configs = [None]
    if not interpret:
        sms = torch.cuda.get_device_properties(0).multi_processor_count
        # fold None: the kernel the library picks for the rows; --sweep also forces each of the two.
        tiles = ((32, 1), (64, 2), (64, 4), (128, 4), (256, 8))
        if args.sweep:
            grid = [(bn, w, st, tp, fold) for bn, w in tiles for st in (2, 3) for tp in (1, 2, 4, 8)
                    for fold in (None, False, True)]  # fmt: skip
        else:
            grid = [(bn, w, st, tp, None) for bn, w in tiles[:4] for st in (2, 3) for tp in (2, 4, 8)]
        configs = [DecodeConfig(0, bn, w, st, tp * sms, fold=fold) for bn, w, st, tp, fold in grid]
    best = {}
    sweep_ns = (nks[-1],) if args.tiny else (32768, 131072)
    for bits in (8, 4):
        total = {}
        for sweep_n in sweep_ns:
            q, k, v = _inputs(torch, (B, Hq, 1, D), (B, Hkv, sweep_n, D), "gaussian", 1, device)
            cache = quantize_kv(k, v, bits=bits)
            for cfg in configs:
                if cfg in total and total[cfg] is None:
                    continue
                try:
                    ms = bench(
                        lambda cfg=cfg, q=q, c=cache: decode_attention(q, c, config=cfg), interpret, True
                    )
                except Exception as exc:  # a config that does not compile is reported, not fatal
                    log(f"decode sweep bits={bits} {cfg}: {type(exc).__name__}: {str(exc)[:200]}")
                    total[cfg] = None
                    continue
                # Per key, so both lengths weigh the same.
                total[cfg] = total.get(cfg, 0.0) + ms / sweep_n
                rows.append(
                    {"section": "decode_sweep", "bits": bits, "nk": sweep_n, "config": repr(cfg), "ms": ms}
                )
            del q, k, v, cache
        timed = sorted(((t, i, c) for i, (c, t) in enumerate(total.items()) if t is not None))
        best[bits] = timed[0][2]
        log(f"decode sweep bits={bits}: best {timed[0][2]}")
        for score, _, cfg in timed[:6]:
            log(f"    {score * 1e6:.3f} ns/key summed over {sweep_ns}  {cfg}")

    for nk in nks:
        for nq in nqs:
            for dist in ("gaussian", "outliers"):
                q, k, v = _inputs(torch, (B, Hq, nq, D), (B, Hkv, nk, D), dist, nk + nq, device)
                ref = oracle(torch, q, k, v)
                fp16_bytes = 2 * B * Hkv * nk * D * 2
                entries = {}
                entries["triton_fp16"] = (lambda q=q, k=k, v=v: flash_attention_fp16(q, k, v), fp16_bytes)
                for name, fn in sdpa.items():
                    entries[name] = (lambda fn=fn, q=q, k=k, v=v: fn(q, k, v), fp16_bytes)
                for bits in (8, 4):
                    if not interpret:
                        torch.cuda.synchronize()  # the oracle above runs asynchronously
                    t0 = time.perf_counter()
                    cache = quantize_kv(k, v, bits=bits)
                    if not interpret:
                        torch.cuda.synchronize()
                    quant_ms = (time.perf_counter() - t0) * 1e3
                    # The sweep ran at Nq = 1; other query counts take the library's tiles (a tile
                    # that suits 16 rows can be 10x off at 64).
                    cfg = best[bits] if nq == 1 else None
                    entries[f"kv_int{bits}"] = (
                        lambda cache=cache, q=q, cfg=cfg: decode_attention(q, cache, config=cfg),
                        cache.nbytes(),
                    )
                    rows.append({"section": "decode_quantize", "bits": bits, "nk": nk, "ms": quant_ms})
                for name, (fn, nbytes) in entries.items():
                    try:
                        err = rel_l2(torch, fn(), ref)
                        ms = bench(fn, interpret) if dist == "gaussian" else None
                        ms_graph = bench(fn, interpret, True) if dist == "gaussian" else None
                    except Exception as exc:
                        log(f"decode {name} nk={nk} nq={nq}: {type(exc).__name__}: {str(exc)[:160]}")
                        continue
                    row = {
                        "section": "decode",
                        "method": name,
                        "nk": nk,
                        "nq": nq,
                        "dist": dist,
                        "rel_l2": err,
                    }
                    if ms is not None:
                        row.update(ms=ms, ms_graph=ms_graph, gbps=nbytes / ms_graph / 1e6, bytes=nbytes)
                    rows.append(row)
                del q, k, v, ref, entries
    return best


def prefill_section(torch, args, interpret, rows, log):
    import kernels
    from kernels.flash_fp16 import flash_attention_fp16

    device = "cpu" if interpret else "cuda"
    H, D = (2, 64) if args.tiny else (16, 128)
    ns = (64,) if args.tiny else ((1024, 16384) if args.quick else (1024, 4096, 16384))
    sdpa = {} if interpret else sdpa_variants(torch)
    methods = sorted(kernels.REGISTRY)
    for n in ns:
        for dist in ("gaussian", "outliers"):
            q, k, v = _inputs(torch, (1, H, n, D), (1, H, n, D), dist, n, device)
            ref = oracle(torch, q, k, v)
            entries = {"triton_fp16": lambda q=q, k=k, v=v: flash_attention_fp16(q, k, v)}
            for m in methods:
                entries[m] = lambda m=m, q=q, k=k, v=v: kernels.attention(q, k, v, method=m)
            for name in ("sdpa_flash", "sdpa_cudnn"):
                if name in sdpa:
                    entries[name] = lambda fn=sdpa[name], q=q, k=k, v=v: fn(q, k, v)
            for name, fn in entries.items():
                try:
                    err = rel_l2(torch, fn(), ref)
                    ms = bench(fn, interpret) if dist == "gaussian" else None
                except Exception as exc:
                    log(f"prefill {name} n={n}: {type(exc).__name__}: {str(exc)[:160]}")
                    continue
                row = {"section": "prefill", "method": name, "n": n, "dist": dist, "rel_l2": err}
                if ms is not None:
                    row.update(ms=ms, tflops=4 * n * n * D * H / ms / 1e9)
                rows.append(row)
            del q, k, v, ref, entries


def to_markdown(rows, header, copy_gbps) -> str:
    lines = [header, "", f"Device-to-device copy: {copy_gbps:.0f} GB/s (read + write).", ""]
    dec = [r for r in rows if r["section"] == "decode"]
    if dec:
        lines += [
            "### Decode (B=1, Hq=32, Hkv=8, D=128): ms, GB/s, speed-up, rel-L2 (gaussian / outliers)",
            "",
            "| Nk | Nq | method | ms | ms (graph) | GB/s (graph) | × best SDPA | × triton fp16 | "
            "rel-L2 gauss | rel-L2 outliers |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        keys = sorted({(r["nk"], r["nq"]) for r in dec})
        for nk, nq in keys:
            here = [r for r in dec if r["nk"] == nk and r["nq"] == nq]
            timed = {r["method"]: r for r in here if "ms" in r}
            errs = {(r["method"], r["dist"]): r["rel_l2"] for r in here}
            # Speed-ups from the graph-replayed times: GPU time alone, no launch overhead on either side.
            sd = [r["ms_graph"] for m, r in timed.items() if m.startswith("sdpa")]
            best_sdpa = min(sd) if sd else None
            tri = timed.get("triton_fp16", {}).get("ms_graph")
            for m, r in sorted(timed.items(), key=lambda t: t[1]["ms"]):
                e_g, e_o = errs.get((m, "gaussian"), float("nan")), errs.get((m, "outliers"), float("nan"))
                x_sdpa = f"{best_sdpa / r['ms_graph']:.2f}" if best_sdpa else "-"
                x_tri = f"{tri / r['ms_graph']:.2f}" if tri else "-"
                lines.append(
                    f"| {nk} | {nq} | {m} | {r['ms']:.4f} | {r['ms_graph']:.4f} | {r['gbps']:.0f} | "
                    f"{x_sdpa} | {x_tri} | {e_g:.2e} | {e_o:.2e} |"
                )
    pre = [r for r in rows if r["section"] == "prefill"]
    if pre:
        lines += [
            "",
            "### Prefill (B=1, H=16, D=128, not causal): TFLOPS and rel-L2 (gaussian / outliers)",
            "",
            "| N | method | ms | TFLOPS | × sdpa_flash | × sdpa_cudnn | × triton fp16 | rel-L2 gauss | "
            "rel-L2 outliers |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for n in sorted({r["n"] for r in pre}):
            here = [r for r in pre if r["n"] == n]
            timed = {r["method"]: r for r in here if "ms" in r}
            errs = {(r["method"], r["dist"]): r["rel_l2"] for r in here}

            def ratio(base, r, timed=timed):
                return f"{timed[base]['ms'] / r['ms']:.2f}" if base in timed else "-"

            for m, r in sorted(timed.items(), key=lambda t: t[1]["ms"]):
                e_g, e_o = errs.get((m, "gaussian"), float("nan")), errs.get((m, "outliers"), float("nan"))
                lines.append(
                    f"| {n} | {m} | {r['ms']:.3f} | {r['tflops']:.0f} | {ratio('sdpa_flash', r)} | "
                    f"{ratio('sdpa_cudnn', r)} | {ratio('triton_fp16', r)} | {e_g:.2e} | {e_o:.2e} |"
                )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (CPU interpreter)")
    parser.add_argument("--quick", action="store_true", help="fewer shapes")
    parser.add_argument("--sweep", action="store_true", help="wide decode tile/split sweep")
    parser.add_argument("--skip-prefill", action="store_true")
    parser.add_argument("--skip-decode", action="store_true")
    args = parser.parse_args(argv)
    import torch
    import triton

    from kernels.backend import interpreting

    interpret = interpreting()

    out_dir = Path(os.environ.get("OUT", "bench_lowbit_out"))
    out_dir.mkdir(parents=True, exist_ok=True)
    log_lines: list[str] = []

    def log(msg):
        print(msg, flush=True)
        log_lines.append(msg)

    gpu = "CPU (Triton interpreter)" if interpret else torch.cuda.get_device_name()
    try:
        ptxas = subprocess.run(
            [os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/ptxas"), "--version"],
            capture_output=True, text=True, check=False,
        ).stdout.strip().splitlines()[-1]  # fmt: skip
    except (OSError, IndexError):
        ptxas = "unknown"
    header = (
        f"{gpu}, torch {torch.__version__}, triton {triton.__version__}, ptxas {ptxas}, "
        f"python {platform.python_version()}; "
        "kernels: _decode_kv_kernel, _flash_int4_kernel, _flash_mixed_kernel"
    )
    log(header)
    copy_gbps = copy_bandwidth(torch, interpret)
    log(f"copy bandwidth {copy_gbps:.0f} GB/s")
    rows: list[dict] = []
    best = {}
    if not args.skip_decode:
        best = decode_section(torch, args, interpret, rows, log)
    if not args.skip_prefill:
        prefill_section(torch, args, interpret, rows, log)
    md = to_markdown(rows, header, copy_gbps)
    payload = {
        "header": header,
        "copy_gbps": copy_gbps,
        "best": {k: repr(v) for k, v in best.items()},
        "rows": rows,
    }
    (out_dir / "bench_lowbit.json").write_text(json.dumps(payload, indent=1))
    (out_dir / "bench_lowbit.md").write_text(md + "\n" + "\n".join(log_lines) + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
