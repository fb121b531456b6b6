"""The GPU profiles' 2^31-offset cases: large enough to overflow 32-bit offsets, sized to the memory."""

import torch

from harness.search.cases import Case
from harness.search.fuzz import PropertyFailed, _long_cases
from harness.search.long_cases import OFFSET_LIMIT, long_cases, max_offset
from harness.search.profiles import LONG_CASES
from harness.search.properties import CaseResult
from harness.search.targets import target_from_callable
from tests.harness.broken_kernels import correct_fp32

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


def _gpu_without_a_gpu(monkeypatch, free_gib: float):
    """What fuzz() asks of torch.cuda for the long cases, answered as an idle GPU would."""
    released = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (int(free_gib * GIB), 80 * GIB))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: released.append(True))
    return released


def test_capped_shapes_skip_the_long_cases_with_a_note(monkeypatch):
    _gpu_without_a_gpu(monkeypatch, 140)
    checked, notes = [], []
    target = target_from_callable(correct_fp32, name="c")
    assert _long_cases(target, "cuda", "ci", checked.append, notes, narrowed=True) == []
    assert checked == [] and notes and "shape limits are narrower" in notes[0]
    assert _long_cases(target, "cuda", "ci", checked.append, notes) == []
    assert len(checked) == LONG_CASES["ci"]  # the profile's own shapes: the long cases run


def test_out_of_memory_under_the_checks_is_a_note_not_a_failure(monkeypatch):
    released = _gpu_without_a_gpu(monkeypatch, 140)
    seen, notes = [], []

    def check(case):
        seen.append(case)
        if len(seen) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.12 GiB")

    target = target_from_callable(correct_fp32, name="c")
    assert _long_cases(target, "cuda", "ci", check, notes) == []
    assert len(seen) == LONG_CASES["ci"] == len(released)  # the next case still runs; memory given back
    assert len(notes) == 1 and "ran out of memory" in notes[0] and "140 GiB were free" in notes[0]


def _failed(case: Case, prop: str, message: str) -> CaseResult:
    return CaseResult(
        kernel="c",
        case=case,
        status="fail",
        failed_property=prop,
        verdicts={prop: False},
        metrics={},
        budget=None,
        message=message,
        elapsed_s=0.0,
        repro_command="",
        error_ratio=float("inf"),
    )


def test_a_kernel_out_of_memory_on_a_long_case_is_a_note_and_other_failures_stay(monkeypatch):
    _gpu_without_a_gpu(monkeypatch, 140)
    seen, notes = [], []
    oom = "second call on identical inputs raised OutOfMemoryError: CUDA out of memory (at k.py:3)"

    def check(case):
        seen.append(case)
        if len(seen) == 1:
            raise PropertyFailed(_failed(case, "deterministic", oom))
        raise PropertyFailed(_failed(case, "error_budget", "error over budget"))

    target = target_from_callable(correct_fp32, name="c")
    failures = _long_cases(target, "cuda", "ci", check, notes)
    assert [f.failed_property for f in failures] == ["error_budget"] * (LONG_CASES["ci"] - 1)
    assert "the kernel ran out of GPU memory" in notes[0] and "140 GiB were free" in notes[0]


def test_a_campaign_over_seeds_can_leave_the_long_cases_out(monkeypatch):
    from harness.search.fuzz import fuzz
    from harness.search.long_cases import OFFSET_LIMIT

    _gpu_without_a_gpu(monkeypatch, 140)
    target = target_from_callable(correct_fp32, name="c")

    def run(long: bool) -> tuple[list[Case], list[str]]:
        seen: list[Case] = []

        def check(target, case, device):
            seen.append(case)
            result = _failed(case, "error_budget", "")
            result.status, result.failed_property, result.error_ratio = "pass", None, 0.0
            return result

        report = fuzz(
            target, examples=3, seed=5, device="cuda", profile="nightly", check=check, long_cases=long
        )
        return seen, report.notes

    with_long, _ = run(True)
    without, notes = run(False)
    assert sum(max_offset(c) > OFFSET_LIMIT for c in with_long) == LONG_CASES["nightly"]
    assert without and all(max_offset(c) <= OFFSET_LIMIT for c in without)
    assert any("left out on request" in n for n in notes)


def _oom_fuzz(monkeypatch, fails_first: int):
    """fuzz() on a fake GPU where each case's first ``fails_first`` checks run out of memory."""
    from harness.search import fuzz as fuzz_module
    from harness.search.targets import load_kernel

    _gpu_without_a_gpu(monkeypatch, 140)
    monkeypatch.setattr(fuzz_module, "OOM_PAUSE_S", 0.0)
    calls: dict[str, int] = {}

    def check(target, case, device):
        calls[case.case_id] = calls.get(case.case_id, 0) + 1
        if calls[case.case_id] <= fails_first:
            return _failed(
                case, "crashed", "the kernel's worker failed: OutOfMemoryError: CUDA out of memory"
            )
        result = _failed(case, "error_budget", "")
        result.status, result.failed_property, result.error_ratio = "pass", None, 0.0
        return result

    report = fuzz_module.fuzz(
        load_kernel("fp16"),
        examples=4,
        seed=3,
        device="cuda",
        profile="nightly",
        check=check,
        long_cases=False,
    )
    return report, calls, fuzz_module.OOM_RETRIES


def test_a_case_out_of_gpu_memory_is_retried_before_it_counts(monkeypatch):
    report, calls, _ = _oom_fuzz(monkeypatch, fails_first=1)
    assert report.ok and report.examples == 4
    assert calls and all(n == 2 for n in calls.values())
    assert any("ran out of GPU memory" in n for n in report.notes)


def test_a_case_that_never_fits_fails_after_the_retries(monkeypatch):
    report, calls, retries = _oom_fuzz(monkeypatch, fails_first=10**6)
    assert not report.ok and report.failures[0].failed_property == "crashed"
    assert calls[report.failures[0].case.case_id] >= retries + 1
