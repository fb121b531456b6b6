"""Registry of attention methods: what each computes, at which bit widths, and how wrong it may be.

The harness consumes these specs: it fuzzes only the head dims and dtypes a spec claims, judges each
example against the budget of the example's value-distribution family, and, where ``dequantize`` is
given, runs the oracle a second time on the dequantized inputs to separate quantization error from
kernel arithmetic error.
"""

from __future__ import annotations

import torch

from kernels import emulate
from kernels._validate import HEAD_DIMS
from kernels.spec import DISTRIBUTION_FAMILIES, EMULATION_BUDGETS, ErrorBudget, KernelSpec

# --------------------------------------------------------------------------------------------------
# The methods. Budgets are measured errors (see docs/perf.md and tests/kernels) with headroom; they
# are relative L2 and max-abs error of the output against an FP32/FP64 oracle on the original inputs.


def _dequantize_int8(q, k, v, *, causal=False, sm_scale=None):
    """float32 Q, K, V exactly as the ``int8`` kernel sees them (per-token Q/K, per-channel V)."""
    from kernels import quant

    q8, qs = quant.quantize_per_token(q)
    k8, ks = quant.quantize_per_token(k)
    v8, vs = quant.quantize_per_channel(v)
    return (
        quant.dequantize_per_token(q8, qs),
        quant.dequantize_per_token(k8, ks),
        quant.dequantize_per_channel(v8, vs).contiguous(),
    )


def _dequantize_int8_qk(q, k, v, *, causal=False, sm_scale=None, smooth_k=False):
    """float32 Q, K, V as the ``int8_qk`` kernel sees them (V is used unquantized).

    With ``smooth_k`` the returned K is the centered K the kernel quantizes; attention is the same
    as with the original K because softmax ignores a per-row constant.
    """
    from kernels import quant

    center = torch.mean(k, dim=2, dtype=torch.float32) if smooth_k and k.size(2) > 0 else None
    q8, qs = quant.quantize_per_token(q)
    k8, ks = quant.quantize_per_token(k, center=center)
    return quant.dequantize_per_token(q8, qs), quant.dequantize_per_token(k8, ks), v.float()


def _dequantize_int8_qk_smooth(q, k, v, *, causal=False, sm_scale=None):
    return _dequantize_int8_qk(q, k, v, causal=causal, sm_scale=sm_scale, smooth_k=True)


def _budgets(**limits: tuple[float, ...]) -> dict[str, ErrorBudget]:
    """family -> (max rel-L2, max abs[, max worst-row rel-L2; default kernels.spec.ROW_FACTOR x rel-L2])."""
    return {family: ErrorBudget(*values) for family, values in limits.items()}


def _build_registry() -> dict[str, KernelSpec]:
    def spec(
        name, launcher, bits, head_dims, description, source, dequantize=None, emulation=None
    ) -> KernelSpec:
        # Every method is judged against its float64 emulation (kernels/emulate.py) as well as the oracle.
        return KernelSpec(
            name=name,
            launcher=launcher,
            bits=dict(zip("qkpv", bits, strict=True)),
            head_dims=head_dims,
            dtypes=(torch.float16, torch.bfloat16),
            budgets=BUDGETS[name][torch.float16],
            dtype_budgets={torch.bfloat16: BUDGETS[name][torch.bfloat16]},
            description=description,
            dequantize=dequantize,
            source=source,
            emulate=getattr(emulate, f"emulate_{name}"),
            emulation_budgets=emulation or {},
        )

    specs = [
        spec(
            "fp16",
            "kernels.flash_fp16:flash_attention_fp16",
            (16, 16, 16, 16),
            HEAD_DIMS,
            "FlashAttention-2 forward, fp32 online softmax and accumulation (baseline)",
            "kernels/flash_fp16.py",
        ),
        spec(
            "int8",
            "kernels.flash_int8:flash_attention_int8",
            (8, 8, 8, 8),
            HEAD_DIMS,
            "fully INT8: per-token Q/K, P at 1/127, per-channel V, int32 accumulation",
            "kernels/flash_int8.py",
            _dequantize_int8,
            INT8_EMULATION,
        ),
        spec(
            "int8_qk",
            "kernels.flash_int8:flash_attention_int8_qk",
            (8, 8, 16, 16),
            HEAD_DIMS,
            "INT8 Q·K^T (per-token scales), P·V in the input dtype with fp32 accumulation",
            "kernels/flash_int8.py",
            _dequantize_int8_qk,
        ),
        spec(
            "int8_qk_smooth",
            "kernels.flash_int8:flash_attention_int8_qk_smooth",
            (8, 8, 16, 16),
            HEAD_DIMS,
            "int8_qk with K smoothing: per-head mean of K removed before quantizing",
            "kernels/flash_int8.py",
            _dequantize_int8_qk_smooth,
        ),
    ]
    return {spec.name: spec for spec in specs}


