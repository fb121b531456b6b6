"""Rounding to the e4m3 grid in fp32 arithmetic, for the CPU interpreter's FP8 paths.

Triton 3.6's interpreter mis-rounds fp8 casts (a mantissa carry into the next binade is dropped), so
under ``TRITON_INTERPRET=1`` the sage kernels round P and V with this function instead of a cast: the
operands are the values the GPU's FP8 MMA multiplies; only the instruction differs.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def round_e4m3_fp32(x):
    """Round fp32 ``x`` to the nearest e4m3 value (ties to even, saturating at ±448), in fp32.

    Used only in the CPU interpreter (see the module docstring). An e4m3 number has 3 mantissa bits and
    exponents down to -6 (subnormals below, in steps of 2^-9): the quantum is 2^(max(e, -6) - 3).
    """
    a = tl.abs(x)
    e = ((a.to(tl.int32, bitcast=True) >> 23) & 0xFF) - 127
    e = tl.maximum(e, -6)
    quantum = ((e - 3 + 127) << 23).to(tl.float32, bitcast=True)
    y = a / quantum
    # Adding and removing 1.5 * 2^23 rounds to an integer, ties to even, in fp32 (|y| < 16 here).
    r = (y + 12582912.0) - 12582912.0
    r = tl.minimum(r * quantum, 448.0)
    return tl.where(x < 0, -r, r)
