"""Under the ci profile (derandomized, at most 200 examples) every broken kernel is caught, shrunk to a
case that shows its bug, and the correct kernels (fp32, honest INT8, a narrow-domain one) are never
flagged."""

import pytest

from harness.search.fuzz import fuzz, replay
from harness.search.targets import target_from_callable, target_from_spec
from kernels.registry import DISTRIBUTION_FAMILIES
from tests.harness import broken_kernels as bk

EXPECTED = {
    # kernel: (properties that may catch it, predicate the shrunk case must satisfy)
    "causal_top_left": ({"error_budget"}, lambda c: c.causal and c.nq != c.nk),
    "ragged_block_dropped": ({"error_budget"}, lambda c: c.nk % bk.BLOCK_N != 0),
    "gqa_wrong_heads": ({"error_budget"}, lambda c: c.hkv > 1 and c.hq > c.hkv),
    "sm_scale_ignored": ({"error_budget"}, lambda c: c.sm_scale is not None),
    "k_modified_in_place": ({"inputs_unchanged"}, lambda c: True),
    "nondeterministic": ({"deterministic"}, lambda c: c.nk > 1),
    "zero_scale_nan": ({"finite"}, lambda c: c.distribution == "zero_tokens"),
    "softmax_overflow": (
        {"finite", "error_budget"},
        lambda c: c.family in ("saturating", "outliers", "extreme"),
    ),
    # Judged as INT8 methods: only the emulation sees these under INT8's accuracy budgets.
    "int8_zeros_when_huge": ({"emulation"}, lambda c: c.family == "extreme"),
    "int8_missing_block": ({"emulation", "error_budget", "worst_row"}, lambda c: c.nk > 64),
    "int8_misscaled": ({"emulation"}, lambda c: True),
    "last_row_misscaled": ({"error_budget", "worst_row"}, lambda c: True),
    "assumes_contiguous": ({"finite", "error_budget", "worst_row"}, lambda c: c.layout != "hnd"),
    "keys_from_stride": ({"finite"}, lambda c: c.layout == "kv_cache"),
    "output_buffer_reused": ({"output_fresh"}, lambda c: True),
    "large_head_dim_truncated": ({"error_budget", "worst_row"}, lambda c: c.head_dim > 128),
    "narrow_domain_causal_diagonal": ({"error_budget", "worst_row", "finite"}, lambda c: c.causal),
}


def target_for(name):
    fn = bk.BROKEN.get(name) or bk.CORRECT[name]
    if name in bk.INT8_KERNELS:
        # Judged with the honest INT8 budgets and emulation: quantization error never catches them.
        return target_from_spec(bk.int8_spec(fn, name), name=name)
    return target_from_callable(fn, name=name)


def test_every_listed_bug_has_an_expectation():
    assert set(EXPECTED) == set(bk.BROKEN)


@pytest.mark.parametrize("name", sorted(bk.BROKEN))
def test_broken_kernel_is_caught_and_shrunk(name):
    target = target_for(name)
    report = fuzz(target, examples=200, seed=None, device="cpu", profile="ci", database=False)
    assert not report.ok, f"{name} was not caught in {report.examples} examples"
    assert report.examples <= 200
    failure = report.failures[0]
    properties, shows_bug = EXPECTED[name]
    assert failure.failed_property in properties, failure.message
    assert shows_bug(failure.case), str(failure.case)
    if name not in ("assumes_contiguous", "keys_from_stride"):
        # Layouts shrink towards contiguous HND when the bug does not need another one.
        assert failure.case.layout == "hnd", str(failure.case)
    # The reported case is exactly reproducible.
    again = replay(target, failure.case, "cpu")
    assert again.failed_property in properties


@pytest.mark.parametrize("name", sorted(bk.CORRECT))
def test_correct_kernels_are_never_flagged(name):
    report = fuzz(target_for(name), examples=200, seed=None, device="cpu", profile="ci", database=False)
    assert report.ok, report.failures[0].message if report.failures else ""
    assert report.examples == 200
    assert set(report.coverage["family"]) == set(DISTRIBUTION_FAMILIES)
    assert 0 <= report.worst.error_ratio <= 1
    if name == "narrow_domain":
        # The domain was learned, and at least 80% of the examples were spent inside it.
        domain = report.domain.domain
        assert domain.dtypes == ("float16",) and domain.head_dims == (64, 128) and domain.heads == ("mha",)
        assert domain.same_length and domain.length_multiple == 64
        assert report.coverage["domain"]["inside"] >= 160 and report.passed >= 160
    else:
        assert report.passed == 200


def test_ci_profile_is_deterministic():
    target = target_for("causal_top_left")
    a = fuzz(target, examples=200, seed=None, device="cpu", profile="ci", database=False)
    b = fuzz(target, examples=200, seed=None, device="cpu", profile="ci", database=False)
    assert a.failures[0].case == b.failures[0].case and a.examples == b.examples


def test_a_bug_inside_a_narrow_domain_needs_domain_learning():
    # Searched blindly (every axis unrestricted), nearly every example is refused and the causal bug of
    # narrow_domain_causal_diagonal goes unseen; with its domain learned, it is caught (test above).
    from harness.search.domain import Domain

    target = target_for("narrow_domain_causal_diagonal")
    blind = fuzz(target, examples=200, device="cpu", profile="ci", database=False, domain=Domain())
    assert blind.ok and blind.unsupported >= 190
    learned = fuzz(target, examples=200, device="cpu", profile="ci", database=False)
    assert not learned.ok and learned.domain.domain.length_multiple == 64
