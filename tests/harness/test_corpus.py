"""The regression corpus: deterministic, nested by suite, sized by device, filtered to the kernel; shards."""

from __future__ import annotations

import random

import pytest

from harness.run.corpus import SUITES, build_corpus, case_work, in_shard, parse_shard, shard_of, templates
from harness.search.cases import Case
from harness.search.distributions import DISTRIBUTION_NAMES, family_of
from kernels.registry import DISTRIBUTION_FAMILIES

ALL_DIMS = (32, 64, 96, 128, 256)
BOTH = ("float16", "bfloat16")


def ids(cases):
    return [c.case_id for c in cases]


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_deterministic_and_nested_by_suite(device):
    quick, ci, nightly = (build_corpus(s, device, ALL_DIMS, BOTH) for s in SUITES)
    assert ids(quick) == ids(build_corpus("quick", device, ALL_DIMS, BOTH))
    assert len(set(ids(nightly))) == len(nightly)  # no duplicates
    assert len(quick) < len(ci) < len(nightly)
    # A template keeps its case id in every suite, so histories of different suites line up.
    primary_quick = [c for c in quick if c.head_dim == 64]
    assert set(ids(primary_quick)) <= set(ids(ci)) <= set(ids(nightly))


def test_quick_cpu_corpus_is_tiny_and_covers_every_family():
    quick = build_corpus("quick", "cpu", ALL_DIMS, BOTH)
    assert 4 <= len(quick) <= 8
    assert {c.family for c in quick} == set(DISTRIBUTION_FAMILIES)
    assert max(case_work(c) for c in quick) <= 4 * 64 * 80 * 64
    assert {c.head_layout for c in quick} == {"mha", "gqa", "mqa"}
    assert any(c.causal for c in quick) and not all(c.causal for c in quick)
    assert {c.dtype for c in quick} == set(BOTH)


def test_ci_covers_every_distribution_and_claimed_head_dim():
    for device in ("cpu", "cuda"):
        ci = build_corpus("ci", device, ALL_DIMS, BOTH)
        assert {c.distribution for c in ci} == set(DISTRIBUTION_NAMES)
        assert {c.head_dim for c in ci} == set(ALL_DIMS)


def test_gpu_shapes_are_realistic_and_cpu_shapes_are_not():
    gpu = build_corpus("quick", "cuda", ALL_DIMS, BOTH)
    cpu_nightly = build_corpus("nightly", "cpu", ALL_DIMS, BOTH)
    assert min(c.nk for c in gpu) >= 1024
    assert max(c.nk for c in cpu_nightly) <= 256


def test_filtered_to_what_the_kernel_claims():
    only = build_corpus("nightly", "cpu", (32, 128), ("bfloat16",))
    assert {c.head_dim for c in only} == {32, 128}
    assert {c.dtype for c in only} == {"bfloat16"}
    # Without 64 the primary head dim is the smallest claimed.
    assert build_corpus("quick", "cpu", (96, 128), BOTH)[0].head_dim == 96


def test_templates_are_valid_cases_with_known_distributions():
    for suite in SUITES:
        for device in ("cpu", "cuda"):
            for t in templates(suite, device):
                assert t.distribution in DISTRIBUTION_NAMES
                assert t.hq % t.hkv == 0
                assert family_of(t.distribution) in DISTRIBUTION_FAMILIES


def test_first_quick_case_is_pinned():
    # Case ids key every result's history: changing the corpus silently would cut every history in two.
    first = build_corpus("quick", "cpu", ALL_DIMS, BOTH)[0]
    assert first == Case.from_params(
        {
            "batch": 1,
            "hq": 2,
            "hkv": 2,
            "nq": 64,
            "nk": 64,
            "head_dim": 64,
            "dtype": "float16",
            "causal": False,
            "sm_scale": None,
            "distribution": "gaussian",
            "seed": 854440962,
        }
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown suite"):
        build_corpus("weekly", "cpu", ALL_DIMS, BOTH)
    with pytest.raises(ValueError, match="unknown device"):
        build_corpus("quick", "tpu", ALL_DIMS, BOTH)
    with pytest.raises(ValueError, match="head dim"):
        build_corpus("quick", "cpu", (), BOTH)
    with pytest.raises(ValueError, match="dtype"):
        build_corpus("quick", "cpu", ALL_DIMS, ())


@pytest.mark.parametrize(
    ("text", "parsed"), [("1/1", (1, 1)), ("1/4", (1, 4)), ("4/4", (4, 4)), (" 2/3", (2, 3))]
)
def test_parse_shard(text, parsed):
    assert parse_shard(text) == parsed


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "-1/2", "1", "a/b", "1/2/3", ""])
def test_parse_shard_rejects(text):
    with pytest.raises(ValueError, match="malformed shard"):
        parse_shard(text)


def test_shards_partition_any_case_list():
    rng = random.Random(11)
    case_ids = [f"{rng.getrandbits(64):016x}" for _ in range(2000)]
    for count in (1, 2, 3, 8):
        parts = [{c for c in case_ids if in_shard(c, (i, count))} for i in range(1, count + 1)]
        assert set().union(*parts) == set(case_ids)
        assert sum(len(p) for p in parts) == len(case_ids)  # disjoint
        # Hash-based: roughly even.
        assert min(len(p) for p in parts) > 0.8 * len(case_ids) / count
    assert all(in_shard(c, None) for c in case_ids)
    assert [shard_of(c, 5) for c in case_ids] == [shard_of(c, 5) for c in case_ids]


def test_cli_offers_exactly_the_corpus_suites():
    from harness.cli.run import SUITE_CHOICES

    assert SUITE_CHOICES == SUITES


def test_gpu_ci_carries_benchmark_sized_cases():
    ci = build_corpus("ci", "cuda", ALL_DIMS, BOTH)
    bench = [c for c in ci if c.nk >= 4096 and c.nq == c.nk]
    shapes = {(c.head_dim, c.nk, c.causal) for c in bench}
    assert {(128, 16384, False), (128, 16384, True), (64, 16384, False), (64, 4096, True)} <= shapes
    assert all(c.dtype == "float16" and c.distribution == "gaussian" for c in bench)
    # Pinned head dims: a kernel that does not claim one gets no such case; a bf16-only kernel runs bf16.
    no128 = build_corpus("ci", "cuda", (64,), ("bfloat16",))
    assert {c.head_dim for c in no128} == {64}
    assert {(c.head_dim, c.dtype) for c in no128 if c.nk == 16384} == {(64, "bfloat16")}
    assert not any(c.nk >= 4096 and c.nq > 1 for c in build_corpus("quick", "cuda", ALL_DIMS, BOTH))
    assert max(c.nk for c in build_corpus("ci", "cpu", ALL_DIMS, BOTH)) <= 256


def test_pinned_cases_leave_every_other_case_id_alone(monkeypatch):
    from harness.run import corpus

    with_bench = {suite: ids(build_corpus(suite, "cuda", ALL_DIMS, BOTH)) for suite in SUITES}
    monkeypatch.setattr(corpus, "_GPU_BENCH", ())
    for suite in SUITES:
        without = ids(build_corpus(suite, "cuda", ALL_DIMS, BOTH))
        # The same cases in the same order, the pinned ones added at the end (none in quick).
        assert with_bench[suite][: len(without)] == without
        assert len(with_bench[suite]) - len(without) == (0 if suite == "quick" else 5)
