"""Every method on the awkward shapes, against the float64 reference, within the spec's budget."""

from __future__ import annotations

import zlib

import pytest
import torch

from kernels import REGISTRY, attention
from kernels.reference import attention_reference
from tests.kernels.cases import AWKWARD, make_case, max_abs, on_device, rel_l2


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


AWKWARD_N = (1, 17, 63, 65, 129, 200)
HEAD_DIMS = (32, 64, 96, 128, 256)


PAIRS = [(i, j) for i in range(len(AWKWARD_N)) for j in range(len(AWKWARD_N))]
SAMPLED_PER_TEST = 4


def check_length_pairs(method: str, causal: bool, pairs) -> None:
    """(Nq, Nk) pairs of AWKWARD_N; head dim, dtype and head grouping rotate so each pair meets a new mix."""
    spec = REGISTRY[method]
    groups = ((8, 2), (8, 1), (2, 2), (4, 1))
    for i, j in pairs:
        n_q, n_k = AWKWARD_N[i], AWKWARD_N[j]
        hq, hkv = groups[(i + j) % len(groups)]
        d = HEAD_DIMS[(i + 2 * j) % len(HEAD_DIMS)]
        dtype = (torch.float16, torch.bfloat16)[(i + j) % 2]
        g = torch.Generator().manual_seed(1000 * i + j)
        q = on_device(torch.randn(1, hq, n_q, d, generator=g).to(dtype))
        k = on_device(torch.randn(1, hkv, n_k, d, generator=g).to(dtype))
        v = on_device(torch.randn(1, hkv, n_k, d, generator=g).to(dtype))
        out = attention(q, k, v, causal=causal, method=method)
        ref = attention_reference(q, k, v, causal=causal)
        budget = spec.budget_for("gaussian", dtype)
        where = f"Nq={n_q} Nk={n_k} D={d} {dtype} heads {hq}:{hkv}"
        assert not torch.isnan(out).any(), where
        assert rel_l2(out, ref) <= budget.max_rel_l2, where
        assert max_abs(out, ref) <= budget.max_abs, where


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_sampled_length_pairs(method, causal):
    """A rotating sample of the 36 pairs: across methods and masks the CI run meets most of them; the
    whole grid is ``test_every_length_pair`` (slow, nightly)."""
    offset = (sorted(REGISTRY).index(method) * 2 + causal) * SAMPLED_PER_TEST
    step = len(PAIRS) // SAMPLED_PER_TEST
    picked = [PAIRS[(offset + t * step) % len(PAIRS)] for t in range(SAMPLED_PER_TEST)]
    check_length_pairs(method, causal, picked)


@pytest.mark.slow
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_every_length_pair(method, causal):
    """All 36 (Nq, Nk) pairs."""
    check_length_pairs(method, causal, PAIRS)
