"""The properties every fuzz example must satisfy: one function per property, run by :func:`check_case`.

1. ``shape_dtype_device``: the output is a tensor with the shape of ``q``, its dtype and its device.
2. ``finite``: no NaN/Inf where the oracle is finite.
3. ``emulation`` (methods with a float64 emulation, ``KernelSpec.emulate``): the output matches the
   emulation of the method's own algorithm within the tight per-dtype budget
   (``emul_rel_l2``, ``emul_worst_row_rel_l2``, ``emul_max_abs`` relative to the largest emulated value).
   Quantization loss cannot hide an arithmetic bug here, on any family.
4. ``error_budget``: ``rel_l2`` and ``max_abs`` against the FP64/FP32 oracle within the budget of the
   case's family (the method's accuracy). Where the target can return its dequantized inputs, the
   kernel-only (``kernel_rel_l2``) and quantization (``quant_rel_l2``) parts are reported too.
5. ``worst_row``: the worst query row's relative error against the oracle (``worst_row_rel_l2``) within
   the budget's row limit: one wrong row among thousands is invisible to whole-tensor errors.
6. ``inputs_unchanged``: q, k, v and every byte of the memory they live in are what they were.
7. ``deterministic``: a second call on identical inputs gives a bit-identical output.
8. ``output_fresh``: the output shares memory with no input nor with the next call's output while it is
   alive (no buffer reused across calls), and the next call leaves it unchanged.
9. ``supported_or_raises``: the call returns, or raises ValueError/NotImplementedError (the case is then
   "unsupported", not a failure). Any other exception fails.

A property that fails is reported with measured against allowed; NaN and Inf never pass any of them.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from harness.search.cases import Case
from harness.search.metrics import REL_L2_FLOOR, error_metrics, error_ratio, within
from harness.search.oracle import default_oracle_dtype, reference_attention

if TYPE_CHECKING:
    from harness.search.targets import KernelTarget
    from kernels.spec import ErrorBudget

PROPERTIES = (
    "shape_dtype_device",
    "finite",
    "emulation",
    "error_budget",
    "worst_row",
    "inputs_unchanged",
    "deterministic",
    "output_fresh",
    "supported_or_raises",
)

UNSUPPORTED_EXCEPTIONS = (ValueError, NotImplementedError)

# The float64 emulation replays the online softmax block by block; above this many score elements (the
# long-offset GPU cases of harness.search.long_cases) it would take minutes, and those cases are about
# addressing, which the oracle judges.
EMULATION_MAX_SCORES = 2**32


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


class _Example:
    """What one example has established so far: verdicts, metrics, notes, and the inputs' true values."""

    def __init__(self, target: KernelTarget, case: Case, device: str) -> None:
        self.target, self.case, self.device = target, case, device
        self.start = time.perf_counter()
        self.budget = target.budget_for(case.family, case.dtype, case.nk)
        self.verdicts: dict[str, bool | None] = dict.fromkeys(PROPERTIES)
        self.metrics: dict[str, float] = {"rel_l2": math.nan, "max_abs": math.nan}
        self.notes: list[str] = []
        # The values (contiguous) and the laid-out inputs of the first call with the memory owning them.
        self.values = case.make_values(device)
        self.inputs, self.owners = case.lay_out(*self.values)
        self.owner_bits = [t.clone() for t in self.owners]

    def fresh_inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.case.lay_out(*self.values)[0]

    def _ratio(self) -> float:
        """How far past its budgets the output is, over every error measured: what the search climbs."""
        m, b = self.metrics, self.budget
        ratios = [error_ratio(m, b.max_rel_l2, b.max_abs)]
        if "worst_row_rel_l2" in m:
            ratios.append(error_ratio({"rel_l2": m["worst_row_rel_l2"], "max_abs": 0.0}, b.row_limit, 1.0))
        if "emul_rel_l2" in m:
            e = self.target.emulation_budget_for(self.case.dtype, self.case.family)
            ratios.append(error_ratio({"rel_l2": m["emul_rel_l2"], "max_abs": 0.0}, e.max_rel_l2, 1.0))
            ratios.append(
                error_ratio({"rel_l2": m["emul_worst_row_rel_l2"], "max_abs": 0.0}, e.row_limit, 1.0)
            )
        return max(ratios)

    def finish(self, status: str) -> CaseResult:
        _sync(self.device)
        failed = next((p for p in PROPERTIES if self.verdicts[p] is False), None)
        if failed is not None:
            status = "fail"
        measured = not math.isnan(self.metrics.get("rel_l2", math.nan))
        ratio = self._ratio() if measured else 0.0
        if failed is None and status == "pass":
            self.notes.insert(
                0, f"ok: rel_l2 {self.metrics['rel_l2']:.3g}, max_abs {self.metrics['max_abs']:.3g}"
            )
        kind = "cuda" if torch.device(self.device).type == "cuda" else "cpu"
        return CaseResult(
            kernel=self.target.name,
            case=self.case,
            status=status,
            failed_property=failed,
            verdicts=self.verdicts,
            metrics=self.metrics,
            budget=self.budget,
            message="; ".join(self.notes),
            elapsed_s=time.perf_counter() - self.start,
            # The device is part of the repro: a case found on the GPU replays on the GPU.
            repro_command=self.case.repro_command(
                self.target.ref, [*self.target.override_args(), "--device", kind]
            ),
            error_ratio=ratio,
        )


