"""``mixed``: the per-head plan (what gets 4, 8, 16 bits and why) and the kernel that follows it."""

from __future__ import annotations

import pytest
import torch

from kernels import REGISTRY, attention
from kernels.mixed import (
    MixedPlan,
    dequantized_operands,
    flash_attention_mixed,
    format_plan,
    mixed_plan,
    plan_summary,
)
from kernels.reference import attention_reference
from tests.kernels.cases import on_device, rel_l2

EMULATION = {torch.float16: 2e-3, torch.bfloat16: 1.2e-2}


def _qkv(seed, hq=4, hkv=2, nq=33, nk=70, d=64, dtype=torch.float16):
    g = torch.Generator().manual_seed(seed)
    return (
        on_device(torch.randn(1, hq, nq, d, generator=g).to(dtype)),
        on_device(torch.randn(1, hkv, nk, d, generator=g).to(dtype)),
        on_device(torch.randn(1, hkv, nk, d, generator=g).to(dtype)),
    )


def test_plan_keeps_gaussian_heads_at_4_bits_and_protects_outlier_heads():
    q, k, _ = _qkv(1)
    plan = mixed_plan(q, k)
    assert plan.q_bits.tolist() == [[4, 4, 4, 4]] and plan.k_bits.tolist() == [[4, 4]]
    assert float(plan.k_err4.max()) < 0.1 and float(plan.k_err8.max()) < float(plan.k_err4.min()) / 8
    # KV head 1 gets channel outliers that move the logits: 4 bits would cost ~0.25 in logit error.
    k[:, 1, :, :4] = k[:, 1, :, :4] * 10 + 5
    plan = mixed_plan(q, k)
    assert plan.k_bits.tolist() == [[4, 8]]
    assert float(plan.k_err4[0, 1]) > 0.1 >= float(plan.k_err8[0, 1])
    text = format_plan(plan)
    assert "k b=0: bits per head [ 4  8]" in text and "k 1/1/0" in text
    # The plan follows the logits it protects: the same K is 4-bit safe at a tiny sm_scale.
    assert mixed_plan(q, k, sm_scale=0.01).k_bits.tolist() == [[4, 4]]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_every_width_matches_emulation_and_oracle(dtype):
    q, k, v = _qkv(2, hq=4, hkv=2, nq=40, nk=50, d=96, dtype=dtype)
    k = k + 0.5
    # One plan with every width on both operands.
    zq, zk = on_device(torch.zeros(1, 4)), on_device(torch.zeros(1, 2))
    plan = MixedPlan(
        on_device(torch.tensor([[4, 8, 16, 4]], dtype=torch.int32)),
        on_device(torch.tensor([[16, 8]], dtype=torch.int32)),
        zq,
        zq,
        zk,
        zk,
    )
    out = flash_attention_mixed(q, k, v, causal=True, plan=plan)
    dq, dk = dequantized_operands(q, k, plan=plan)
    assert rel_l2(out, attention_reference(dq, dk, v, causal=True)) <= EMULATION[dtype]
    ref = attention_reference(q, k, v, causal=True)
    assert rel_l2(out, ref) <= REGISTRY["mixed"].budget_for("gaussian", dtype).max_rel_l2
    # Query head 2 at 16 bits against K head 1 at 8 bits is nearly exact.
    assert rel_l2(out[:, 2:3], ref[:, 2:3]) < 3e-2


def test_outlier_heads_are_far_more_accurate_than_int4():
    q, k, v = _qkv(3)
    k[:, 0, :, :4] = k[:, 0, :, :4] * 10 + 5
    ref = attention_reference(q, k, v)
    out = attention(q, k, v, method="mixed")
    assert rel_l2(out, ref) < rel_l2(attention(q, k, v, method="int4"), ref) / 3
    assert rel_l2(out, REGISTRY["mixed"].emulate(q, k, v)) <= 2e-3


def test_bad_plan_raises():
    q, k, v = _qkv(4)
    good = mixed_plan(q, k)
    wrong_shape = MixedPlan(
        good.q_bits[:, :2], good.k_bits, good.q_err4, good.q_err8, good.k_err4, good.k_err8
    )
    with pytest.raises(ValueError, match="plan: expected widths of shapes"):
        flash_attention_mixed(q, k, v, plan=wrong_shape)
    wrong_width = MixedPlan(
        good.q_bits * 0 + 5, good.k_bits, good.q_err4, good.q_err8, good.k_err4, good.k_err8
    )
    with pytest.raises(ValueError, match="4, 8, 16"):
        flash_attention_mixed(q, k, v, plan=wrong_width)


def test_plan_is_recorded_with_every_result():
    """The plan travels with the case's metrics (plan_q4 ... plan_qk_bits), so the store keeps it."""
    from harness.search.cases import Case
    from harness.search.properties import check_case
    from harness.search.targets import load_kernel
    from tests.conftest import DEVICE

    q, k, _ = _qkv(1)
    k[:, 1, :, :4] = k[:, 1, :, :4] * 10 + 5
    plan = mixed_plan(q, k)
    summary, counts = plan_summary(plan), plan.counts()
    assert summary["k4"] == summary["k8"] == 0.5 and summary["k16"] == 0.0
    assert [summary[f"q{w}"] for w in (4, 8, 16)] == [counts["q"][w] / 4 for w in (4, 8, 16)]
    q_mean = sum(w * n for w, n in counts["q"].items()) / 4
    assert summary["qk_bits"] == pytest.approx((q_mean + 6) / 2)

    case = Case.from_json(
        '{"batch":1,"causal":false,"distribution":"gaussian","dtype":"float16","head_dim":32,"hkv":2,'
        '"hq":4,"nk":40,"nq":24,"seed":3,"sm_scale":null}'
    )
    result = check_case(load_kernel("mixed"), case, DEVICE)
    assert result.status == "pass"
    plan = {k: v for k, v in result.metrics.items() if k.startswith("plan_")}
    assert plan["plan_q4"] + plan["plan_q8"] + plan["plan_q16"] == 1.0
    assert plan["plan_k4"] + plan["plan_k8"] + plan["plan_k16"] == 1.0
    assert 4.0 <= plan["plan_qk_bits"] <= 16.0
    assert not any(k.startswith("plan_") for k in check_case(load_kernel("int8"), case, DEVICE).metrics)
