"""Fuzz public low-bit attention kernels on a GPU: SageAttention 1.0.6 and INT-FlashAttention's full-INT8
Triton kernel, with lowbit's own methods as the control. What it found is in docs/findings.md.

Neither kernel is vendored here. ``sageattention==1.0.6`` comes from PyPI (pure Python + Triton);
INT-FlashAttention's ``flash_atten_full_int8.py`` comes from its repository
(github.com/INT-FlashAttention2024/INT-FlashAttention) and is put on the path with ``--third-party DIR``.
This file holds only the glue a user would write to call them with lowbit's API:

* ``sage``: ``sageattn(q, k, v, tensor_layout="HND", is_causal=causal, sm_scale=sm_scale)``. Sage checks
  its inputs with ``assert``; the glue turns an AssertionError into ValueError so that a refusal reads
  as one (under ``python -O`` those asserts vanish and nothing is refused at all).
* ``int_fa``: the kernel takes INT8 tensors and scales, so the glue quantizes as the paper does (Q, K per
  token, V per head, scale = absmax / 127, all-zero rows given scale 1) and calls its autograd
  function. Its autotuner would benchmark 64 configurations for every new sequence length; the glue
  gives it one (BLOCK_M 64, BLOCK_N 32) by providing the ``configs`` module it imports.

Both are judged with the accuracy budgets of lowbit's ``int8`` method (the loosest INT8 budgets lowbit
claims) and, as bare kernels, without an emulation. Each kernel's domain is learned by probing first.

    python bench/fuzz_public_kernels.py --third-party DIR --out OUTDIR [--examples N] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from harness.search.strategies import ALL_HEAD_DIMS  # noqa: E402
from kernels.registry import BUDGETS  # noqa: E402
from kernels.spec import KernelSpec  # noqa: E402


def sage(q, k, v, *, causal=False, sm_scale=None):
    """SageAttention 1.0.6 with lowbit's calling convention (HND)."""
    from sageattention import sageattn

    try:
        return sageattn(q, k, v, tensor_layout="HND", is_causal=causal, sm_scale=sm_scale)
    except AssertionError as exc:
        raise ValueError(f"sageattn refused: {exc}") from exc


def sage_clone_k(q, k, v, *, causal=False, sm_scale=None):
    """:func:`sage` given a copy of K: the workaround for sageattn 1.0.6 subtracting K's mean in place."""
    return sage(q, k.clone(), v, causal=causal, sm_scale=sm_scale)


def _int_fa_configs() -> None:
    """The ``configs`` module INT-FlashAttention star-imports, with one tile configuration."""
    import triton

    if "configs" in sys.modules:
        return
    mod = types.ModuleType("configs")
    mod.configs = [triton.Config({"BLOCK_M": 64, "BLOCK_N": 32}, num_stages=3, num_warps=4)]
    mod.keep = lambda conf: True
    mod.is_hip = lambda: False
    sys.modules["configs"] = mod