def check_supported(ex: _Example):
    """``supported_or_raises``: the output, or None when the call refused (unsupported) or crashed."""
    try:
        out = _call(ex.target, ex.case, *ex.inputs)
        _sync(ex.device)
    except UNSUPPORTED_EXCEPTIONS as exc:
        ex.verdicts["supported_or_raises"] = True
        ex.notes.append(f"unsupported: {type(exc).__name__}: {exc}")
        check_inputs_unchanged(ex)
        return None
    except Exception as exc:
        ex.verdicts["supported_or_raises"] = False
        ex.notes.append(
            f"raised {_describe(exc)}; only ValueError/NotImplementedError mark a case unsupported"
        )
        return None
    ex.verdicts["supported_or_raises"] = True
    return out


def check_inputs_unchanged(ex: _Example) -> None:
    """``inputs_unchanged``: the views and all memory owning them (a KV cache's tail, the other heads of a
    fused projection) are bitwise what they were."""
    changed = [name for name, a, b in zip("qkv", ex.inputs, ex.values, strict=True) if not same_bits(a, b)]
    if not changed and not all(map(same_bits, ex.owners, ex.owner_bits)):
        changed = ["memory around the inputs (outside the q/k/v views)"]
    ex.verdicts["inputs_unchanged"] = not changed
    if changed:
        ex.notes.append(f"inputs modified in place: {', '.join(changed)}")


def check_shape(ex: _Example, out) -> bool:
    """``shape_dtype_device``: a tensor of q's shape, dtype and device."""
    want = (tuple(ex.values[0].shape), ex.values[0].dtype, ex.values[0].device)
    if not isinstance(out, torch.Tensor):
        ex.verdicts["shape_dtype_device"] = False
        ex.notes.append(f"returned {type(out).__name__}, expected a Tensor")
        return False
    got = (tuple(out.shape), out.dtype, out.device)
    ex.verdicts["shape_dtype_device"] = got == want
    if got != want:
        ex.notes.append(f"output shape/dtype/device {got} != expected {want}")
    return got == want


def _reference(ex: _Example, q, k, v) -> torch.Tensor:
    dtype = default_oracle_dtype(ex.device)
    return reference_attention(q, k, v, causal=ex.case.causal, sm_scale=ex.case.sm_scale, dtype=dtype)


