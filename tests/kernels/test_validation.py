"""Bad input raises ValueError naming what was expected; edge sizes follow the documented rules."""

from __future__ import annotations

import pytest
import torch

from kernels import REGISTRY, attention
from tests.kernels.cases import on_device

METHODS = sorted(REGISTRY)


def _qkv(dtype=torch.float16, d=64, nq=5, nk=7, hq=2, hkv=2, b=1):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(b, hq, nq, d, generator=g).to(dtype)
    k = torch.randn(b, hkv, nk, d, generator=g).to(dtype)
    v = torch.randn(b, hkv, nk, d, generator=g).to(dtype)
    return on_device(q), on_device(k), on_device(v)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: _qkv(dtype=torch.float32), "float16 or torch.bfloat16"),
        (lambda: (_qkv()[0], *_qkv(dtype=torch.bfloat16)[1:]), "same as q"),
        (lambda: _qkv(d=80), "head dim"),
        (lambda: _qkv(d=16), "head dim"),
        (lambda: _qkv(hq=3, hkv=2), "divides"),
        (lambda: (_qkv()[0][0], *_qkv()[1:]), "4-d"),
        (lambda: (_qkv()[0], _qkv()[1], _qkv(nk=8)[2]), "shape of k"),
        (lambda: (_qkv(b=2)[0], *_qkv()[1:]), "batch size"),
        (lambda: (_qkv()[0], *(t[..., :32] for t in _qkv()[1:])), "head dim 64"),
        (lambda: (_qkv()[0].transpose(-1, -2).contiguous().transpose(-1, -2), *_qkv()[1:]), "contiguous"),
        (lambda: (_qkv()[0], _qkv()[1].to("meta"), _qkv()[2]), "device"),
        (lambda: (_qkv()[0].cpu().numpy(), *_qkv()[1:]), "torch.Tensor"),
    ],
    ids=[
        "fp32",
        "mixed-dtype",
        "d80",
        "d16",
        "heads-not-divisible",
        "3d",
        "k-v-shape",
        "batch",
        "k-head-dim",
        "last-dim-strided",
        "device",
        "not-a-tensor",
    ],
)
def test_bad_inputs_raise_value_error(method, build, match):
    q, k, v = build()
    with pytest.raises(ValueError, match=match):
        attention(q, k, v, method=method)


def test_unknown_method_lists_known_methods():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="int8_qk") as info:
        attention(q, k, v, method="fp8")
    for name in REGISTRY:
        assert name in str(info.value)


@pytest.mark.parametrize("sm_scale", [0.0, -1.0, float("nan"), float("inf"), "0.1", True])
def test_bad_sm_scale(sm_scale):
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="sm_scale"):
        attention(q, k, v, sm_scale=sm_scale, method="fp16")


def test_huge_token_stride_is_rejected():
    q, k, v = _qkv()
    # A (1, 2, 7, 64) view whose token stride is 2^23 elements, without allocating that memory.
    k = torch.empty(0, dtype=torch.float16, device=k.device).set_(
        k.untyped_storage(), 0, (1, 2, 7, 64), (64, 64, 2**23, 1)
    )
    with pytest.raises(ValueError, match="token stride"):
        attention(q, k, v, method="fp16")


def test_causal_must_be_bool():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="causal"):
        attention(q, k, v, causal=1, method="fp16")


@pytest.mark.parametrize("method", METHODS)
def test_empty_queries_give_empty_output(method):
    q, k, v = _qkv(nq=0)
    out = attention(q, k, v, method=method)
    assert out.shape == (1, 2, 0, 64) and out.dtype == q.dtype


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("causal", [False, True])
def test_no_keys_give_zeros(method, causal):
    q, k, v = _qkv(nk=0)
    out = attention(q, k, v, causal=causal, method=method)
    assert out.shape == q.shape
    assert torch.equal(out, torch.zeros_like(q))
