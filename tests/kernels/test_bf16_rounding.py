"""The kernels' own float32 -> bfloat16 rounding (round to nearest, ties to even), which the interpreter
path of the INT4 methods needs because Triton 3.6's interpreter truncates that cast."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.kv_cache import _to_bfloat16_rne
from tests.conftest import DEVICE


@triton.jit
def _round_kernel(X, Y, N: tl.constexpr):
    offs = tl.arange(0, N)
    tl.store(Y + offs, _to_bfloat16_rne(tl.load(X + offs)))


def test_rounds_like_torch_ties_to_even():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1024, generator=g) * torch.logspace(-6, 4, 1024)
    # Exact ties: bfloat16 values with one more bit set halfway to the next; half round down, half up.
    on_grid = torch.randn(1024, generator=g).to(torch.bfloat16).float()
    ties = (on_grid.view(torch.int32) | 0x8000).view(torch.float32)
    for values in (x, ties):
        y = torch.empty_like(values, device=DEVICE)
        _round_kernel[(1,)](values.to(DEVICE), y, N=1024)
        expected = values.to(torch.bfloat16).float()
        assert torch.equal(y.cpu(), expected)
    assert not torch.equal(ties, ties.to(torch.bfloat16).float())  # the ties are ties
