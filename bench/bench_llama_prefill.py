"""End-to-end prefill of a Llama-style decoder stack (random weights, nothing downloaded): our attention
methods against torch SDPA, tokens/s and ratios, in one run on one GPU.

    python bench/bench_llama_prefill.py --out llama.json                      # 8k and 16k tokens, 4 layers
    python bench/bench_llama_prefill.py --tokens 16384 --layers 8 --methods fp16,sage_fp8

The stack is Llama-3-8B's layer (hidden 4096, 32 query heads, 8 key/value heads of dim 128, SwiGLU MLP of
14336, RMSNorm, rotary embeddings), fp16, batch 1, causal, with weights drawn N(0, 0.02²) from a fixed
seed; embeddings and the LM head are left out (they do not depend on the attention). Only the
attention call changes between rows: SDPA with its flash or cuDNN backend (GQA through ``enable_gqa``;
a backend that refuses a shape is reported as an error row, never swapped for another), or
``kernels.attention(..., method=M)`` on the (B, N, H, D) projections viewed as HND, quantization included.

Each row: median prefill time (``triton.testing.do_bench``, warm-up and compilation excluded), tokens/s,
the speed-up over SDPA flash and cuDNN, the attention's share of the SDPA-flash prefill (measured by a
run with attention replaced by nothing, reported once), and the relative L2 distance of the last hidden
state from the SDPA-flash run (what the low-bit attention costs the whole stack). On a CPU it runs
tiny dims through the interpreter, as a smoke test of the script.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from harness.search.metrics import error_metrics  # noqa: E402


@dataclass(frozen=True)
class Dims:
    hidden: int = 4096
    heads: int = 32
    kv_heads: int = 8
    head_dim: int = 128
    mlp: int = 14336
    rope_base: float = 500000.0


TINY = Dims(hidden=128, heads=4, kv_heads=2, head_dim=32, mlp=256)


def make_weights(dims: Dims, layers: int, device: str, dtype: torch.dtype, seed: int = 0) -> list[dict]:
    g = torch.Generator(device="cpu").manual_seed(seed)

    def w(*shape):
        return (torch.randn(*shape, generator=g) * 0.02).to(device=device, dtype=dtype)

    h, hd = dims.hidden, dims.head_dim
    return [
        {
            "wq": w(dims.heads * hd, h),
            "wk": w(dims.kv_heads * hd, h),
            "wv": w(dims.kv_heads * hd, h),
            "wo": w(h, dims.heads * hd),
            "w1": w(dims.mlp, h),
            "w3": w(dims.mlp, h),
            "w2": w(h, dims.mlp),
            "n1": torch.ones(h, device=device, dtype=dtype),
            "n2": torch.ones(h, device=device, dtype=dtype),
        }
        for _ in range(layers)
    ]


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight


def rope_tables(dims: Dims, tokens: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    inv = dims.rope_base ** (-torch.arange(0, dims.head_dim, 2, device=device).float() / dims.head_dim)
    angles = torch.arange(tokens, device=device).float()[:, None] * inv[None, :]
    return angles.cos(), angles.sin()


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (B, N, H, D); rotate the two halves of each head (Llama's layout).
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1).to(x.dtype)


def attention_fn(name: str):
    """``fn(q, k, v)`` on HND views, causal, for an SDPA backend or a registered method."""
    if name == "none":
        return lambda q, k, v: q
    if name.startswith("sdpa"):
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backends = {
            "sdpa_flash": SDPBackend.FLASH_ATTENTION,
            "sdpa_cudnn": SDPBackend.CUDNN_ATTENTION,
            "sdpa_math": SDPBackend.MATH,
        }
        if name not in backends:
            raise ValueError(f"unknown SDPA backend {name!r}: expected one of {', '.join(backends)}")
        backend = backends[name]

        def sdpa(q, k, v):
            with sdpa_kernel(backend):
                return torch.nn.functional.scaled_dot_product_attention(
                    q, k, v, is_causal=True, enable_gqa=True
                )

        return sdpa
    from kernels import attention

    return lambda q, k, v: attention(q, k, v, causal=True, method=name)


def prefill(x: torch.Tensor, weights: list[dict], dims: Dims, rope, attend) -> torch.Tensor:
    """The decoder stack on hidden states ``x`` (B, N, hidden); returns the last hidden state."""
    b, n, _ = x.shape
    cos, sin = rope
    for w in weights:
        h = _rms_norm(x, w["n1"])
        q = _rope((h @ w["wq"].T).view(b, n, dims.heads, dims.head_dim), cos, sin)
        k = _rope((h @ w["wk"].T).view(b, n, dims.kv_heads, dims.head_dim), cos, sin)
        v = (h @ w["wv"].T).view(b, n, dims.kv_heads, dims.head_dim)
        o = attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = x + o.transpose(1, 2).reshape(b, n, dims.heads * dims.head_dim) @ w["wo"].T
        h = _rms_norm(x, w["n2"])
        x = x + (torch.nn.functional.silu(h @ w["w1"].T) * (h @ w["w3"].T)) @ w["w2"].T
    return x


def _time_ms(fn, device: str) -> float:
    if device == "cuda":
        from triton.testing import do_bench

        return float(do_bench(fn, warmup=200, rep=1000, return_mode="median"))
    fn()
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def measure(methods, tokens, layers, dims, device, dtype=torch.float16) -> list[dict]:
    weights = make_weights(dims, layers, device, dtype)
    names = ["sdpa_flash", "sdpa_cudnn", *methods] if device == "cuda" else ["sdpa_math", *methods]
    rows: list[dict] = []
    for n in tokens:
        g = torch.Generator(device="cpu").manual_seed(n)
        x = torch.randn(1, n, dims.hidden, generator=g).to(device=device, dtype=dtype)
        with torch.no_grad():
            rows += _measure_length(names, x, weights, dims, device)
    return rows


def _measure_length(names, x, weights, dims, device) -> list[dict]:
    """One row per attention in ``names`` at the length of ``x``; the first that runs is the reference."""
    n = x.shape[1]
    rope = rope_tables(dims, n, device)
    rows: list[dict] = []
    reference = None
    base: dict[str, float] = {}

    def run(attend):
        return prefill(x, weights, dims, rope, attend)

    no_attention = _time_ms(lambda: run(attention_fn("none")), device)
    for name in names:
        row = {"tokens": n, "layers": len(weights), "attention": name, "dims": asdict(dims)}
        attend = attention_fn(name)
        try:
            out = run(attend)
            ms = _time_ms(lambda attend=attend: run(attend), device)
        except Exception as exc:  # a backend refusing this shape is a result, reported as such
            row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            rows.append(row)
            continue
        if reference is None:
            reference = out.double()
        row.update(
            ms=ms,
            tokens_per_s=n / (ms / 1e3),
            rel_l2_vs_first=error_metrics(out, reference)["rel_l2"],
            finite=bool(torch.isfinite(out).all()),
            attention_share=max(0.0, 1.0 - no_attention / ms),
        )
        base.setdefault(name, ms)
        for ref in ("sdpa_flash", "sdpa_cudnn", "sdpa_math"):
            if ref in base:
                row[f"speedup_vs_{ref}"] = base[ref] / ms
        rows.append(row)
    return rows


def environment(device: str) -> dict:
    import triton

    env = {"torch": torch.__version__, "triton": triton.__version__, "device": device}
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
    return env


def table(rows: list[dict]) -> str:
    lines = [
        "| tokens | attention | ms | tokens/s | vs SDPA flash | vs SDPA cuDNN | attention share "
        "| rel-L2 vs first |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['tokens']} | {r['attention']} | error: {r['error']} | | | | | |")
            continue
        flash = r.get("speedup_vs_sdpa_flash", math.nan)
        cudnn = r.get("speedup_vs_sdpa_cudnn", math.nan)
        lines.append(
            f"| {r['tokens']} | {r['attention']} | {r['ms']:.1f} | {r['tokens_per_s']:.0f} | {flash:.3f} | "
            f"{cudnn:.3f} | {r['attention_share']:.2f} | {r['rel_l2_vs_first']:.2e} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", default="8192,16384")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--methods", default="fp16,sage_fp8,sage_qk_int8,int8_qk")
    p.add_argument(
        "--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu"
    )
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    from kernels.registry import REGISTRY

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in REGISTRY]
    if unknown:
        p.error(f"--methods: unknown {', '.join(unknown)}; registered: {', '.join(REGISTRY)}")
    try:
        tokens = [int(t) for t in args.tokens.split(",")]
    except ValueError:
        p.error(f"--tokens: expected comma-separated integers, got {args.tokens!r}")
    if args.layers < 1 or not tokens or min(tokens) < 1:
        p.error("--layers and every --tokens value must be at least 1")
    dims = Dims() if args.device == "cuda" else TINY
    rows = measure(methods, tokens, args.layers, dims, args.device)
    print(json.dumps(environment(args.device)))
    print(table(rows))
    if args.out is not None:
        args.out.write_text(json.dumps({"environment": environment(args.device), "rows": rows}, indent=1))
    return 0 if all("error" not in r and r["finite"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
