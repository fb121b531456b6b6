"""The properties every fuzz example must satisfy, checked by :func:`check_case`.

1. ``shape_dtype_device``: the output has the shape of ``q``, its dtype and its device.
2. ``finite``: no NaN/Inf where the oracle is finite.
3. ``error_budget``: ``rel_l2`` and ``max_abs`` against the oracle (run on the exact inputs) within the
   budget of the case's family. If the target can return its dequantized inputs, the oracle is run on
   those too and the kernel-only error (``kernel_rel_l2``/``kernel_max_abs``) and the quantization error
   (``quant_rel_l2``) are reported, so a failure says whether quantization or arithmetic is to blame.
4. ``inputs_unchanged``: q, k and v are bitwise what they were before the call.
5. ``deterministic``: a second call on identical inputs gives a bit-identical output.
6. ``supported_or_raises``: the call returns, or raises ValueError/NotImplementedError (the case is then
   "unsupported", not a failure). Any other exception fails.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from harness.search.cases import Case
from harness.search.metrics import error_metrics, error_ratio, within
from harness.search.oracle import default_oracle_dtype, reference_attention

if TYPE_CHECKING:
    from harness.search.targets import KernelTarget
    from kernels.spec import ErrorBudget

PROPERTIES = (
    "shape_dtype_device",
    "finite",
    "error_budget",
    "inputs_unchanged",
    "deterministic",
    "supported_or_raises",
)

UNSUPPORTED_EXCEPTIONS = (ValueError, NotImplementedError)


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass
class CaseResult:
    """Outcome of one example.

    ``metrics`` hold floats: ``inf`` for a non-finite output (never NaN once measured); ``rel_l2`` and
    ``max_abs`` are NaN only when no output was measured (unsupported case, exception, wrong shape),
    and :meth:`to_dict` writes every non-finite value as null.
    """

    kernel: str
    case: Case
    status: str
    failed_property: str | None
    verdicts: dict[str, bool | None]
    metrics: dict[str, float]
    budget: ErrorBudget
    message: str
    elapsed_s: float
    repro_command: str = ""
    # "explore" while searching, "shrink" once a failure was found and Hypothesis minimises it.
    phase: str = "explore"
    # max(rel_l2 / budget, max_abs / budget): what the search climbs; inf for a non-finite output.
    error_ratio: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def to_dict(self) -> dict:
        """JSON-safe dict; non-finite metrics become null (their meaning is in ``message``)."""
        return {
            "kernel": self.kernel,
            "case": self.case.params(),
            "case_id": self.case.case_id,
            "family": self.case.family,
            "shape_class": self.case.shape_class,
            "status": self.status,
            "failed_property": self.failed_property,
            "verdicts": dict(self.verdicts),
            "metrics": {k: _json_float(v) for k, v in self.metrics.items()},
            "budget": {
                "max_rel_l2": _json_float(self.budget.max_rel_l2),
                "max_abs": _json_float(self.budget.max_abs),
            },
            "error_ratio": _json_float(self.error_ratio),
            "message": self.message,
            "elapsed_s": self.elapsed_s,
            "repro_command": self.repro_command,
            "phase": self.phase,
        }


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equality (NaN payloads included) of two tensors of the same shape and dtype."""
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    return torch.equal(
        a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8)
    )


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _call(target: KernelTarget, case: Case, q, k, v):
    return target.fn(q, k, v, causal=case.causal, sm_scale=case.sm_scale)


