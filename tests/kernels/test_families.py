"""Every method on every value distribution the harness draws stays within its spec's family budget, and
within the tight budget of its own float64 emulation (kernels/emulate.py), "extreme" included.

Inputs come from the harness's own distributions (harness.search.distributions), so the budgets checked here
are the ones `lowbit fuzz` and `lowbit run` judge by.
"""

from __future__ import annotations

import math
import zlib

import pytest
import torch

from harness.search.cases import Case
from harness.search.distributions import DISTRIBUTION_NAMES
from harness.search.metrics import error_metrics
from kernels import REGISTRY, attention
from kernels.reference import attention_reference
from tests.conftest import DEVICE
from tests.kernels.cases import max_abs, rel_l2

# Known failures as (method, distribution, dtype) -> the issue tracking each, strict xfails in the CPU
# interpreter. None today: the seven int4-family bf16 cases of issue 13 were the interpreter's float32
# dots (its bf16 path) skipping the kernels' rounding of dequantized Q/K to bf16, which the GPU's bf16
# dots and the emulation both do (kernels.kv_cache._dequant_halves, ROUND_BF16).
KNOWN_FAILURES: dict[tuple[str, str, str], str] = {}


def _params():
    for method in sorted(REGISTRY):
        for distribution in DISTRIBUTION_NAMES:
            for dtype in ("float16", "bfloat16"):
                reason = KNOWN_FAILURES.get((method, distribution, dtype)) if DEVICE == "cpu" else None
                marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
                name = f"{method}-{distribution}-{dtype}"
                yield pytest.param(method, distribution, dtype, marks=marks, id=name)


@pytest.mark.parametrize(("method", "distribution", "dtype"), list(_params()))
def test_distribution_within_budget(method, distribution, dtype):
    case = Case(
        batch=1,
        hq=4,
        hkv=2,
        nq=40,
        nk=70,
        head_dim=64,
        dtype=dtype,
        causal=True,
        sm_scale=None,
        distribution=distribution,
        seed=zlib.crc32(distribution.encode()),
    )
    q, k, v = case.make_inputs(DEVICE)
    out = attention(q, k, v, causal=True, method=method)
    ref = attention_reference(q, k, v, causal=True)
    spec = REGISTRY[method]
    assert torch.isfinite(out).all()
    budget = spec.budget_for(case.family, q.dtype)
    assert math.isfinite(budget.max_rel_l2) and math.isfinite(budget.max_abs)
    assert rel_l2(out, ref) <= budget.max_rel_l2
    assert max_abs(out, ref) <= budget.max_abs
    emul = spec.emulate(q, k, v, causal=True)
    tight = spec.emulation_budget_for(q.dtype, case.family)
    m = error_metrics(out, emul)
    assert m["rel_l2"] <= tight.max_rel_l2, m
    assert m["worst_row_rel_l2"] <= tight.row_limit, m


# Found by `lowbit fuzz --device cuda` on the sage methods forced onto their TMA kernel (docs/perf.md
# "v14"); every kernel of these methods fails it alike, on the GPU and in the interpreter, each within
# 2e-4 of its emulation. Pareto-tailed queries against 31 keys: Q's per-token INT8 scale is set by the
# row's largest element, and that alone (float64, K exact) gives rel-L2 0.59 against the outliers budget
# 0.5. `int8` (budget 0.65) passes, and `mixed` (fp16 where the quantization error is large) gives 0.018.
_PARETO_QUERIES = Case(
    batch=3, hq=2, hkv=2, nq=2, nk=31, head_dim=96, dtype="float16", causal=False, sm_scale=None,
    distribution="heavy_tailed", seed=3,
)  # fmt: skip
_PER_TOKEN_Q_FAILS = (
    "issue 12 (every method passes lowbit fuzz): Q's per-token INT8 scale on Pareto-tailed rows"
)


@pytest.mark.parametrize(
    "method",
    [
        pytest.param(
            m,
            marks=[pytest.mark.xfail(reason=_PER_TOKEN_Q_FAILS, strict=True)]
            if m in ("int8_qk", "int8_qk_smooth", "sage_fp8", "sage_qk_int8")
            else [],
        )
        for m in sorted(REGISTRY)
    ],
)
def test_pareto_tailed_queries_within_budget(method):
    q, k, v = _PARETO_QUERIES.make_inputs(DEVICE)
    out = attention(q, k, v, method=method)
    spec = REGISTRY[method]
    tight = spec.emulation_budget_for(q.dtype, _PARETO_QUERIES.family)
    assert error_metrics(out, spec.emulate(q, k, v, causal=False))["rel_l2"] <= tight.max_rel_l2
    budget = spec.budget_for(_PARETO_QUERIES.family, q.dtype)
    assert rel_l2(out, attention_reference(q, k, v)) <= budget.max_rel_l2
