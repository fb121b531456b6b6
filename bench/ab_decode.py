"""A/B of decode-kernel variants: ``kernels/kv_cache.py`` as it is at several git refs, timed in one run.

    python bench/ab_decode.py --export main decode-folded decode-magic   # here: writes .carry/ab/*.py
    python bench/ab_decode.py .carry/ab/*.py                              # on the GPU machine
    TRITON_INTERPRET=1 python bench/ab_decode.py --tiny .carry/ab/*.py    # the same paths on a CPU
    python bench/ab_decode.py A.py B.py --configs default --nk 32768      # defaults only, one length

Kernel experiments live on branches; the device machine gets a copy of the working tree without git,
so ``--export`` first writes each ref's ``kernels/kv_cache.py`` to a file, and the run loads each file
as its own module (the rest of ``kernels`` is shared). Every variant must keep the public API
(``quantize_kv``, ``decode_attention``, ``DecodeConfig``).

For each variant, width (8, 4 bits) and shape (B=1, Hq=32, Hkv=8, D=128, fp16, Nq in 1, 4, 16 against Nk
32k and 128k): a small tile sweep (32 keys on 1 warp, 64 on 2 or 4, 128 on 4; 2-3 stages; 2, 4 or 8
programs per SM), each timed as a CUDA-graph replay (GPU time, no launch overhead), and its rel-L2
against an FP32 oracle and against the variant's own float64 emulation (``decode_emulate``), beside SDPA
cuDNN and flash on the fp16 cache and the device-to-device copy bandwidth. ``--nk`` and ``--nq`` pick
the lengths and query counts, ``--shape B HQ HKV D`` (repeatable) the head layouts and ``--group`` K's
quantization group. GB/s is the bytes each must read over its time. Writes ab_decode.json and
ab_decode.md under $OUT (or ./ab_decode_out), and ab_decode_bench.json: each entry's library-default
timing (every replay kept) in pytest-benchmark's form, which ``lowbit ingest ab_decode_bench.json
--commit SHA`` records into the history (the GPU workflow does, so decode speeds are tracked per commit
beside the attention methods).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.timing import (  # noqa: E402
    benchmark_document,
    benchmark_record,
    environment,
    graph_samples_ms,
    sdpa_backends,
)

KV_MODULE = "kernels/kv_cache.py"


def export(refs: list[str], dest: Path) -> list[Path]:
    """Write ``KV_MODULE`` at each git ref to ``dest/<ref>.py`` (slashes in a ref become dashes)."""
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for ref in refs:
        out = subprocess.run(
            ["git", "show", f"{ref}:{KV_MODULE}"], cwd=ROOT, capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            raise SystemExit(f"--export: git show {ref}:{KV_MODULE} failed: {out.stderr.strip()}")
        path = dest / f"{ref.replace('/', '-')}.py"
        path.write_text(out.stdout)
        paths.append(path)
    return paths


def load_module(path: Path, prefix: str, required: tuple[str, ...], what: str):
    """The file at ``path`` as a module named ``prefix`` + its stem (registered in ``sys.modules``:
    Triton finds jit functions' globals there); SystemExit naming ``what`` if it lacks a ``required``
    name. Shared with bench/sass_counts.py."""
    name = f"{prefix}{path.stem.replace('-', '_').replace('.', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    for attr in required:
        if not hasattr(module, attr):
            raise SystemExit(f"{path}: expected {what} ({attr} is missing)")
    return module


def load_variant(path: Path):
    """A variant of ``kernels/kv_cache.py``: it must keep the public API."""
    return load_module(path, "ab_", ("quantize_kv", "decode_attention", "DecodeConfig"), "the kv_cache API")


def configs(module, sms: int, tiny: bool, sweep: bool = True) -> list:
    """The library default (None) and, with ``sweep``, a small sweep; only fields every variant has."""
    if tiny or not sweep:
        return [None]
    names = {f.name for f in fields(module.DecodeConfig)}
    out = [None]
    for bn, warps in ((32, 1), (64, 2), (64, 4), (128, 4)):
        for stages in (2, 3):
            for per_sm in (2, 4, 8):
                kw = dict(
                    block_m=0, block_n=bn, num_warps=warps, num_stages=stages, target_programs=per_sm * sms
                )
                cfg = module.DecodeConfig(**{k: v for k, v in kw.items() if k in names})
                if cfg not in out:  # a variant without a field gets each remaining config once
                    out.append(cfg)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="module files, or git refs with --export")
    parser.add_argument("--export", action="store_true", help="write each ref's kv_cache.py, then stop")
    parser.add_argument("--dest", default=".carry/ab", help="where --export writes (default .carry/ab)")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (CPU interpreter)")
    parser.add_argument(
        "--configs", choices=("sweep", "default"), default="sweep", help="tile sweep, or the default only"
    )
    parser.add_argument(
        "--nk", type=int, nargs="+", default=[32768, 131072], help="cache lengths (default 32768 131072)"
    )
    parser.add_argument("--nq", type=int, nargs="+", default=[1, 4, 16], help="query counts (default 1 4 16)")
    parser.add_argument(
        "--shape", type=int, nargs=4, action="append", metavar=("B", "HQ", "HKV", "D"),
        help="batch, query heads, KV heads, head dim; repeatable (default 1 32 8 128; --tiny 1 4 2 64)",
    )  # fmt: skip
    parser.add_argument(
        "--group", type=int, help="K's channels per quantization group (default: the library's)"
    )
    args = parser.parse_args(argv)
    if args.export:
        for path in export(args.variants, ROOT / args.dest):
            print(path)
        return 0
    missing = [v for v in args.variants if not Path(v).is_file()]
    if missing:
        raise SystemExit(f"expected module files (run --export first for git refs), missing: {missing}")

    import torch
    import triton

    from harness.search.metrics import error_metrics
    from kernels.backend import interpreting
    from kernels.reference import attention_reference

    interpret = interpreting()
    device = "cpu" if interpret else "cuda"
    variants = {Path(v).stem: load_variant(Path(v)) for v in args.variants}
    out_dir = Path(os.environ.get("OUT", "ab_decode_out"))
    out_dir.mkdir(parents=True, exist_ok=True)

    env = environment(interpret)
    gpu = env["gpu"]
    sms = 4 if interpret else torch.cuda.get_device_properties(0).multi_processor_count
    copy_gbps = float("nan")
    if not interpret:
        src = torch.empty(1 << 30, dtype=torch.uint8, device=device)
        dst = torch.empty_like(src)
        copy_gbps = (
            2 * src.numel() / triton.testing.do_bench(lambda: dst.copy_(src), return_mode="median") / 1e6
        )
        del src, dst
    header = f"{gpu}, torch {torch.__version__}, triton {triton.__version__}; copy {copy_gbps:.0f} GB/s"
    print(header, flush=True)
    shapes = (
        [tuple(x) for x in args.shape] if args.shape else [(1, 4, 2, 64) if args.tiny else (1, 32, 8, 128)]
    )
    grouping = {} if args.group is None else {"group": args.group}
    rows, benchmarks = [], []
    for B, Hq, Hkv, D in shapes:
        for nk in (96,) if args.tiny else args.nk:
            gen = torch.Generator(device=device).manual_seed(nk)
            k = torch.randn(B, Hkv, nk, D, device=device, generator=gen).half()
            v = torch.randn(B, Hkv, nk, D, device=device, generator=gen).half()
            fp16_bytes = 2 * k.numel() * 2
            for nq in (1, 3) if args.tiny else args.nq:
                q = torch.randn(B, Hq, nq, D, device=device, generator=gen).half()
                ref = attention_reference(q, k, v, dtype=torch.float32)
                entries = []
                if not interpret:
                    backends = sdpa_backends(q, k, v, False, gqa=True)
                    for name in ("sdpa_cudnn", "sdpa_flash"):
                        entries.append((name, None, backends[name], fp16_bytes, None))
                for vname, module in variants.items():
                    for bits in (8, 4):
                        cache = module.quantize_kv(k, v, bits=bits, **grouping)
                        for cfg in configs(module, sms, args.tiny, args.configs == "sweep"):

                            def fn(m=module, c=cache, cfg=cfg, q=q):
                                return m.decode_attention(q, c, config=cfg)

                            entries.append((f"{vname} int{bits}", cfg, fn, cache.nbytes(), (module, cache)))
                for name, cfg, fn, nbytes, emulated in entries:
                    try:
                        out = fn()
                        # The harness's rel-L2: a non-finite output is inf, never a pass.
                        err = error_metrics(out, ref)["rel_l2"]
                        # A quantized entry also against the float64 emulation of its own algorithm,
                        # which quantization loss cannot hide behind.
                        emu = None
                        if emulated is not None and hasattr(emulated[0], "decode_emulate"):
                            e = emulated[0].decode_emulate(q, emulated[1]).double()
                            emu = error_metrics(out, e)["rel_l2"]
                        samples = graph_samples_ms(fn, interpret)
                    except Exception as exc:  # a variant or tile that fails is reported, not fatal
                        print(
                            f"nk={nk} nq={nq} {name} {cfg}: {type(exc).__name__}: {str(exc)[:200]}",
                            flush=True,
                        )
                        continue
                    median = statistics.median(samples)
                    ms = float("nan") if interpret else median
                    rows.append(
                        dict(
                            shape=f"{B},{Hq},{Hkv},{D}",
                            nk=nk,
                            nq=nq,
                            name=name,
                            config=repr(cfg),
                            ms=ms,
                            bytes=nbytes,
                            gbps=nbytes / ms / 1e6,
                            rel_l2=err,
                            rel_l2_emulation=emu,
                        )
                    )
                    if cfg is None:  # the library's defaults go to the history (a sweep's tiles do not)
                        params = dict(B=B, Hq=Hq, Hkv=Hkv, D=D, Nk=nk, Nq=nq)
                        extra = dict(rel_l2=err, gb_per_s=nbytes / median / 1e6)
                        if emu is not None:
                            extra["rel_l2_emulation"] = emu
                        benchmarks.append(
                            benchmark_record(name, "bench/ab_decode.py", params, samples, extra)
                        )
                # after every shape, so a run cut off by a time limit keeps what it measured
                (out_dir / "ab_decode.json").write_text(
                    json.dumps({"header": header, "rows": rows}, indent=1)
                )
                bench_doc = benchmark_document(env, benchmarks, "bench/ab_decode.py")
                (out_dir / "ab_decode_bench.json").write_text(json.dumps(bench_doc, indent=1))
    md = to_markdown(rows, header)
    (out_dir / "ab_decode.md").write_text(md)
    print(md)
    return 0


def _sci(x: float | None) -> str:
    return "–" if x is None else f"{x:.2e}"


def to_markdown(rows: list[dict], header: str) -> str:
    """Best configuration of each entry per shape, its time, bandwidth, speed-up over SDPA cuDNN."""
    best: dict[tuple, dict] = {}
    for r in rows:
        key = (r["shape"], r["nk"], r["nq"], r["name"])
        if key not in best or (r["ms"] == r["ms"] and not r["ms"] >= best[key]["ms"]):
            best[key] = r
    lines = [
        header,
        "",
        "| Nk | Nq | entry | µs | GB/s | × SDPA cuDNN | rel-L2 | vs emulation | config | B,Hq,Hkv,D |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (shape, nk, nq, name), r in sorted(best.items(), key=lambda t: (t[0][:3], t[1]["ms"])):
        base = best.get((shape, nk, nq, "sdpa_cudnn"))
        ratio = f"{base['ms'] / r['ms']:.2f}" if base else "–"
        lines.append(
            f"| {nk} | {nq} | {name} | {r['ms'] * 1e3:.1f} | {r['gbps']:.0f} | {ratio} | "
            f"{r['rel_l2']:.2e} | {_sci(r.get('rel_l2_emulation'))} | {r['config']} | {shape} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
