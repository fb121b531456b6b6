"""The sage methods forced onto their Hopper TMA kernel, as bare callables for ``lowbit fuzz``.

``kernel="auto"`` takes the TMA kernel only for large calls (:func:`kernels.flash_sage_fp8.prefer_tma_sage`),
which the ci profile's lengths rarely reach; fuzzing these covers the kernel itself on every shape:

    lowbit fuzz --kernel fp8_tma=tests.kernels.tma_variants:sage_fp8_tma --device cuda --head-dims 96,128
"""

from __future__ import annotations

from kernels.flash_sage_fp8 import flash_attention_sage_fp8, flash_attention_sage_qk_int8


def sage_qk_int8_tma(q, k, v, *, causal=False, sm_scale=None):
    return flash_attention_sage_qk_int8(q, k, v, causal=causal, sm_scale=sm_scale, kernel="tma")


def sage_fp8_tma(q, k, v, *, causal=False, sm_scale=None):
    return flash_attention_sage_fp8(q, k, v, causal=causal, sm_scale=sm_scale, kernel="tma")
