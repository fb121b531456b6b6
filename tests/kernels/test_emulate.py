"""The float64 emulations: grouped-query attention is attention with K and V repeated per query head."""

from __future__ import annotations

import pytest
import torch

from kernels import REGISTRY


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_gqa_emulation_equals_repeated_heads(method):
    g = torch.Generator().manual_seed(7)
    q = torch.randn(2, 6, 19, 32, generator=g).half()
    k = torch.randn(2, 2, 37, 32, generator=g).half()
    v = torch.randn(2, 2, 37, 32, generator=g).half()
    emulate = REGISTRY[method].emulate
    grouped = emulate(q, k, v, causal=True)
    repeated = emulate(q, k.repeat_interleave(3, dim=1), v.repeat_interleave(3, dim=1), causal=True)
    assert grouped.shape == q.shape and grouped.dtype == torch.float64
    torch.testing.assert_close(grouped, repeated, rtol=1e-12, atol=1e-12)
