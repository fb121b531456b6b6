"""The GPU profiles' 2^31-offset cases: large enough to overflow 32-bit offsets, sized to the memory."""

from harness.search.long_cases import OFFSET_LIMIT, long_cases, max_offset
from harness.search.profiles import LONG_CASES

GIB = 2**30


def test_long_cases_pass_the_32_bit_offset_limit():
    cases = long_cases((64, 128, 256), ("bfloat16",), 140 * GIB, 2)
    assert [c.layout for c in cases] == ["bnhd", "fused"]
    for case in cases:
        assert max_offset(case) > OFFSET_LIMIT
        assert case.head_dim == 128 and case.dtype == "bfloat16"
    by_batch, fused = cases
    # The batch case stays short per sequence (quadratic cost); the fused one is a single long sequence.
    assert (
        by_batch.nq == 4096 and by_batch.batch * by_batch.hq * by_batch.nq * by_batch.head_dim > OFFSET_LIMIT
    )
    assert fused.batch == 1 and fused.nq * (fused.hq + 2 * fused.hkv) * fused.head_dim > OFFSET_LIMIT


def test_long_cases_respect_memory_and_profiles():
    assert long_cases((64,), ("float16",), 8 * GIB, 2) == []
    smaller = long_cases((64,), ("float16",), 80 * GIB, 2)
    assert 1 <= len(smaller) <= 2
    assert long_cases((64,), ("float16",), 140 * GIB, 0) == []
    assert LONG_CASES["dev"] == 0 and LONG_CASES["ci"] >= 1