def check_case(target: KernelTarget, case: Case, device: str) -> CaseResult:
    """Run ``target`` on ``case`` (twice, for determinism) and check every property."""
    start = time.perf_counter()
    budget = target.budget_for(case.family, case.dtype)
    verdicts: dict[str, bool | None] = dict.fromkeys(PROPERTIES)
    metrics: dict[str, float] = {"rel_l2": math.nan, "max_abs": math.nan}
    notes: list[str] = []
    originals = case.make_inputs(device)
    q, k, v = (t.clone() for t in originals)

    def finish(status: str) -> CaseResult:
        _sync(device)
        failed = next((p for p in PROPERTIES if verdicts[p] is False), None)
        if failed is not None:
            status = "fail"
        if "rel_l2" in metrics and not math.isnan(metrics["rel_l2"]):
            ratio = error_ratio(metrics, budget.max_rel_l2, budget.max_abs)
        else:
            ratio = 0.0
        if failed is None and status == "pass":
            notes.insert(0, f"ok: rel_l2 {metrics['rel_l2']:.3g}, max_abs {metrics['max_abs']:.3g}")
        return CaseResult(
            kernel=target.name,
            case=case,
            status=status,
            failed_property=failed,
            verdicts=verdicts,
            metrics=metrics,
            budget=budget,
            message="; ".join(notes),
            elapsed_s=time.perf_counter() - start,
            repro_command=case.repro_command(target.ref, target.override_args()),
            error_ratio=ratio,
        )

    try:
        out = _call(target, case, q, k, v)
        _sync(device)
    except UNSUPPORTED_EXCEPTIONS as exc:
        verdicts["supported_or_raises"] = True
        verdicts["inputs_unchanged"] = all(map(same_bits, (q, k, v), originals))
        notes.append(f"unsupported: {type(exc).__name__}: {exc}")
        if not verdicts["inputs_unchanged"]:
            notes.append("inputs were modified before raising")
        return finish("unsupported")
    except Exception as exc:
        verdicts["supported_or_raises"] = False
        notes.append(f"raised {_describe(exc)}; only ValueError/NotImplementedError mark a case unsupported")
        return finish("fail")
    verdicts["supported_or_raises"] = True

    changed = [name for name, a, b in zip("qkv", (q, k, v), originals, strict=True) if not same_bits(a, b)]
    verdicts["inputs_unchanged"] = not changed
    if changed:
        notes.append(f"inputs modified in place: {', '.join(changed)}")

    want = (tuple(originals[0].shape), originals[0].dtype, originals[0].device)
    if not isinstance(out, torch.Tensor):
        verdicts["shape_dtype_device"] = False
        notes.append(f"returned {type(out).__name__}, expected a Tensor")
        return finish("fail")
    got = (tuple(out.shape), out.dtype, out.device)
    verdicts["shape_dtype_device"] = got == want
    if got != want:
        notes.append(f"output shape/dtype/device {got} != expected {want}")
        return finish("fail")

    oracle_dtype = default_oracle_dtype(device)
    qo, ko, vo = originals
    ref = reference_attention(qo, ko, vo, causal=case.causal, sm_scale=case.sm_scale, dtype=oracle_dtype)
    metrics = error_metrics(out, ref)
    verdicts["finite"] = metrics["nonfinite"] == 0
    if not verdicts["finite"]:
        notes.append(f"{int(metrics['nonfinite'])} non-finite output element(s) where the oracle is finite")
    deq = None
    if target.dequantize is not None:
        try:
            deq = target.dequantize(
                *(t.clone() for t in originals), causal=case.causal, sm_scale=case.sm_scale
            )
        except Exception as exc:
            # A broken dequantize hides the split of the error, not a kernel bug: say so, go on.
            notes.append(f"dequantize raised {_describe(exc)}; kernel-only error not measured")
    if deq is not None:
        ref_deq = reference_attention(*deq, causal=case.causal, sm_scale=case.sm_scale, dtype=oracle_dtype)
        kernel_only = error_metrics(out, ref_deq)
        quant = error_metrics(ref_deq, ref)
        metrics["kernel_rel_l2"] = kernel_only["rel_l2"]
        metrics["kernel_max_abs"] = kernel_only["max_abs"]
        metrics["quant_rel_l2"] = quant["rel_l2"]
        metrics["quant_max_abs"] = quant["max_abs"]
    ok_rel = within(metrics["rel_l2"], budget.max_rel_l2)
    ok_abs = within(metrics["max_abs"], budget.max_abs)
    verdicts["error_budget"] = ok_rel and ok_abs
    if not verdicts["error_budget"]:
        notes.append(
            f"error over budget ({case.family}): rel_l2 {metrics['rel_l2']:.4g} "
            f"{'<=' if ok_rel else '>'} {budget.max_rel_l2:g}, max_abs {metrics['max_abs']:.4g} "
            f"{'<=' if ok_abs else '>'} {budget.max_abs:g}"
        )
        if "kernel_rel_l2" in metrics:
            notes.append(
                f"kernel-only (oracle on dequantized inputs) rel_l2 {metrics['kernel_rel_l2']:.4g}, "
                f"quantization alone rel_l2 {metrics['quant_rel_l2']:.4g}"
            )

    try:
        out2 = _call(target, case, *(t.clone() for t in originals))
        _sync(device)
        verdicts["deterministic"] = isinstance(out2, torch.Tensor) and same_bits(out, out2)
        if not verdicts["deterministic"]:
            if isinstance(out2, torch.Tensor) and out2.shape == out.shape:
                differ = int((out.float() != out2.float()).sum())
                notes.append(f"second call on identical inputs differs in {differ} element(s)")
            else:
                notes.append("second call on identical inputs returned a different shape/type")
    except Exception as exc:
        verdicts["deterministic"] = False
        notes.append(f"second call on identical inputs raised {_describe(exc)}")
    return finish("pass")
