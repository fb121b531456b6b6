"""Every method on every value-distribution family stays within the budget its spec declares."""

from __future__ import annotations

import pytest
import torch

from kernels import REGISTRY, attention
from kernels.reference import attention_reference
from kernels.registry import DISTRIBUTION_FAMILIES
from tests.kernels.cases import max_abs, rel_l2
from tests.kernels.inputs import make_qkv


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("family", DISTRIBUTION_FAMILIES)
@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_family_within_budget(method, family, dtype):
    q, k, v = make_qkv(
        family, (1, 4, 70, 64), (1, 2, 90, 64), dtype, seed=DISTRIBUTION_FAMILIES.index(family)
    )
    out = attention(q, k, v, causal=True, method=method)
    ref = attention_reference(q, k, v, causal=True)
    budget = REGISTRY[method].budget_for(family, dtype)
    assert torch.isfinite(out).all()
    assert rel_l2(out, ref) <= budget.max_rel_l2
    assert max_abs(out, ref) <= budget.max_abs


def test_unknown_family_is_rejected():
    with pytest.raises(ValueError, match="family"):
        make_qkv("laplace", (1, 1, 4, 32), (1, 1, 4, 32), torch.float16, seed=0)