def check_accuracy(ex: _Example, out: torch.Tensor) -> None:
    """``finite``, ``error_budget`` and ``worst_row`` against the oracle on the exact inputs."""
    m = error_metrics(out, _reference(ex, *ex.values))
    ex.metrics = m
    budget, family = ex.budget, ex.case.family
    ex.verdicts["finite"] = m["nonfinite"] == 0
    if not ex.verdicts["finite"]:
        ex.notes.append(f"{int(m['nonfinite'])} non-finite output element(s) where the oracle is finite")
    ok_rel, ok_abs = within(m["rel_l2"], budget.max_rel_l2), within(m["max_abs"], budget.max_abs)
    ex.verdicts["error_budget"] = ok_rel and ok_abs
    if not ex.verdicts["error_budget"]:
        ex.notes.append(
            f"error over budget ({family}): rel_l2 {m['rel_l2']:.4g} {'<=' if ok_rel else '>'} "
            f"{budget.max_rel_l2:g}, max_abs {m['max_abs']:.4g} {'<=' if ok_abs else '>'} {budget.max_abs:g}"
        )
    ex.verdicts["worst_row"] = within(m["worst_row_rel_l2"], budget.row_limit)
    if not ex.verdicts["worst_row"]:
        ex.notes.append(
            f"worst query row over budget ({family}): row rel_l2 {m['worst_row_rel_l2']:.4g} > "
            f"{budget.row_limit:g} (whole tensor {m['rel_l2']:.4g})"
        )


def report_quantization_split(ex: _Example, out: torch.Tensor) -> None:
    """Not a property: with ``dequantize``, how much of the error is quantization and how much arithmetic."""
    c = ex.case
    if ex.target.dequantize is None or c.batch * c.hq * c.nq * c.nk > EMULATION_MAX_SCORES:
        return
    try:
        deq = ex.target.dequantize(
            *(t.clone() for t in ex.values), causal=ex.case.causal, sm_scale=ex.case.sm_scale
        )
    except Exception as exc:
        # A broken dequantize hides the split of the error, not a kernel bug: say so, go on.
        ex.notes.append(f"dequantize raised {_describe(exc)}; kernel-only error not measured")
        return
    ref = _reference(ex, *ex.values)
    ref_deq = _reference(ex, *deq)
    kernel_only, quant = error_metrics(out, ref_deq), error_metrics(ref_deq, ref)
    ex.metrics.update(
        kernel_rel_l2=kernel_only["rel_l2"],
        kernel_max_abs=kernel_only["max_abs"],
        quant_rel_l2=quant["rel_l2"],
        quant_max_abs=quant["max_abs"],
    )


def check_emulation(ex: _Example, out: torch.Tensor) -> None:
    """``emulation``: the kernel against the float64 emulation of its own method, tight budget per dtype."""
    if ex.target.emulate is None:
        return
    c = ex.case
    if c.batch * c.hq * c.nq * c.nk > EMULATION_MAX_SCORES:
        ex.notes.append(f"emulation skipped above {EMULATION_MAX_SCORES} score elements (oracle only)")
        return
    try:
        emul = ex.target.emulate(
            *(t.clone() for t in ex.values), causal=ex.case.causal, sm_scale=ex.case.sm_scale
        )
    except Exception as exc:
        # The emulation is the harness's yardstick; its failure says nothing about the kernel.
        ex.notes.append(f"emulate raised {_describe(exc)}; emulation not checked")
        return
    budget = ex.target.emulation_budget_for(ex.case.dtype, ex.case.family)
    m = error_metrics(out, emul.to(torch.float64))
    scale = max(float(emul.abs().max()) if emul.numel() else 0.0, REL_L2_FLOOR)
    ex.metrics.update(
        emul_rel_l2=m["rel_l2"], emul_max_abs=m["max_abs"], emul_worst_row_rel_l2=m["worst_row_rel_l2"]
    )
    checks = (
        ("rel_l2", m["rel_l2"], budget.max_rel_l2),
        ("worst row rel_l2", m["worst_row_rel_l2"], budget.row_limit),
        ("max_abs / max|emulated|", m["max_abs"] / scale, budget.max_abs),
    )
    over = [f"{name} {value:.4g} > {limit:g}" for name, value, limit in checks if not within(value, limit)]
    ex.verdicts["emulation"] = not over
    if over:
        ex.notes.append(
            f"differs from the method's own float64 emulation ({ex.case.dtype}): {', '.join(over)}"
        )


