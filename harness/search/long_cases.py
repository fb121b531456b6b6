"""A few GPU cases whose element offsets pass 2^31: the 32-bit offset overflow real Triton kernels shipped.

A kernel that computes ``b * stride_b`` or ``n * stride_n`` in 32-bit integers reads the wrong memory
(or faults) once an input spans more than 2^31 elements, which no small case reaches. Two shapes get
there at a bearable cost (attention is quadratic in the length):

* ``batch``: many sequences of moderate length in the (B, N, H, D) layout models hold: the batch offset
  of the last sequences passes 2^31.
* ``fused``: one long sequence laid out as views into a fused QKV projection (B, N, Hq + 2 Hkv, D), the
  shape of SageAttention#386: the token offset ``n * (Hq + 2 Hkv) * D`` passes 2^31.

Cases are kept only if they fit in the device memory given (inputs, output, the float32 oracle's
copies and score blocks, with headroom), so a smaller GPU runs fewer of them rather than failing.
"""

from __future__ import annotations

from harness.search.cases import Case

OFFSET_LIMIT = 2**31
# Bytes per input element needed in all: the fp16/bf16 input and output, float32 copies of q, k, v for
# the oracle, the second and third kernel calls' fresh inputs, the kernel's own quantized copies.
_BYTES_PER_ELEMENT = 24
# Score blocks of the oracle and the allocator's slack.
_FIXED_BYTES = 4 * 2**30


def _fits(case: Case, free_bytes: int) -> bool:
    elements = max(case.batch * (case.hq + 2 * case.hkv) * max(case.nq, case.nk) * case.head_dim, 1)
    return elements * _BYTES_PER_ELEMENT + _FIXED_BYTES <= free_bytes


def _candidates(head_dim: int, dtype: str) -> list[Case]:
    # Batch: B * N * Hq * D = 130 * 4096 * 32 * 128 > 2^31 elements in q; GQA 8:1 keeps K and V smaller.
    heads = 32 * 128 // head_dim
    batch = OFFSET_LIMIT // (4096 * heads * head_dim) + 2
    by_batch = Case(batch, heads, heads // 8, 4096, 4096, head_dim, dtype, True, None, "gaussian", 1, "bnhd")
    # Fused: one sequence, 64 query and 64 key/value heads; the token stride is 192 * D elements.
    n = OFFSET_LIMIT // (192 * head_dim) + 4096
    fused = Case(1, 64, 64, n, n, head_dim, dtype, False, None, "gaussian", 2, "fused")
    return [by_batch, fused]


def long_cases(
    head_dims: tuple[int, ...], dtypes: tuple[str, ...], free_bytes: int, count: int
) -> list[Case]:
    """Up to ``count`` cases whose input offsets pass 2^31, at the largest claimed head dim <= 128 (or the
    smallest claimed), the first claimed dtype, fitting in ``free_bytes`` of device memory."""
    if count <= 0 or not head_dims or not dtypes:
        return []
    small = [d for d in head_dims if d <= 128]
    head_dim = max(small) if small else min(head_dims)
    return [c for c in _candidates(head_dim, dtypes[0]) if _fits(c, free_bytes)][:count]


def max_offset(case: Case) -> int:
    """The largest element offset inside any input's memory for ``case``'s layout (what must not wrap)."""
    tokens = max(case.nq, case.nk)
    if case.layout == "fused":
        return case.batch * tokens * (case.hq + 2 * case.hkv) * case.head_dim
    return case.batch * case.hq * case.nq * case.head_dim