def _absmax_int8(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    amax = x.float().abs().amax(dim=dims, keepdim=True)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    return torch.round(x.float() / scale).clamp(-127, 127).to(torch.int8), scale


def int_fa(q, k, v, *, causal=False, sm_scale=None):
    """INT-FlashAttention full INT8 (flash_atten_full_int8.py) with lowbit's calling convention."""
    _int_fa_configs()
    from flash_atten_full_int8 import _attention_full_int8

    q8, qs = _absmax_int8(q, (-1,))
    k8, ks = _absmax_int8(k, (-1,))
    v8, vs = _absmax_int8(v, (-2, -1))
    scale = 1.0 / math.sqrt(q.shape[-1]) if sm_scale is None else sm_scale
    try:
        return _attention_full_int8.apply(
            q8, k8, v8, qs[..., 0].half(), ks[..., 0].half(), vs[..., 0, 0].half(), causal, scale
        )
    except AssertionError as exc:
        raise ValueError(f"INT-FlashAttention refused: {exc}") from exc


def _spec(name: str, fn, bits: tuple[int, int, int, int], description: str) -> KernelSpec:
    return KernelSpec(
        name=name,
        launcher=fn,
        bits=dict(zip("qkpv", bits, strict=True)),
        head_dims=ALL_HEAD_DIMS,
        dtypes=(torch.float16, torch.bfloat16),
        budgets=BUDGETS["int8"][torch.float16],
        dtype_budgets={torch.bfloat16: BUDGETS["int8"][torch.bfloat16]},
        description=description,
    )


SAGE = _spec("sageattention-1.0.6", sage, (8, 8, 16, 16), "SageAttention 1.0.6 (PyPI), sageattn HND")
INT_FA = _spec("int-flashattention", int_fa, (8, 8, 8, 8), "INT-FlashAttention full INT8 Triton kernel")
SAGE_CLONE_K = _spec("sageattention-1.0.6+clone", sage_clone_k, (8, 8, 16, 16), "sageattn on a copy of K")
PUBLIC = {"sage": SAGE, "sage_clone_k": SAGE_CLONE_K, "int_fa": INT_FA}


def fuzz_one(
    name: str, examples: int, max_n: int, out_dir: Path, profile: str, stated: dict | None = None
) -> dict:
    """Probe the domain, search, write ``<name>.json`` (report) and ``<name>.jsonl`` (every example)."""
    import dataclasses

    from harness.search.domain import probe_domain
    from harness.search.fuzz import fuzz
    from harness.search.profiles import size_limits
    from harness.search.targets import load_kernel, target_from_spec

    if name in PUBLIC:
        target = target_from_spec(
            PUBLIC[name], name=name, ref=f"{name}=bench.fuzz_public_kernels:{name.upper()}"
        )
        probe = probe_domain(target, "cuda", stated=stated)
        domain = probe.domain
    else:
        target, domain = load_kernel(name), None
    limits = dataclasses.replace(size_limits(profile, "cuda"), max_n=max_n)
    label = name + ("-stated" if stated else "")
    log = (out_dir / f"{label}.jsonl").open("w")

    def record(result) -> None:
        row = {"phase": result.phase, "status": result.status, "failed": result.failed_property}
        row.update(
            case=result.case.params(), metrics=result.to_dict()["metrics"], s=round(result.elapsed_s, 3)
        )
        log.write(json.dumps(row) + "\n")
        log.flush()

    start = time.perf_counter()
    report = fuzz(
        target,
        examples=examples,
        device="cuda",
        profile=profile,
        on_result=record,
        database=False,
        sizes=limits,
        domain=domain,
    )
    data = report.to_dict()
    if name in PUBLIC:
        data["domain"] = probe.to_dict()
    data["wall_s"] = time.perf_counter() - start
    (out_dir / f"{label}.json").write_text(json.dumps(data, indent=1))
    first = report.failures[0] if report.failures else None
    return {
        "kernel": label,
        "ok": report.ok,
        "examples": report.examples,
        "passed": report.passed,
        "unsupported": report.unsupported,
        "failed_property": first.failed_property if first else None,
        "message": first.message[:600] if first else None,
        "repro": first.repro_command if first else None,
        "wall_s": round(data["wall_s"], 1),
        "domain": data.get("domain", {}).get("domain") if name in PUBLIC else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--third-party", type=Path, default=None, help="Directory with flash_atten_full_int8.py"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--max-n", type=int, default=1024)
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--only", nargs="*", default=["sage", "int_fa"])
    parser.add_argument("--domain", default=None, help="Domain axes stated as JSON (the rest is probed)")
    args = parser.parse_args()
    if args.third_party is not None:
        sys.path.insert(0, str(args.third_party.resolve()))
    from harness.search.device import select_device

    select_device("cuda")
    args.out.mkdir(parents=True, exist_ok=True)
    versions = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name()}
    import triton

    versions["triton"] = triton.__version__
    print(json.dumps(versions), flush=True)
    for name in args.only:
        try:
            stated = json.loads(args.domain) if args.domain else None
            summary = fuzz_one(name, args.examples, args.max_n, args.out, args.profile, stated)
        except Exception as exc:  # one kernel's crash must not lose the others' results
            summary = {"kernel": name, "error": f"{type(exc).__name__}: {exc}"[:800]}
        summary["versions"] = versions
        print(json.dumps(summary), flush=True)
        with (args.out / "summary.jsonl").open("a") as fh:
            fh.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
