"""A CUDA illegal address is a verdict: the case that caused it fails, the next case gets a fresh worker."""

from __future__ import annotations

import pytest

from harness.search.cases import Case
from harness.search.isolation import IsolatedChecker
from harness.search.targets import load_kernel

pytestmark = pytest.mark.gpu


def case(nk: int) -> Case:
    return Case(
        batch=1,
        hq=2,
        hkv=2,
        nq=64,
        nk=nk,
        head_dim=64,
        dtype="float16",
        causal=False,
        sm_scale=None,
        distribution="gaussian",
        seed=1,
    )


def test_illegal_address_fails_its_case_and_the_next_case_runs_in_a_fresh_worker():
    target = load_kernel("ill=tests.harness.cuda_fault_kernels:illegal_address_on_second")
    with IsolatedChecker(target, "cuda", timeout_s=120) as check:
        assert check.isolated
        assert check(target, case(64), "cuda").status == "pass"
        faulted = check(target, case(65), "cuda")
        assert faulted.status == "fail"
        assert faulted.failed_property in ("supported_or_raises", "crashed")
        assert "illegal" in faulted.message.lower(), faulted.message
        assert "--device cuda" in faulted.repro_command
        after = check(target, case(66), "cuda")
        assert after.status == "pass", after.message
        assert check.workers_started == 2
