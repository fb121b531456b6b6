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


@dataclass(frozen=True)
class ErrorBudget:
    """Allowed error of an output against the FP32/FP64 oracle."""

    max_rel_l2: float
    max_abs: float

    @property
    def claimed(self) -> bool:
        """False for :data:`NO_CLAIM`: the method promises nothing about accuracy on that family."""
        return math.isfinite(self.max_rel_l2) or math.isfinite(self.max_abs)


# A family on which a method makes no accuracy claim: every error passes the budget check, while
# finiteness, determinism and the other properties are still checked.
NO_CLAIM = ErrorBudget(math.inf, math.inf)


AttentionFn = Callable[..., torch.Tensor]
DequantizeFn = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
EmulateFn = Callable[..., torch.Tensor]


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
