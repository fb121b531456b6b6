"""Registry of attention methods: what each computes, at which bit widths, and how wrong it may be.

The harness consumes these specs: it fuzzes only the head dims and dtypes a spec claims, judges each
example against the budget of the example's value-distribution family, and, where ``dequantize`` is
given, runs the oracle a second time on the dequantized inputs to separate quantization error from
kernel arithmetic error.
"""

from __future__ import annotations

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


AttentionFn = Callable[..., torch.Tensor]
DequantizeFn = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class KernelSpec:
    """Everything the harness needs to know about one attention method.

    ``fn(q, k, v, *, causal=False, sm_scale=None)`` has the semantics of :func:`kernels.attention`.
    ``bits`` gives the bit width of each operand of the two products (``q``, ``k``, ``p``, ``v``).
    ``budgets`` maps a family of :data:`DISTRIBUTION_FAMILIES` to its budget; a family missing from
    the mapping uses ``budgets["default"]``.
    ``dequantize(q, k, v, *, causal=False, sm_scale=None)``, when given, returns float32 copies of
    the inputs exactly as the kernel sees them after quantization (same shapes as the inputs), so the
    oracle run on them measures kernel arithmetic alone.
    """

    name: str
    fn: AttentionFn
    bits: Mapping[str, int]
    head_dims: tuple[int, ...]
    dtypes: tuple[torch.dtype, ...]
    budgets: Mapping[str, ErrorBudget]
    description: str = ""
    dequantize: DequantizeFn | None = None
    source: str = field(default="", compare=False)

    def budget_for(self, family: str) -> ErrorBudget:
        if family in self.budgets:
            return self.budgets[family]
        return self.budgets["default"]

    def supports(self, head_dim: int, dtype: torch.dtype) -> bool:
        return head_dim in self.head_dims and dtype in self.dtypes