def check_deterministic(ex: _Example, out: torch.Tensor):
    """``deterministic``: a second call on identical (freshly laid-out) inputs gives the same bits.
    Returns the second output (None if the call raised)."""
    try:
        out2 = _call(ex.target, ex.case, *ex.fresh_inputs())
        _sync(ex.device)
    except Exception as exc:
        ex.verdicts["deterministic"] = False
        ex.notes.append(f"second call on identical inputs raised {_describe(exc)}")
        return None
    ex.verdicts["deterministic"] = isinstance(out2, torch.Tensor) and same_bits(out, out2)
    if ex.verdicts["deterministic"]:
        return out2
    if isinstance(out2, torch.Tensor) and out2.shape == out.shape:
        differ = int((out.float() != out2.float()).sum())
        ex.notes.append(f"second call on identical inputs differs in {differ} element(s)")
    else:
        ex.notes.append("second call on identical inputs returned a different shape/type")
    return out2


def _storage_span(t: torch.Tensor) -> tuple[int, int]:
    storage = t.untyped_storage()
    return storage.data_ptr(), storage.data_ptr() + storage.nbytes()


def _overlaps(a: torch.Tensor, b: torch.Tensor) -> bool:
    (a0, a1), (b0, b1) = _storage_span(a), _storage_span(b)
    return a0 < b1 and b0 < a1


def check_output_fresh(ex: _Example, out: torch.Tensor, out2, snapshot: torch.Tensor) -> None:
    """``output_fresh``: the output shares memory with no input, the next call's output (``out2``) shares
    none with it while it is alive, and that call left its bits (``snapshot``) unchanged."""
    shared = [name for name, t in zip("qkv", ex.inputs, strict=True) if _overlaps(out, t)]
    if isinstance(out2, torch.Tensor) and _overlaps(out, out2):
        shared.append("the output of the next call (a reused buffer)")
    changed = not same_bits(out, snapshot)
    ex.verdicts["output_fresh"] = not shared and not changed
    if shared:
        ex.notes.append(f"output shares memory with {', '.join(shared)}")
    if changed:
        ex.notes.append("a later call overwrote this call's output")


# Facts a spec's ``inspect`` may record are prefixed so they never shadow a measured metric.
INSPECT_PREFIX = "plan_"


def record_inspection(ex: _Example) -> None:
    """Not a property: what the spec's ``inspect`` says about how the method ran this case (e.g.
    ``mixed``'s plan), added to the metrics as ``plan_<name>`` floats."""
    if ex.target.inspect is None:
        return
    try:
        facts = ex.target.inspect(
            *(t.clone() for t in ex.values), causal=ex.case.causal, sm_scale=ex.case.sm_scale
        )
        ex.metrics.update({f"{INSPECT_PREFIX}{name}": float(value) for name, value in facts.items()})
    except Exception as exc:
        ex.notes.append(f"inspect raised {_describe(exc)}; how the method ran this case not recorded")


def check_case(target: KernelTarget, case: Case, device: str) -> CaseResult:
    """Run ``target`` on ``case`` (twice: the checked call and one on identical inputs) and check every
    property."""
    ex = _Example(target, case, device)
    out = check_supported(ex)
    if out is None:
        failed = ex.verdicts["supported_or_raises"] is False
        return ex.finish("fail" if failed else "unsupported")
    check_inputs_unchanged(ex)
    if not check_shape(ex, out):
        return ex.finish("fail")
    snapshot = out.clone()
    check_accuracy(ex, out)
    report_quantization_split(ex, out)
    check_emulation(ex, out)
    record_inspection(ex)
    out2 = check_deterministic(ex, out)
    check_output_fresh(ex, out, out2, snapshot)
    return ex.finish("pass")