def get_spec(name: str) -> KernelSpec:
    """The spec of method ``name``; ValueError naming the known methods otherwise."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"method: expected one of {', '.join(sorted(REGISTRY))}, got {name!r}")
    return REGISTRY[name]


_F16, _BF16 = torch.float16, torch.bfloat16
# (max rel-L2, max abs) per family, against the oracle on the original inputs. Each is about 2x the worst
# error measured by bench/calibrate_budgets.py over the harness's own distributions (the ci corpus plus
# a Hypothesis search that climbs towards larger error), on the CPU interpreter and on an H200 with
# sequences up to 16k; docs/perf.md has the tables. max-abs scales with the family's magnitudes
# (harness/search/distributions.py): unit-scale V, V up to 100 for heavy tails, up to 6e4 for "extreme".
_FP16_F16 = _budgets(
    default=(2e-3, 1e-2),
    gaussian=(2e-3, 1e-2),
    small=(2e-3, 1e-5),
    saturating=(2e-3, 1e-2),
    outliers=(2e-3, 1e-1),
    degenerate=(2e-3, 1e-2),
    # V near 6e4: one fp16 ulp there is 32, and the P·V sum adds ~sqrt(N) such roundings.
    extreme=(2e-3, 4e3),
)
# bf16: the output's own rounding (2^-9 relative) and P rounded to bf16 give up to ~5.5e-3.
_FP16_BF16 = _budgets(
    default=(1e-2, 5e-2),
    gaussian=(1e-2, 5e-2),
    small=(1e-2, 5e-5),
    saturating=(1.2e-2, 1e-1),
    outliers=(1e-2, 1.0),
    degenerate=(1e-2, 5e-2),
    extreme=(1e-2, 6e4),
)
# INT8 Q/K: logit error ~ |q||k|/127 per token; peaked softmax (saturating) amplifies it. int8 adds P at
# 1/127 steps (probabilities below 1/254 of the row maximum vanish) and per-channel V, so its error
# grows with the number of keys a row spreads over: gaussian 2e-2 at N <= 200, 6.5e-2 at N ~ 600-16k.
# "extreme" (Q, K near 6e4, logits ~1e10): per-token INT8 moves logits by ~1e8, which reorders the
# keys a saturated softmax picks; no INT8-Q/K method can be accurate there (measured rel-L2 up to 1.3).
# The budget there is large but finite: rel-L2 2 (an output as far from the truth as two unrelated
# convex combinations of the values), max-abs 1.3e5 (twice the largest |V|), worst row 3 (measured 1.5).
# What the
# method does claim on "extreme" -- that the kernel computes its own algorithm -- is the emulation check,
# as tight there as on every other family; NaN/Inf fail as everywhere.
_EXTREME_INT8 = (2.0, 1.3e5, 3.0)
_INT8 = {
    **_budgets(
        default=(1.2e-1, 1.0),
        gaussian=(1.2e-1, 1.0),
        small=(2e-2, 5e-5),
        saturating=(2.5e-1, 5.0),
        # Worst row: a token whose values are small beside a channel outlier elsewhere is quantized with
        # the outlier's per-channel V scale, so its row can be wrong by more than its own size (2.4 seen).
        outliers=(2.5e-1, 2e2, 5.0),
        degenerate=(1.8e-1, 1.0),
    ),
    "extreme": ErrorBudget(*_EXTREME_INT8),
}
_INT8_QK = {
    **_budgets(
        default=(3e-2, 2.5e-1),
        gaussian=(3e-2, 2.5e-1),
        small=(8e-3, 5e-5),
        saturating=(1.5e-1, 5.0),
        # Worst row: per-token INT8 K next to outlier tokens (0.8 measured).
        outliers=(2.5e-1, 2e2, 2.0),
        degenerate=(3e-2, 3e-1),
    ),
    "extreme": ErrorBudget(*_EXTREME_INT8),
}
# int8 against its emulation: P is rounded to steps of 1/127 after exp2, and the GPU's approximate exp2
# puts an occasional P on the other side of a step than float64 does. One such step in a row whose
# weights sum to about one moves that row by up to |v| / 127 (8e-3 of a unit-scale row; 4.5e-3 and
# 7.4e-3 measured on an H100), so this method's worst-row and max-abs limits against its emulation
# allow a few steps; the whole-tensor limit stays that of EMULATION_BUDGETS.
INT8_EMULATION = {
    _F16: ErrorBudget(max_rel_l2=2e-3, max_abs=3e-2, max_row_rel_l2=3e-2),
    _BF16: ErrorBudget(max_rel_l2=1.5e-2, max_abs=4e-2, max_row_rel_l2=4e-2),
}
BUDGETS: dict[str, dict[torch.dtype, dict[str, ErrorBudget]]] = {
    "fp16": {_F16: _FP16_F16, _BF16: _FP16_BF16},
    "int8": {_F16: _INT8, _BF16: _INT8},
    "int8_qk": {_F16: _INT8_QK, _BF16: _INT8_QK},
    "int8_qk_smooth": {_F16: _INT8_QK, _BF16: _INT8_QK},
}

REGISTRY: dict[str, KernelSpec] = _build_registry()

__all__ = [
    "BUDGETS",
    "DISTRIBUTION_FAMILIES",
    "EMULATION_BUDGETS",
    "REGISTRY",
    "ErrorBudget",
    "KernelSpec",
    "get_spec",
]
