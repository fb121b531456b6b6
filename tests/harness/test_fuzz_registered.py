"""Our own kernels pass the fuzzer under their declared budgets: tiny shapes in the interpreter (CI),
the ci profile's long sequences on a GPU."""

import pytest

from harness.fuzz import fuzz
from harness.loader import load_kernel, registry
from harness.profiles import TINY
from tests.conftest import DEVICE

METHODS = sorted(registry())


def explain(report) -> str:
    f = report.failures[0]
    return f"{f.failed_property}: {f.message}\nrepro: {f.repro_command}"


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_registered_kernel_passes_tiny_cases(method):
    # In CI this runs in the Triton interpreter, where a call costs 0.05-0.5 s: tiny shapes only.
    report = fuzz(
        load_kernel(method), examples=30, seed=None, device=DEVICE, profile="ci", database=False, sizes=TINY
    )
    assert report.ok, explain(report)
    assert report.examples == 30 and report.passed > 0


@pytest.mark.gpu
@pytest.mark.parametrize("method", METHODS)
def test_registered_kernel_passes_the_ci_profile_on_the_gpu(method):
    report = fuzz(load_kernel(method), examples=200, seed=None, device="cuda", profile="ci", database=False)
    assert report.ok, explain(report)
    assert report.passed > 0
