"""fuzz(): budgets of examples, sizes, callbacks, the example database, seeds and unsupported cases."""

import dataclasses

import pytest
import torch

from harness.search.fuzz import cpu_threads, fuzz
from harness.search.profiles import TINY, SizeLimits, database_path, hypothesis_settings, size_limits
from harness.search.targets import target_from_callable, target_from_spec
from tests.harness import broken_kernels as bk


def correct():
    return target_from_callable(bk.correct_fp32, name="correct")


def test_every_example_is_reported_and_within_the_size_limits():
    seen = []
    limits = SizeLimits(max_batch=1, max_hq=2, max_n=40, max_work=2 * 40 * 40)
    report = fuzz(
        correct(),
        examples=30,
        seed=None,
        device="cpu",
        profile="ci",
        on_result=seen.append,
        database=False,
        sizes=limits,
    )
    assert report.ok and report.examples == 30 == len(seen)
    assert all(r.phase == "explore" and r.status == "pass" for r in seen)
    for r in seen:
        c = r.case
        assert c.batch == 1 and c.hq <= 2 and c.nq <= 40 and c.nk <= 40
    assert sum(report.coverage["family"].values()) == 30
    assert sum(report.coverage["shape_class"].values()) == 30


def test_shrink_steps_are_flagged_and_the_failure_is_the_last_shrunk_case():
    seen = []
    target = target_from_callable(bk.causal_top_left, name="top_left")
    report = fuzz(
        target, examples=200, seed=None, device="cpu", profile="ci", on_result=seen.append, database=False
    )
    shrinks = [r for r in seen if r.phase == "shrink"]
    assert report.shrink_steps == len(shrinks) > 0
    assert all(r.phase == "explore" for r in seen[: report.examples])
    failing = [r for r in seen if r.status == "fail"]
    assert report.failures[0].case == failing[-1].case


def test_keep_going_reports_one_failure_per_failing_family():
    target = target_from_callable(bk.causal_top_left, name="top_left")
    first = fuzz(target, examples=120, seed=None, device="cpu", profile="ci", database=False)
    every = fuzz(target, examples=120, seed=None, device="cpu", profile="ci", database=False, keep_going=True)
    assert len(first.failures) == 1
    assert len(every.failures) > 1
    assert len({f.case.family for f in every.failures}) == len(every.failures)


def test_a_seed_makes_a_random_search_reproducible():
    target = target_from_callable(bk.gqa_wrong_heads, name="gqa")
    runs = [fuzz(target, examples=60, seed=99, device="cpu", profile="dev", database=False) for _ in range(2)]
    assert runs[0].failures[0].case == runs[1].failures[0].case


def nan_on_huge_values(q, k, v, *, causal=False, sm_scale=None):
    """Wrong only in the "extreme" family (searched last): NaN when |v| is near the float16 limit."""
    out = bk.correct_fp32(q, k, v, causal=causal, sm_scale=sm_scale)
    return torch.where(v.abs().amax() > 1e4, torch.full_like(out, float("nan")), out)


def test_a_failure_found_once_is_replayed_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI", raising=False)
    target = target_from_callable(nan_on_huge_values, name="huge")
    first = fuzz(target, examples=60, seed=None, device="cpu", profile="dev", database=True)
    assert not first.ok and first.failures[0].case.family == "extreme"
    assert first.examples > 50  # five clean families were searched before "extreme"
    assert any(database_path("huge", "cpu").rglob("*"))
    seen = []
    again = fuzz(
        target, examples=60, seed=None, device="cpu", profile="dev", database=True, on_result=seen.append
    )
    assert not again.ok and again.examples == 1
    assert seen[0].case == first.failures[0].case == again.failures[0].case


def test_a_seeded_run_neither_reads_nor_writes_the_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI", raising=False)
    target = target_from_callable(nan_on_huge_values, name="huge")
    runs = [fuzz(target, examples=60, seed=3, device="cpu", profile="dev", database=True) for _ in range(2)]
    assert runs[0].examples == runs[1].examples > 50
    assert runs[0].failures[0].case == runs[1].failures[0].case
    assert not (tmp_path / ".lowbit").exists()


def test_ci_profile_never_uses_the_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = target_from_callable(bk.sm_scale_ignored, name="scale")
    fuzz(target, examples=100, seed=None, device="cpu", profile="ci", database=True)
    assert not any(database_path("scale", "cpu").rglob("*.*"))
    assert hypothesis_settings("ci", database=tmp_path).database is None
    assert hypothesis_settings("ci").derandomize


def test_profiles_under_ci_env_are_derandomized(monkeypatch, tmp_path):
    monkeypatch.setenv("CI", "true")
    s = hypothesis_settings("dev", database=tmp_path)
    assert s.derandomize and s.database is None and s.deadline is None
    monkeypatch.delenv("CI")
    s = hypothesis_settings("dev", database=tmp_path)
    assert not s.derandomize and s.database is not None


def test_sizes_scale_with_device_and_profile():
    assert size_limits("dev", "cpu").max_n <= size_limits("ci", "cpu").max_n <= 160
    assert size_limits("nightly", "cuda").max_n >= 8192
    assert size_limits("ci", "cuda").max_work > 100 * size_limits("ci", "cpu").max_work
    assert TINY.max_n < size_limits("dev", "cpu").max_n
    with pytest.raises(ValueError, match="profile"):
        size_limits("weekly", "cpu")


def test_unclaimed_head_dims_are_probed_and_value_error_counts_as_unsupported():
    spec = bk.int8_spec()

    def strict(q, k, v, **kw):
        if q.shape[-1] not in spec.head_dims or q.dtype not in spec.dtypes:
            raise ValueError(f"head dim {q.shape[-1]} not supported")
        return bk.int8_honest(q, k, v, **kw)

    seen = []
    target = target_from_spec(dataclasses.replace(spec, launcher=strict, dtypes=(torch.float16,)))
    report = fuzz(
        target, examples=200, seed=None, device="cpu", profile="ci", database=False, on_result=seen.append
    )
    assert report.ok and report.unsupported > 0
    unsupported = [r.case for r in seen if r.status == "unsupported"]
    assert all(c.head_dim not in spec.head_dims or c.dtype != "float16" for c in unsupported)


def test_a_kernel_that_ignores_unclaimed_dtypes_is_judged_on_its_answer():
    # int8_honest computes any head dim correctly: probing unclaimed ones must not flag it.
    target = target_from_spec(dataclasses.replace(bk.int8_spec(), head_dims=(32,)))
    report = fuzz(target, examples=100, seed=None, device="cpu", profile="ci", database=False)
    assert report.ok and report.unsupported == 0


def test_cpu_threads_restores_the_thread_count():
    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_bad_arguments():
    with pytest.raises(ValueError, match="examples"):
        fuzz(correct(), examples=0, device="cpu")
    with pytest.raises(ValueError, match="profile"):
        fuzz(correct(), examples=1, device="cpu", profile="weekly")


def test_lowbit_profiles_are_registered_without_being_loaded():
    from hypothesis import settings

    for name in ("dev", "ci", "nightly"):
        assert settings.get_profile(f"lowbit-{name}").deadline is None
    assert settings.get_profile("lowbit-ci").derandomize
    assert settings.get_profile("lowbit-nightly").max_examples == 2000
