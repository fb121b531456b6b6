"""Every method on the awkward shapes, against the float64 reference, within the spec's budget."""

from __future__ import annotations

import zlib

import pytest
import torch

from kernels import REGISTRY, attention
from kernels.reference import attention_reference
from tests.kernels.cases import AWKWARD, make_case, max_abs, rel_l2


@pytest.mark.parametrize("case", AWKWARD, ids=lambda c: c.id)
@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_method_matches_float64_reference(method, case):
    spec = REGISTRY[method]
    q, k, v = make_case(case, seed=zlib.crc32(case.id.encode()))
    out = attention(q, k, v, causal=case.causal, method=method)
    ref = attention_reference(q, k, v, causal=case.causal)
    assert out.shape == q.shape and out.dtype == q.dtype and out.is_contiguous()
    assert not torch.isnan(out).any()
    budget = spec.budget_for("gaussian", case.dtype)
    assert rel_l2(out, ref) <= budget.max_rel_l2
    assert max_abs(out, ref) <= budget.max_abs
    if case.causal and case.n_q > case.n_k:
        # Bottom-right alignment: query i sees key j iff j <= i + Nk - Nq; these rows see none.
        blind = case.n_q - case.n_k
        assert torch.equal(out[:, :, :blind], torch.zeros_like(out[:, :, :blind]))
        assert out[:, :, blind:].abs().sum() > 0
