"""One attention kernel in four versions, recorded under one alias as if commits had changed it.

``correct`` is the fp32 reference kernel of tests/harness/broken_kernels.py. Each other version plants one
change that ``lowbit check`` must attribute correctly:

- ``planted_bug``: ignores ``causal`` (a real bug: the causal cases fail their error budget, the others
  still pass).
- ``precision_loss``: the output is off by a constant 0.3% scale (a drifted dequantization scale): within
  every budget, so no property fails, but rel_l2 grows several-fold on every case.
- ``slowdown``: correct, but sleeps 20 ms per call.

``fp16`` and ``fp16_slowed`` are the GPU pair of bench/gpu_verdicts.sh (the registered Triton kernel, and
the same with ~12% more work).
"""

from __future__ import annotations

import time

from tests.harness.broken_kernels import correct_fp32


def correct(q, k, v, *, causal=False, sm_scale=None):
    return correct_fp32(q, k, v, causal=causal, sm_scale=sm_scale)


def planted_bug(q, k, v, *, causal=False, sm_scale=None):
    return correct_fp32(q, k, v, causal=False, sm_scale=sm_scale)


def precision_loss(q, k, v, *, causal=False, sm_scale=None):
    out = correct_fp32(q, k, v, causal=causal, sm_scale=sm_scale)
    return (out.float() * 1.003).to(q.dtype)


def slowdown(q, k, v, *, causal=False, sm_scale=None):
    time.sleep(0.02)
    return correct_fp32(q, k, v, causal=causal, sm_scale=sm_scale)


def fp16(q, k, v, *, causal=False, sm_scale=None):
    """The registered fp16 Triton kernel (GPU runs: an A/A pair times it twice)."""
    from kernels import attention

    return attention(q, k, v, causal=causal, sm_scale=sm_scale, method="fp16")


def fp16_slowed(q, k, v, *, causal=False, sm_scale=None):
    """The fp16 kernel plus a discarded second launch on the first eighth of the queries: ~12% more
    work on prefill shapes (a whole second launch on single-query decode)."""
    out = fp16(q, k, v, causal=causal, sm_scale=sm_scale)
    fp16(q[:, :, : max(1, q.shape[2] // 8)], k, v, causal=causal, sm_scale=sm_scale)
    return out
