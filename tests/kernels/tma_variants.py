"""The sage methods forced onto their Hopper TMA kernel, as kernel specs for ``lowbit fuzz``.

``kernel="auto"`` takes the TMA kernel only for large calls (:func:`kernels.flash_sage_fp8.prefer_tma_sage`),
which the ci profile's lengths rarely reach; fuzzing these covers the kernel itself on every shape. Each
spec is its method's registered one (per-family budgets, float64 emulation) with the launcher forced onto
the TMA kernel and the head dims it runs:

    lowbit fuzz --kernel fp8_tma=tests.kernels.tma_variants:SAGE_FP8_TMA --device cuda
"""

from __future__ import annotations

import dataclasses

import triton

from kernels import REGISTRY
from kernels.flash_sage_fp8 import flash_attention_sage_fp8, flash_attention_sage_qk_int8
from kernels.flash_sage_tma import SAGE_TMA_BLOCK_D


def sage_qk_int8_tma(q, k, v, *, causal=False, sm_scale=None):
    return flash_attention_sage_qk_int8(q, k, v, causal=causal, sm_scale=sm_scale, kernel="tma")


def sage_fp8_tma(q, k, v, *, causal=False, sm_scale=None):
    return flash_attention_sage_fp8(q, k, v, causal=causal, sm_scale=sm_scale, kernel="tma")


def _forced(method: str, launcher) -> object:
    spec = REGISTRY[method]
    dims = tuple(d for d in spec.head_dims if triton.next_power_of_2(d) in SAGE_TMA_BLOCK_D)
    return dataclasses.replace(spec, name=f"{method}_tma", launcher=launcher, head_dims=dims)


SAGE_QK_INT8_TMA = _forced("sage_qk_int8", sage_qk_int8_tma)
SAGE_FP8_TMA = _forced("sage_fp8", sage_fp8_tma)
