"""Each value distribution has the structure its name promises."""

import dataclasses

import pytest
import torch

from harness.search.cases import Case
from harness.search.distributions import DISTRIBUTION_NAMES, DISTRIBUTIONS, FP16_SAFE_MAX, family_of
from harness.search.oracle import reference_attention
from kernels.registry import DISTRIBUTION_FAMILIES

CASE = Case(
    batch=2,
    hq=4,
    hkv=2,
    nq=24,
    nk=40,
    head_dim=32,
    dtype="float16",
    causal=False,
    sm_scale=None,
    distribution="gaussian",
    seed=7,
)


def inputs(distribution, seed=7, **changes):
    case = dataclasses.replace(CASE, distribution=distribution, seed=seed, **changes)
    return [t.float() for t in case.make_inputs("cpu")]


def test_every_distribution_maps_to_a_registry_family_and_every_family_is_used():
    families = {family for family, _ in DISTRIBUTIONS.values()}
    assert families == set(DISTRIBUTION_FAMILIES)
    for name in DISTRIBUTION_NAMES:
        assert family_of(name) in DISTRIBUTION_FAMILIES
    with pytest.raises(ValueError, match="unknown distribution"):
        family_of("nope")


def test_different_seeds_give_different_tensors():
    a, b = inputs("gaussian", seed=1), inputs("gaussian", seed=2)
    assert not torch.equal(a[0], b[0])


def test_zero_tokens_has_all_zero_key_tokens():
    zero_rows = 0
    for seed in range(5):
        _, k, v = inputs("zero_tokens", seed=seed)
        zero = (k == 0).all(dim=-1)
        zero_rows += int(zero.sum())
        assert torch.equal(zero, (v == 0).all(dim=-1))
    assert zero_rows > 0


def test_constant_and_repeated_tokens():
    _, k, v = inputs("constant_tokens")
    assert torch.equal(k, k[:, :, :1].expand_as(k)) and torch.equal(v, v[:, :, :1].expand_as(v))
    _, k, _ = inputs("repeated_tokens")
    distinct = {tuple(row.tolist()) for row in k[0, 0]}
    assert 1 <= len(distinct) <= 4 < k.shape[2]


def test_peaked_attention_is_nearly_one_hot():
    q, k, _ = inputs("peaked")
    eye = torch.eye(k.shape[2]).expand(*k.shape[:2], -1, -1)
    # Attention weights themselves: use the identity as values, so the output rows are the weights.
    p = reference_attention(q, k, eye.to(k.dtype), causal=False, sm_scale=None)
    assert (p.max(dim=-1).values > 0.9).float().mean() > 0.9


def test_attention_sink_draws_most_of_the_attention_to_the_first_key():
    q, k, _ = inputs("attention_sink")
    eye = torch.eye(k.shape[2]).expand(*k.shape[:2], -1, -1)
    p = reference_attention(q, k, eye.to(k.dtype), causal=False, sm_scale=None)
    assert p[..., 0].mean() > 0.5


def test_magnitudes_of_extreme_small_and_outliers():
    q, k, v = inputs("fp16_limit")
    assert FP16_SAFE_MAX / 2 * 0.99 <= v.abs().max() <= FP16_SAFE_MAX
    assert 16 * 0.99 <= q.abs().max() <= FP16_SAFE_MAX
    # Plain floats: pytest 9's approx iterates over tensors and fails on 0-d ones.
    assert float(k.abs().max()) == pytest.approx(float(q.abs().max()), rel=1e-2)
    q, k, v = inputs("gaussian_tiny")
    assert q.abs().max() < 0.1 and k.abs().max() < 0.1 and v.abs().max() < 0.01
    q, k, _ = inputs("channel_outliers")
    per_channel = q.abs().mean(dim=(0, 1, 2))
    assert per_channel.max() > 4 * per_channel.median()
    q, _, _ = inputs("head_scales")
    per_head = q.abs().mean(dim=(0, 2, 3))
    assert per_head.max() > 3 * per_head.min()
