"""pytest plugin (entry point ``pytest11``): fuzz your own attention kernel from your own test suite.

Loaded into every pytest session of anyone who installs lowbit, so it stays import-light: no torch,
triton or kernels at module level (they are imported when the fixture is first used).

Usage::

    def test_my_kernel_is_correct(lowbit_fuzz):
        lowbit_fuzz("mypkg.attn:attention", head_dims=(64, 128))   # or a callable, or a KernelSpec

The test fails with the shrunk case, the failed property and a repro command if any property fails.
The kernel runs in a worker process (:mod:`harness.search.isolation`): a kernel that segfaults or hangs
fails the test (property ``crashed`` or ``timed_out``) and the session goes on.
Options: ``--lowbit-profile dev|ci|nightly`` (default: ci when the CI environment variable is set,
else dev), ``--lowbit-examples N``, ``--lowbit-seed S``, ``--lowbit-device cpu|cuda``,
``--lowbit-case-timeout SECONDS`` (default: $LOWBIT_CASE_TIMEOUT, else sized by device and shape).
"""

from __future__ import annotations

import os

import pytest

_PROFILES = ("dev", "ci", "nightly")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lowbit", "lowbit attention-kernel fuzzing")
    group.addoption(
        "--lowbit-profile",
        choices=_PROFILES,
        default=None,
        help="Fuzz profile for the lowbit_fuzz fixture: dev (quick), ci (derandomized), nightly (long). "
        "Default: ci when CI is set, else dev.",
    )
    group.addoption("--lowbit-examples", type=int, default=None, help="Examples per lowbit_fuzz call.")
    group.addoption("--lowbit-seed", type=int, default=None, help="Seed of the lowbit search.")
    group.addoption(
        "--lowbit-device", choices=("cpu", "cuda"), default=None, help="Device (default: cuda if present)."
    )
    group.addoption(
        "--lowbit-case-timeout",
        type=float,
        default=None,
        help="Seconds one case may run before its worker is killed (default: $LOWBIT_CASE_TIMEOUT, else "
        "sized by device and shape).",
    )


def _default_profile() -> str:
    return "ci" if os.environ.get("CI", "").lower() not in ("", "0", "false", "no") else "dev"


class LowbitFuzzer:
    """The ``lowbit_fuzz`` fixture: call it with a kernel; it fails the test if a property fails."""

    def __init__(self, config: pytest.Config) -> None:
        self.profile: str = config.getoption("lowbit_profile") or _default_profile()
        self.examples: int | None = config.getoption("lowbit_examples")
        self.seed: int | None = config.getoption("lowbit_seed")
        self.device_option: str | None = config.getoption("lowbit_device")
        self.case_timeout: float | None = config.getoption("lowbit_case_timeout")

    def __call__(
        self,
        kernel,
        *,
        examples: int | None = None,
        head_dims: tuple[int, ...] | None = None,
        dtypes: tuple[str, ...] | None = None,
        max_rel_l2: float | None = None,
        max_abs: float | None = None,
        max_n: int | None = None,
        name: str | None = None,
        database: bool = True,
        isolate: bool = True,
    ):
        """Fuzz ``kernel`` (ref string, callable, KernelSpec or KernelTarget); return the FuzzReport.

        ``examples`` here wins over ``--lowbit-examples`` only when that option is not given.
        ``head_dims``/``dtypes`` describe a bare callable (defaults: harness.search.targets's). ``max_n`` caps
        sequence lengths (useful for kernels run by the Triton interpreter). ``isolate=False`` calls the
        kernel in this process (faster start, but a crash takes the session down).
        """
        from harness.search.device import select_device

        device = select_device(self.device_option)
        import dataclasses

        from harness.search.fuzz import fuzz
        from harness.search.profiles import size_limits
        from harness.search.targets import (
            KernelTarget,
            load_kernel,
            target_from_callable,
            target_from_spec,
            with_overrides,
        )

        overrides = {"max_rel_l2": max_rel_l2, "max_abs": max_abs}
        if isinstance(kernel, KernelTarget):
            target = with_overrides(kernel, **overrides)
        elif isinstance(kernel, str):
            target = load_kernel(kernel, **overrides)
        elif type(kernel).__name__ == "KernelSpec" and hasattr(kernel, "budgets"):
            target = target_from_spec(kernel, name=name, **overrides)
        else:
            extra = {}
            if head_dims is not None:
                extra["head_dims"] = tuple(head_dims)
            if dtypes is not None:
                extra["dtypes"] = tuple(dtypes)
            target = target_from_callable(kernel, name=name, **overrides, **extra)
        limits = size_limits(self.profile, device)
        if max_n is not None:
            limits = dataclasses.replace(limits, max_n=min(limits.max_n, max_n))
        from harness.core.timeouts import configured_case_timeout
        from harness.search.isolation import IsolatedChecker

        try:
            timeout = configured_case_timeout(self.case_timeout, "--lowbit-case-timeout")
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        checker = IsolatedChecker(target, device, timeout) if isolate else None
        if checker is not None and checker.note:
            import warnings

            warnings.warn(checker.note, stacklevel=2)
        try:
            report = fuzz(
                target,
                examples=self.examples or examples,
                seed=self.seed,
                device=device,
                profile=self.profile,
                database=database,
                sizes=limits,
                check=checker,
            )
        finally:
            if checker is not None:
                checker.close()
        if not report.ok:
            pytest.fail(_render(report), pytrace=False)
        return report


def _render(report) -> str:
    import io

    from rich.console import Console

    from harness.cli.render import render_report

    buf = io.StringIO()
    render_report(Console(file=buf, width=120, color_system=None, soft_wrap=True), report)
    return buf.getvalue()


@pytest.fixture
def lowbit_fuzz(request: pytest.FixtureRequest) -> LowbitFuzzer:
    """Fuzz an attention kernel against the oracle; fails the test with a repro command on a bug."""
    return LowbitFuzzer(request.config)
