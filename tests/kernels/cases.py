"""Hand-picked awkward shapes, shared by the kernel tests, and error helpers."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st

from harness.search.metrics import error_metrics
from tests.conftest import DEVICE


@dataclass(frozen=True)
class Case:
    batch: int
    heads_q: int
    heads_kv: int
    n_q: int
    n_k: int
    head_dim: int
    dtype: torch.dtype
    causal: bool

    @property
    def id(self) -> str:
        dt = "bf16" if self.dtype == torch.bfloat16 else "f16"
        c = "causal" if self.causal else "full"
        return (
            f"b{self.batch}h{self.heads_q}:{self.heads_kv}-q{self.n_q}k{self.n_k}-d{self.head_dim}-{dt}-{c}"
        )


F16, BF16 = torch.float16, torch.bfloat16

# A covering set, not the cartesian product: every Nq and Nk in {1, 17, 63, 65, 129, 200}, every head
# dim in {32, 64, 96, 128, 256}, both dtypes, causal with Nq < Nk, Nq == Nk and Nq > Nk (rows with no
# visible key), GQA 8:2, MQA 8:1, 2:1 and MHA, batch 2.
AWKWARD: tuple[Case, ...] = (
    Case(1, 8, 2, 1, 200, 64, F16, True),
    Case(1, 8, 1, 17, 63, 32, BF16, False),
    Case(2, 2, 2, 63, 17, 96, F16, True),
    Case(1, 2, 1, 65, 129, 128, BF16, True),
    Case(1, 1, 1, 129, 1, 256, F16, False),
    Case(1, 2, 2, 200, 65, 64, BF16, True),
    Case(1, 8, 2, 17, 17, 128, F16, False),
    Case(1, 1, 1, 1, 1, 96, BF16, True),
    Case(1, 4, 4, 129, 200, 32, F16, True),
    Case(1, 1, 1, 65, 63, 256, BF16, True),
)


def make_case(case: Case, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape_q = (case.batch, case.heads_q, case.n_q, case.head_dim)
    shape_kv = (case.batch, case.heads_kv, case.n_k, case.head_dim)
    return tuple(on_device(torch.randn(s, generator=g).to(case.dtype)) for s in (shape_q, shape_kv, shape_kv))


def on_device(t: torch.Tensor) -> torch.Tensor:
    """``t`` on the device the tests run on: tensors are drawn on the CPU from a seed (the same values
    everywhere), then moved, so the same test runs in the interpreter and on the GPU."""
    return t.to(DEVICE)


def seeded_randn(g, *shape, dtype=torch.float16, scale=1.0, bnhd=False) -> torch.Tensor:
    """N(0, scale^2) values of ``shape`` from the CPU generator ``g``, in ``dtype``, on the test device.
    ``bnhd``: stored as (B, N, H, D) and seen as (B, H, N, D), head and token strides swapped."""
    if bnhd:
        b, h, n, d = shape
        return on_device((torch.randn(b, n, h, d, generator=g) * scale).to(dtype)).transpose(1, 2)
    return on_device((torch.randn(*shape, generator=g) * scale).to(dtype))


def rel_l2(out: torch.Tensor, ref: torch.Tensor) -> float:
    """The harness's relative L2 (NaN/Inf output gives inf, so it never passes a budget)."""
    return error_metrics(out, ref.double())["rel_l2"]


def max_abs(out: torch.Tensor, ref: torch.Tensor) -> float:
    return error_metrics(out, ref.double())["max_abs"]


def noisy_middle_head_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """fp16 (q, k, v) on the test device: GQA 2 over three KV heads, head dim 96, 96 tokens; the middle KV
    head's queries (heads 2 and 3) carry one channel at 1000x (a massive activation), so per-token INT8
    rounds their other channels to nothing and that head is noisy (kernels.quant.Q_NOISE_MAX)."""
    g = torch.Generator().manual_seed(11)
    q, k, v = (torch.randn(1, h, 96, 96, generator=g) for h in (6, 3, 3))
    q[:, 2:4, :, 0] *= 1000.0
    return tuple(on_device(t.half()) for t in (q, k, v))


def check_noisy_head_recomputed(out, emulate, tol: float, monkeypatch) -> None:
    """``out`` (from :func:`noisy_middle_head_inputs`) within ``tol`` of ``emulate()`` everywhere, and, with
    the emulation's noisy rule switched off (per-token Q everywhere), more than 5 tol away on the noisy
    head's queries and within tol on the others: the kernel computed that head with Q as given."""
    import triton.language as tl

    from kernels import quant

    assert rel_l2(out, emulate()) <= tol
    monkeypatch.setattr(quant, "Q_NOISE_BOUND", tl.constexpr(float("inf")))
    per_token = emulate()
    assert rel_l2(out[:, 2:4], per_token[:, 2:4]) > 5 * tol
    assert rel_l2(out[:, :2], per_token[:, :2]) <= tol


def tma_shapes(head_dims) -> dict:
    """Hypothesis strategies for the TMA kernels' tests (``@given(**tma_shapes(dims))``): ragged lengths,
    GQA, batch, ``head_dims``, dtype, strided (B, N, H, D) views, causal, and a tensor seed."""
    return dict(
        n_q=st.integers(1, 70),
        n_k=st.integers(1, 100),
        heads=st.sampled_from([(1, 1), (2, 1), (4, 2)]),
        batch=st.integers(1, 2),
        head_dim=st.sampled_from(head_dims),
        bf16=st.booleans(),
        bnhd=st.booleans(),
        causal=st.booleans(),
        seed=st.integers(0, 2**31 - 1),
    )
