"""The types a kernel spec is made of: value families, error budgets, the spec itself.

Imports torch for dtypes and nothing else of lowbit or Triton, so the harness can describe, load and judge a
user's plain torch kernel without building lowbit's own Triton kernels. A spec names its launcher either as
a callable or as ``"module:function"``, resolved on first use.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

# Families of value distributions a low-bit kernel meets. Budgets are declared per family; the harness
# maps each concrete distribution it draws onto one of these names.
#   gaussian    N(0, 1) and uniform inputs at unit scale: the everyday case.
#   small       tiny magnitudes: logits near zero, attention close to uniform.
#   saturating  large logits: softmax close to one-hot, attention sinks, peaked attention.
#   outliers    heavy tails, per-channel outliers in Q/K, token outliers, per-head scales.
#   degenerate  constant, repeated and all-zero (padding) tokens.
#   extreme     magnitudes near the fp16 limit (finite).
DISTRIBUTION_FAMILIES: tuple[str, ...] = (
    "gaussian",
    "small",
    "saturating",
    "outliers",
    "degenerate",
    "extreme",
)


# The worst query row may be this many times further off than the whole tensor before it fails, when a
# budget names no row limit of its own. Rounding and quantization errors are spread evenly over rows, so
# an honest kernel's worst row (over up to a few thousand rows) stays within ~3x its whole-tensor error;
# a single wrong row at large N moves the whole-tensor error by well under 1% and only this check sees it.
ROW_FACTOR = 4.0


def _check_limit(name: str, value: float) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0:
        raise ValueError(f"ErrorBudget.{name}: expected a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class ErrorBudget:
    """Allowed error of an output against a reference (the FP32/FP64 oracle, or a method's emulation).

    Every limit is finite: a budget is a claim, and no error (NaN and inf included) passes an infinite
    one unnoticed. ``max_row_rel_l2`` bounds the worst query row's relative L2 error
    (``harness.search.metrics``); left out it is :data:`ROW_FACTOR` times ``max_rel_l2``.
    """

    max_rel_l2: float
    max_abs: float
    max_row_rel_l2: float | None = None

    def __post_init__(self) -> None:
        _check_limit("max_rel_l2", self.max_rel_l2)
        _check_limit("max_abs", self.max_abs)
        if self.max_row_rel_l2 is not None:
            _check_limit("max_row_rel_l2", self.max_row_rel_l2)

    @property
    def row_limit(self) -> float:
        """The limit on the worst row's relative L2 error."""
        return self.max_rel_l2 * ROW_FACTOR if self.max_row_rel_l2 is None else self.max_row_rel_l2


# Budgets of a kernel against its own float64 emulation (``KernelSpec.emulate``), per dtype. The
# emulation replays the method's quantizers and P steps exactly, so what is left is fp32 accumulation
# order, exp2 against exp, an occasional P step rounded the other way at a tie, and the final rounding
# of the output to the input dtype: 2^-11 relative for float16, 2^-8 for bfloat16. Measured worst over
# the harness's distributions (bench/calibrate_budgets.py), with headroom. Here ``max_abs`` is read
# relative to the largest magnitude of the emulated output (families span 1e-4 to 6e4), so one budget
# holds on every family, "extreme" included.
EMULATION_BUDGETS: dict[torch.dtype, ErrorBudget] = {
    # Measured worst in the interpreter: rel-L2 3.1e-4, row 4.6e-4, max-abs 4.8e-4 of the output's scale.
    torch.float16: ErrorBudget(max_rel_l2=2e-3, max_abs=4e-3, max_row_rel_l2=4e-3),
    # Measured worst: rel-L2 5.8e-3, row 7.6e-3, max-abs 8.7e-3 (P and the output rounded to 8 bits).
    torch.bfloat16: ErrorBudget(max_rel_l2=1.5e-2, max_abs=3e-2, max_row_rel_l2=3e-2),
}
# On the "extreme" family (|q|, |k| near 6e4) logits reach ~1e10. The kernels form them in fp32, whose
# spacing there is ~1e3, so two keys whose exact logits differ by less than that can trade places in
# a saturated softmax that float64 ranks the other way: that query's row moves to another value row.
# One such swap moves the row by the distance between two value rows, about its own size, and an
# element by up to twice the largest |v|, so on this family the per-row and per-element limits are
# sanity bounds; the whole-tensor limit (unchanged) is what stays tight. Measured: worst row 0.113 and
# max-abs 4.0e-2 of the output's scale on an H100 (nightly calibration); then 0.335 and 0.151 (int4_seed,
# fp16, Nk 4608) and max-abs 0.1003 (int8_qk_smooth) in a nightly-profile fuzz on an H200.
EXTREME_EMULATION_ROW = 1.0
EXTREME_EMULATION_ABS = 0.5


def emulation_budget(
    dtype: torch.dtype,
    family: str | None = None,
    own: dict[torch.dtype, ErrorBudget] | None = None,
) -> ErrorBudget:
    """Budget against a method's emulation at ``dtype`` on ``family``: the method's ``own`` per-dtype
    budget, else :data:`EMULATION_BUDGETS`; widened on "extreme" (see EXTREME_EMULATION_ROW)."""
    if own and dtype in own:
        budget = own[dtype]
    else:
        budget = EMULATION_BUDGETS.get(dtype, EMULATION_BUDGETS[torch.bfloat16])
    if family != "extreme":
        return budget
    return ErrorBudget(
        max_rel_l2=budget.max_rel_l2,
        max_abs=max(budget.max_abs, EXTREME_EMULATION_ABS),
        max_row_rel_l2=max(budget.row_limit, EXTREME_EMULATION_ROW),
    )


AttentionFn = Callable[..., torch.Tensor]
DequantizeFn = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
EmulateFn = Callable[..., torch.Tensor]
InspectFn = Callable[..., Mapping[str, float]]


@dataclass(frozen=True)
class KernelSpec:
    """Everything the harness needs to know about one attention method.

    ``launcher`` is ``fn(q, k, v, *, causal=False, sm_scale=None)`` with the semantics of
    :func:`kernels.attention`, or its ``"module:function"`` path, imported only when :attr:`fn` is used.
    ``bits`` gives the bit width of each operand of the two products (``q``, ``k``, ``p``, ``v``).
    ``budgets`` maps a family of :data:`DISTRIBUTION_FAMILIES` to its budget; a family missing from
    the mapping uses ``budgets["default"]``.
    ``dequantize(q, k, v, *, causal=False, sm_scale=None)``, when given, returns float32 copies of
    the inputs exactly as the kernel sees them after quantization (same shapes as the inputs), so the
    oracle run on them measures kernel arithmetic alone.
    ``emulate(q, k, v, *, causal=False, sm_scale=None)``, when given, is a float64 emulation of the
    method's own algorithm (its quantizers, its P steps, its softmax denominator rule, then exact
    arithmetic), returning a float64 (B, Hq, Nq, D) tensor: the kernel is judged tightly against it, so
    quantization loss never hides an arithmetic bug.
    ``inspect(q, k, v, *, causal=False, sm_scale=None)``, when given, returns facts about how the method
    runs these inputs (name -> float; for ``mixed`` the share of heads at each width), recorded with
    every result of the case so a change of plan is visible beside a change of error.
    ``length_budgets`` maps an upper bound on the number of keys to per-family budgets that hold up to
    that length ("at Nk <= 4096, rel-L2 <= x"), for methods whose error really grows with Nk.
    """

    name: str
    launcher: AttentionFn | str
    bits: Mapping[str, int]
    head_dims: tuple[int, ...]
    dtypes: tuple[torch.dtype, ...]
    budgets: Mapping[str, ErrorBudget]
    description: str = ""
    dequantize: DequantizeFn | None = None
    source: str = field(default="", compare=False)

    # Optional per-dtype overrides: dtype -> {family or "default": budget}. bf16 keeps 8 bits of
    # mantissa, so a bf16 output alone is rounded by up to 2^-9 and needs a looser budget than fp16.
    dtype_budgets: Mapping[torch.dtype, Mapping[str, ErrorBudget]] = field(default_factory=dict)
    emulate: EmulateFn | None = None
    length_budgets: Mapping[int, Mapping[str, ErrorBudget]] = field(default_factory=dict)
    # Per-dtype budget against ``emulate``; a dtype missing here uses :data:`EMULATION_BUDGETS`.
    emulation_budgets: Mapping[torch.dtype, ErrorBudget] = field(default_factory=dict)
    inspect: InspectFn | None = None

    def emulation_budget_for(self, dtype: torch.dtype, family: str | None = None) -> ErrorBudget:
        """Budget of the kernel against its own emulation at ``dtype`` (on ``family``'s values)."""
        return emulation_budget(dtype, family, self.emulation_budgets)

    def budget_for(
        self, family: str, dtype: torch.dtype | None = None, n_k: int | None = None
    ) -> ErrorBudget:
        """Budget for ``family`` (and ``dtype``, ``n_k`` when given).

        The tightest length bucket that covers ``n_k`` and names the family (or "default") wins; then the
        dtype override, then the family, then the default.
        """
        if n_k is not None:
            for bound in sorted(self.length_budgets):
                bucket = self.length_budgets[bound]
                if n_k <= bound and (family in bucket or "default" in bucket):
                    return bucket.get(family, bucket.get("default"))
        override = self.dtype_budgets.get(dtype, {}) if dtype is not None else {}
        if family in override:
            return override[family]
        if family in self.budgets:
            return self.budgets[family]
        if "default" in override:
            return override["default"]
        return self.budgets["default"]

    @property
    def fn(self) -> AttentionFn:
        """The launcher, imported on first use when it was given as ``"module:function"``."""
        if callable(self.launcher):
            return self.launcher
        module, _, attr = self.launcher.partition(":")
        return getattr(importlib.import_module(module), attr)

    def supports(self, head_dim: int, dtype: torch.dtype) -> bool:
        return head_dim in self.head_dims and dtype in self.dtypes
