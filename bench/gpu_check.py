"""Check every attention method on a Hopper GPU and time it against torch SDPA, in one run.

    python bench/gpu_check.py                # on the GPU machine: full check + timings
    TRITON_INTERPRET=1 python bench/gpu_check.py --tiny   # on a CPU: the same code paths, tiny shapes

Correctness: every method on the awkward shapes (Nq/Nk in 1, 17, 63, 65, 129, 200; causal and not;
GQA 8:2, 8:1, MHA; D 32/64/96/128/256; fp16 and bf16), on long sequences up to N = 16384, on the
value-distribution families, and on grids past 65535 programs with offsets past 2^31 elements, each
against an FP32 oracle on fresh random inputs, judged with the registry's budget. Outputs are
poisoned first (the allocator's block is filled with NaN and released just before the call), so an
unwritten element shows up as NaN.

Timing: triton.testing.do_bench medians (warm-up first, CUDA events) of each method, torch SDPA with
the flash and the cuDNN backends, and our fp16 Triton baseline, at hd 64 and 128, causal and not.

Writes gpu_check.md and gpu_check.json under $OUT (or ./gpu_check_out) and prints the table last.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import functools
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

AWKWARD_N = (1, 17, 63, 65, 129, 200)
HEAD_DIMS = (32, 64, 96, 128, 256)
GQA = ((8, 2), (8, 1), (2, 2), (4, 1))


def _torch():
    import torch

    return torch


def oracle_fp32(q, k, v, causal, sm_scale=None):
    """FP32 attention, one (b, h) slice at a time so long sequences fit in memory."""
    torch = _torch()
    from kernels.reference import attention_reference

    B, Hq, Nq, D = q.shape
    Hkv = k.shape[1]
    g = Hq // Hkv
    out = torch.empty((B, Hq, Nq, D), dtype=torch.float32, device=q.device)
    for b in range(B):
        for h in range(Hq):
            out[b : b + 1, h : h + 1] = attention_reference(
                q[b : b + 1, h : h + 1],
                k[b : b + 1, h // g : h // g + 1],
                v[b : b + 1, h // g : h // g + 1],
                causal=causal,
                sm_scale=sm_scale,
                dtype=torch.float32,
            )
    return out


def poisoned_call(fn, q, k, v, causal):
    """Fill the block the output will reuse with NaN, release it, then call: unwritten -> NaN."""
    torch = _torch()
    B, Hq, Nq, D = q.shape
    poison = torch.full((B, Hq, Nq, D), float("nan"), dtype=q.dtype, device=q.device)
    del poison
    return fn(q, k, v, causal=causal)


def errors(o, ref):
    torch = _torch()
    diff = o.float() - ref
    nan = bool(torch.isnan(o).any())
    ref_norm = ref.norm().item()
    rel = diff.norm().item() / ref_norm if ref_norm > 0 else diff.norm().item()
    return rel, diff.abs().max().item() if diff.numel() else 0.0, nan


def _check_one(spec, family, q, k, v, causal, label):
    torch = _torch()
    o = poisoned_call(spec.fn, q, k, v, causal)
    if q.is_cuda:
        torch.cuda.synchronize()
    ref = oracle_fp32(q, k, v, causal)
    rel, mabs, nan = errors(o, ref)
    budget = spec.budget_for(family, q.dtype)
    ok = (not nan) and rel <= budget.max_rel_l2 and mabs <= budget.max_abs
    return {
        "method": spec.name,
        "check": label,
        "family": family,
        "dtype": str(q.dtype).replace("torch.", ""),
        "shape": f"q{tuple(q.shape)} kv{tuple(k.shape)}",
        "causal": causal,
        "rel_l2": rel,
        "max_abs": mabs,
        "nan": nan,
        "budget_rel_l2": budget.max_rel_l2,
        "budget_max_abs": budget.max_abs,
        "ok": ok,
    }


def _rand(shape, dtype, device, gen):
    torch = _torch()
    return torch.randn(shape, generator=gen, device=device, dtype=torch.float32).to(dtype)


def _worker(jobs, tiny, seed, chosen=None):
    """Run a list of correctness jobs in this process (a spawn worker on the GPU)."""
    torch = _torch()
    from harness.search.device import select_device

    device = select_device(None)
    import kernels

    if chosen:
        install_configs(chosen)
    from harness.search.distributions import draw_tensors, family_of

    gen = torch.Generator(device=device).manual_seed(seed)
    results = []
    for job in jobs:
        kind = job[0]
        if kind == "awkward":
            _, name, D, dtype_name, causal = job
            spec = kernels.get_spec(name)
            dtype = getattr(torch, dtype_name)
            ns = AWKWARD_N if not tiny else (1, 17, 65)
            for i, nq in enumerate(ns):
                for j, nk in enumerate(ns):
                    hq, hkv = GQA[(i + j) % len(GQA)]
                    b = 2 if (i + j) % 3 == 0 else 1
                    q = _rand((b, hq, nq, D), dtype, device, gen)
                    k = _rand((b, hkv, nk, D), dtype, device, gen)
                    v = _rand((b, hkv, nk, D), dtype, device, gen)
                    results.append(_check_one(spec, "gaussian", q, k, v, causal, "awkward"))
        elif kind == "long":
            _, name, D, dtype_name, causal, nq, nk = job
            spec = kernels.get_spec(name)
            dtype = getattr(torch, dtype_name)
            q = _rand((1, 4, nq, D), dtype, device, gen)
            k = _rand((1, 2, nk, D), dtype, device, gen)
            v = _rand((1, 2, nk, D), dtype, device, gen)
            results.append(_check_one(spec, "gaussian", q, k, v, causal, "long"))
        elif kind == "distribution":
            _, name, distribution, dtype_name, n = job
            spec = kernels.get_spec(name)
            dtype = getattr(torch, dtype_name)
            for D, causal in ((64, False), (128, True)):
                qkv = draw_tensors(distribution, seed + D + n, (1, 4, n, D), (1, 2, n, D), (1, 2, n, D))
                q, k, v = (t.to(device=device, dtype=dtype) for t in qkv)
                results.append(_check_one(spec, family_of(distribution), q, k, v, causal, "family"))
        elif kind == "bigindex":
            _, name, nq, nk, heads = job
            spec = kernels.get_spec(name)
            D = 128
            q = _rand((1, heads, nq, D), torch.float16, device, gen)
            k = _rand((1, heads, nk, D), torch.float16, device, gen)
            v = _rand((1, heads, nk, D), torch.float16, device, gen)
            if nk > nq:
                # Averaging millions of random values is ill-conditioned (the output is ~1/sqrt(Nk) of
                # its terms); instead let the last 4096 keys (past element 2^31) dominate: queries
                # near one direction u, those keys equal to u, their values offset by +2. A wrong
                # offset there changes the output by O(1).
                u = _rand((1, heads, 1, D), torch.float32, device, gen)
                q.copy_((u + 0.3 * _rand(tuple(q.shape), torch.float32, device, gen)).half())
                k[:, :, -4096:] = u.half()
                v[:, :, -4096:] += 2.0
            o = poisoned_call(spec.fn, q, k, v, False)
            # Check the last rows of the last head: their element offsets are the largest (past 2^31
            # on the GPU run). Non-causal rows are independent, so a slice of q has its own oracle.
            tail = min(nq, 8192)
            ref = oracle_fp32(q[:, -1:, -tail:], k[:, -1:], v[:, -1:], False)
            rel, mabs, nan = errors(o[:, -1:, -tail:], ref)
            nan = nan or bool(torch.isnan(o).any())
            budget = spec.budget_for("gaussian", torch.float16)
            results.append(
                {
                    "method": name,
                    "check": "bigindex",
                    "family": "gaussian",
                    "dtype": "float16",
                    "shape": f"q{tuple(q.shape)} kv{tuple(k.shape)} ({q.numel()} / {k.numel()} elements)",
                    "causal": False,
                    "rel_l2": rel,
                    "max_abs": mabs,
                    "nan": nan,
                    "budget_rel_l2": budget.max_rel_l2,
                    "budget_max_abs": budget.max_abs,
                    "ok": (not nan) and rel <= budget.max_rel_l2 and mabs <= budget.max_abs,
                }
            )
            del q, k, v, o
            if device == "cuda":
                torch.cuda.empty_cache()
    return results


def correctness_jobs(methods, tiny):
    from harness.search.distributions import DISTRIBUTION_NAMES

    dtypes = ("float16", "bfloat16")
    jobs = []
    for name in methods:
        for D in HEAD_DIMS if not tiny else (32, 96):
            for dt in dtypes:
                for causal in (False, True):
                    jobs.append(("awkward", name, D, dt, causal))
    long_ns = ((16384, 16384), (4093, 16384), (16384, 4093), (1000, 1000)) if not tiny else ((130, 70),)
    for name in methods:
        for D in (64, 128):
            for causal in (False, True):
                for nq, nk in long_ns:
                    jobs.append(("long", name, D, "float16", causal, nq, nk))
        jobs.append(("long", name, 128, "bfloat16", True, *long_ns[0]))
        for distribution in DISTRIBUTION_NAMES:
            for dt in dtypes:
                jobs.append(("distribution", name, distribution, dt, 2048 if not tiny else 40))
    big = (((1 << 24) + 4096, 64, 1), (64, (1 << 24) + 4096, 1)) if not tiny else ((40, 16, 3),)
    for name in methods:
        for nq, nk, heads in big:
            # One head of 2^24 + 4096 tokens x 128 dims: its last 4096 rows lie past element 2^31.
            jobs.append(("bigindex", name, nq, nk, heads))
    return jobs


def run_correctness(methods, tiny, workers, chosen=None):
    jobs = correctness_jobs(methods, tiny)
    # Spread compile-heavy jobs round-robin; big-index jobs run alone at the end (memory).
    big = [j for j in jobs if j[0] == "bigindex"]
    rest = [j for j in jobs if j[0] != "bigindex"]
    chunks = [rest[i::workers] for i in range(workers)]
    results = []
    if workers == 1:
        for i, chunk in enumerate(chunks):
            results += _worker(chunk, tiny, 1000 + i, chosen)
    else:
        with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_worker, chunk, tiny, 1000 + i, chosen) for i, chunk in enumerate(chunks)]
            for f in futures:
                results += f.result()
    results += _worker(big, tiny, 99, chosen)
    return results


SWEEP = {
    ("fp16", 64): ((128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (64, 64, 4, 3)),
    ("fp16", 128): ((128, 64, 8, 3), (128, 128, 8, 2), (128, 128, 8, 3), (64, 64, 4, 3)),
    ("int8", 64): ((128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (64, 64, 4, 3)),
    ("int8", 128): ((128, 64, 8, 3), (128, 32, 8, 3), (64, 64, 4, 3)),
    ("int8_qk", 64): ((128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (64, 64, 4, 3)),
    ("int8_qk", 128): ((128, 64, 8, 3), (128, 128, 8, 2), (128, 128, 8, 3), (64, 128, 4, 3)),
}


def install_configs(chosen):
    """Make the launchers use ``chosen[(kernel, block_d)] = (bm, bn, warps, stages)`` where given."""
    import kernels.flash_fp16 as f16
    import kernels.flash_int8 as i8
    from kernels.launch import BlockConfig, block_config

    def patched(method, head_dim, interpret):
        cfg = block_config(method, head_dim, interpret)
        kernel = "int8_qk" if method.startswith("int8_qk") else method
        hit = chosen.get((kernel, cfg.block_d))
        return BlockConfig(hit[0], hit[1], cfg.block_d, hit[2], hit[3]) if hit and not interpret else cfg

    f16.block_config = patched
    i8.block_config = patched


def _sweep_compile(jobs):
    """Compile sweep candidates (pool worker): one tiny call per candidate with the timing shapes'
    specialization (every size a multiple of 16)."""
    torch = _torch()
    from harness.search.device import select_device

    device = select_device(None)
    import kernels

    for kernel, D, cand, causal in jobs:
        install_configs({(kernel, D): cand})
        # Same integer specialization as (4, 32, 4096, D): heads, lengths and block counts % 16 == 0.
        q, k, v = (torch.randn(1, 16, 2048, D, device=device).half() for _ in range(3))
        kernels.get_spec(kernel).fn(q, k, v, causal=causal)
    torch.cuda.synchronize()
    return len(jobs)


def run_sweep(workers):
    """Time each candidate tile config on (4, 32, 4096, D) fp16, causal and not; keep the fastest."""
    torch = _torch()
    import triton.testing

    import kernels

    jobs = [(kn, D, c, causal) for (kn, D), cands in SWEEP.items() for c in cands for causal in (False, True)]
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(_sweep_compile, [jobs[i::workers] for i in range(workers)]))
    chosen, table = {}, []
    gen = torch.Generator(device="cuda").manual_seed(5)
    for (kernel, D), cands in SWEEP.items():
        q, k, v = (_rand((4, 32, 4096, D), torch.float16, "cuda", gen) for _ in range(3))
        best = None
        for cand in cands:
            install_configs({(kernel, D): cand})
            total = 0.0
            for causal in (False, True):
                fn = functools.partial(kernels.get_spec(kernel).fn, q, k, v, causal=causal)
                ms = triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
                table.append({"kernel": kernel, "D": D, "config": cand, "causal": causal, "ms": ms})
                total += ms
            if best is None or total < best[0]:
                best = (total, cand)
        chosen[(kernel, D)] = best[1]
        print("sweep", kernel, D, "->", best[1], f"{best[0]:.3f} ms (full + causal)", flush=True)
    install_configs(chosen)
    return chosen, table


def ceilings(device):
    """Measured copy bandwidth (bytes read + written) and bf16 matmul rate on random data."""
    torch = _torch()
    if device != "cuda":
        return {}
    import triton.testing

    x = torch.randn(1 << 28, device="cuda", dtype=torch.float32)
    y = torch.empty_like(x)
    ms = triton.testing.do_bench(lambda x=x, y=y: y.copy_(x), warmup=50, rep=300, return_mode="median")
    bw = 2 * x.numel() * 4 / (ms * 1e-3) / 1e12
    del x, y
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    ms = triton.testing.do_bench(lambda a=a, b=b: a @ b, warmup=50, rep=300, return_mode="median")
    tf = 2 * 8192**3 / (ms * 1e-3) / 1e12
    return {"copy_TBps": bw, "bf16_matmul_TFLOPs": tf}


def run_timing(methods, tiny, device):
    torch = _torch()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    import kernels

    configs = []
    shapes = ((4, 32, 4096), (1, 32, 16384)) if not tiny else ((1, 2, 64),)
    for D in (64, 128):
        for causal in (False, True):
            for B, H, N in shapes:
                configs.append((B, H, N, D, causal))
    if device == "cuda":
        import triton.testing

        def bench(fn):
            return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")
    else:

        def bench(fn):
            fn()
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
            return sorted(times)[1]

    rows = []
    gen = torch.Generator(device=device).manual_seed(7)
    for B, H, N, D, causal in configs:
        q, k, v = (_rand((B, H, N, D), torch.float16, device, gen) for _ in range(3))
        flops = 4 * B * H * N * N * D * (0.5 if causal else 1.0)
        row = {"B": B, "H": H, "N": N, "D": D, "causal": causal, "ms": {}, "tflops": {}}
        impls = {}
        for backend_name, backend in (
            ("sdpa_flash", SDPBackend.FLASH_ATTENTION),
            ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION),
        ):

            def sdpa(backend=backend, q=q, k=k, v=v, causal=causal):
                with sdpa_kernel(backend):
                    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)

            impls[backend_name] = sdpa
        for name in methods:
            spec = kernels.get_spec(name)
            impls[name] = lambda spec=spec, q=q, k=k, v=v, causal=causal: spec.fn(q, k, v, causal=causal)
        if "int8" in methods:
            from kernels import quant

            impls["quant_qkv_only"] = lambda q=q, k=k, v=v: (
                quant.quantize_per_token(q),
                quant.quantize_per_token(k),
                quant.quantize_per_channel(v),
            )
        for impl_name, fn in impls.items():
            try:
                ms = bench(fn)
            except Exception as exc:  # a backend that does not support this shape/device
                row["ms"][impl_name] = None
                row.setdefault("errors", {})[impl_name] = f"{type(exc).__name__}: {str(exc)[:120]}"
                continue
            row["ms"][impl_name] = ms
            if impl_name != "quant_qkv_only":
                row["tflops"][impl_name] = flops / (ms * 1e-3) / 1e12
        rows.append(row)
        del q, k, v
    return rows


def environment(device):
    torch = _torch()
    import triton

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "device": device,
    }
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, sms=p.multi_processor_count, cuda=torch.version.cuda)
        env["cudnn"] = torch.backends.cudnn.version()
    else:
        env["gpu"] = "none (Triton interpreter on CPU)"
    return env


def to_markdown(env, ceil, results, timing):
    lines = ["# GPU check", ""]
    lines.append(" | ".join(f"{k}: {v}" for k, v in env.items()))
    if "copy_TBps" in ceil:
        lines.append("")
        lines.append(
            f"Measured ceilings: copy {ceil['copy_TBps']:.2f} TB/s (read+write), "
            f"bf16 matmul {ceil['bf16_matmul_TFLOPs']:.0f} TFLOP/s"
        )
    if ceil.get("chosen_configs"):
        lines += ["", "Tile configs (BLOCK_M, BLOCK_N, warps, stages) chosen by the sweep:", ""]
        lines += [f"- {name}: {tuple(cfg)}" for name, cfg in ceil["chosen_configs"].items()]
    lines += ["", "## Correctness (worst per method / check / dtype / family)", ""]
    lines.append(
        "| method | check | dtype | family | n | fail | worst rel-L2 | worst max-abs "
        "| budget rel | budget abs |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    groups = {}
    for r in results:
        groups.setdefault((r["method"], r["check"], r["dtype"], r["family"]), []).append(r)
    for key, rs in sorted(groups.items()):
        fails = sum(not r["ok"] for r in rs)
        lines.append(
            f"| {' | '.join(key)} | {len(rs)} | {fails} | {max(r['rel_l2'] for r in rs):.2e} | "
            f"{max(r['max_abs'] for r in rs):.2e} | {rs[0]['budget_rel_l2']:.1e} | "
            f"{rs[0]['budget_max_abs']:.1e} |"
        )
    lines += ["", "## Timing (ms, do_bench median; fp16 inputs, Hq = Hkv)", ""]
    if timing:
        names = list(timing[0]["ms"])
        lines.append(
            "| B | H | N | D | causal | " + " | ".join(names) + " | int8/flash | int8/cudnn | int8/fp16 |"
        )
        lines.append("|" + "---|" * (5 + len(names) + 3))
        for row in timing:
            ms = row["ms"]

            def ratio(a, b, ms=ms):
                return f"{ms[b] / ms[a]:.2f}x" if ms.get(a) and ms.get(b) else "n/a"

            cells = [f"{ms[n]:.3f}" if ms[n] is not None else "n/a" for n in names]
            lines.append(
                f"| {row['B']} | {row['H']} | {row['N']} | {row['D']} | {row['causal']} | "
                + " | ".join(cells)
                + f" | {ratio('int8', 'sdpa_flash')} | {ratio('int8', 'sdpa_cudnn')} "
                + f"| {ratio('int8', 'fp16')} |"
            )
        lines += [
            "",
            "Ratios are speed-ups of int8 (other time / int8 time; above 1 means int8 is faster).",
            "",
        ]
        lines.append("TFLOP/s (4·B·H·N²·D, halved for causal):")
        lines.append("")
        lines.append("| B | H | N | D | causal | " + " | ".join(timing[0]["tflops"]) + " |")
        lines.append("|" + "---|" * (5 + len(timing[0]["tflops"])))
        for row in timing:
            cells = [f"{row['tflops'].get(n, 0):.0f}" for n in timing[0]["tflops"]]
            lines.append(
                f"| {row['B']} | {row['H']} | {row['N']} | {row['D']} | {row['causal']} | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines) + "\n"


def write_outputs(out_dir, env, ceil, results, timing):
    md = to_markdown(env, ceil, results, timing)
    (out_dir / "gpu_check.md").write_text(md)
    (out_dir / "gpu_check.json").write_text(
        json.dumps({"env": env, "ceilings": ceil, "correctness": results, "timing": timing}, indent=1)
    )
    return md


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (CPU interpreter dry run)")
    parser.add_argument("--workers", type=int, default=None, help="processes for the correctness sweep")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument(
        "--sweep", action="store_true", help="time candidate tile configs first, use the best"
    )
    parser.add_argument("--methods", default=None, help="comma-separated methods (default: all)")
    args = parser.parse_args(argv)

    from harness.search.device import select_device

    device = select_device(None)
    import kernels

    methods = args.methods.split(",") if args.methods else list(kernels.REGISTRY)
    workers = args.workers or (min(12, os.cpu_count() or 1) if device == "cuda" else 1)
    out_dir = Path(os.environ.get("OUT") or "gpu_check_out")
    out_dir.mkdir(parents=True, exist_ok=True)

    env = environment(device)
    print("environment:", json.dumps(env), flush=True)
    t0 = time.time()
    ceil = ceilings(device)
    print("ceilings:", json.dumps(ceil), flush=True)
    chosen, sweep_table = run_sweep(workers) if args.sweep and device == "cuda" else ({}, [])
    ceil["chosen_configs"] = {f"{k}/{d}": list(c) for (k, d), c in chosen.items()}
    ceil["sweep"] = sweep_table
    results = run_correctness(methods, args.tiny, workers, chosen)
    t_corr = time.time() - t0
    print(
        f"correctness: {len(results)} checks, {sum(not r['ok'] for r in results)} failed, {t_corr:.0f} s",
        flush=True,
    )
    for r in results:
        if not r["ok"]:
            print("FAIL", json.dumps(r), flush=True)
    write_outputs(out_dir, env, ceil, results, [])
    timing = [] if args.skip_timing else run_timing(methods, args.tiny, device)
    print(write_outputs(out_dir, env, ceil, results, timing))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
