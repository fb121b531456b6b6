"""The oracle against torch's SDPA and against a hand-written bottom-right causal mask."""

import math

import pytest
import torch
import torch.nn.functional as F

import harness.search.oracle as oracle
from harness.search.oracle import default_oracle_dtype, reference_attention


def rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("hq, hkv", [(2, 2), (4, 2), (3, 1)])
def test_matches_sdpa_when_nq_equals_nk(causal, hq, hkv):
    q, k, v = rand(2, hq, 19, 16, seed=1), rand(2, hkv, 19, 16, seed=2), rand(2, hkv, 19, 16, seed=3)
    ref = F.scaled_dot_product_attention(
        q, k.repeat_interleave(hq // hkv, 1), v.repeat_interleave(hq // hkv, 1), is_causal=causal, scale=0.3
    )
    out = reference_attention(q, k, v, causal=causal, sm_scale=0.3)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nq, nk", [(5, 9), (9, 5), (1, 7), (7, 1)])
def test_causal_is_bottom_right_and_empty_rows_are_zero(nq, nk):
    q, k, v = rand(1, 2, nq, 8, seed=4), rand(1, 2, nk, 8, seed=5), rand(1, 2, nk, 8, seed=6)
    out = reference_attention(q, k, v, causal=True)
    for i in range(nq):
        last = i + nk - nq
        if last < 0:
            assert torch.equal(out[:, :, i], torch.zeros_like(out[:, :, i]))
            continue
        s = q[:, :, i : i + 1] @ k[:, :, : last + 1].transpose(-1, -2) / math.sqrt(8)
        expect = torch.softmax(s, dim=-1) @ v[:, :, : last + 1]
        torch.testing.assert_close(out[:, :, i : i + 1], expect, rtol=1e-12, atol=1e-12)


def test_default_scale_is_inverse_sqrt_head_dim():
    q, k, v = rand(1, 1, 6, 64, seed=7), rand(1, 1, 6, 64, seed=8), rand(1, 1, 6, 64, seed=9)
    torch.testing.assert_close(
        reference_attention(q, k, v), reference_attention(q, k, v, sm_scale=0.125), rtol=0, atol=0
    )


def test_chunked_queries_give_the_same_result(monkeypatch):
    q, k, v = rand(1, 2, 50, 8, seed=10), rand(1, 2, 30, 8, seed=11), rand(1, 2, 30, 8, seed=12)
    whole = reference_attention(q, k, v, causal=True)
    monkeypatch.setattr(oracle, "_SCORE_BLOCK_ELEMENTS", 2 * 30 * 7)
    torch.testing.assert_close(reference_attention(q, k, v, causal=True), whole, rtol=1e-13, atol=1e-13)


def test_half_inputs_are_upcast_exactly_and_dtype_follows_device():
    q = rand(1, 1, 4, 8, seed=13).half()
    out32 = reference_attention(q, q, q, dtype=torch.float32)
    assert out32.dtype == torch.float32
    assert default_oracle_dtype("cpu") == torch.float64
    assert default_oracle_dtype("cuda") == torch.float32


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="multiple"):
        reference_attention(rand(1, 3, 4, 8), rand(1, 2, 4, 8), rand(1, 2, 4, 8))
    with pytest.raises(ValueError, match="must agree"):
        reference_attention(rand(1, 2, 4, 8), rand(1, 2, 4, 8), rand(1, 2, 5, 8))
    with pytest.raises(ValueError, match="4-d"):
        reference_attention(rand(2, 4, 8), rand(2, 4, 8), rand(2, 4, 8))
