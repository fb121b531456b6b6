"""Commands ``lowbit kernels`` (the registry as a table) and ``lowbit fuzz`` (search for a wrong answer).

Exit codes of ``lowbit fuzz``: 0 no property failed, 1 a property failed, 2 bad usage or a kernel that
cannot be loaded. The device is chosen before anything imports ``kernels``: Triton decides between the
interpreter and the GPU when the kernels are defined.
"""

from __future__ import annotations

import json
import sys

import click

from harness.search.profiles import PROFILES, in_ci


def _fail_usage(message: str) -> None:
    click.echo(f"lowbit: error: {message}", err=True)
    sys.exit(2)


def _select(device: str | None) -> str:
    from harness.search.device import DeviceError, select_device

    try:
        return select_device(device)
    except DeviceError as exc:
        _fail_usage(str(exc))
        raise AssertionError("unreachable") from None


@click.command("kernels")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Default: cuda if present.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list instead of the table.")
def kernels_command(device: str | None, as_json: bool) -> None:
    """List the registered kernels: bit widths, head dims, dtypes and error budgets."""
    _select(device)
    from harness.cli.render import console, kernels_json, kernels_table
    from harness.search.targets import KernelLoadError, registry, target_from_spec

    try:
        targets = [target_from_spec(spec) for spec in registry().values()]
    except KernelLoadError as exc:
        _fail_usage(str(exc))
    if as_json:
        click.echo(json.dumps(kernels_json(targets)))
    else:
        console().print(kernels_table(targets))


@click.command("fuzz")
@click.option(
    "--kernel",
    "kernel_ref",
    required=True,
    metavar="SPEC",
    help="Registry name (int8), module:function, or alias=module:function.",
)
@click.option(
    "--examples", type=click.IntRange(min=1), default=None, help="Examples to try (default: by profile)."
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Seed of the search: a reproducible run (the example database is not used).",
)
@click.option(
    "--max-rel-l2",
    type=click.FloatRange(min=0),
    default=None,
    help="Replace the relative-L2 budget of every family.",
)
@click.option(
    "--max-abs",
    type=click.FloatRange(min=0),
    default=None,
    help="Replace the max-abs budget of every family.",
)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Default: cuda if present.")
@click.option(
    "--profile",
    type=click.Choice(PROFILES),
    default=None,
    help="dev (quick), ci (derandomized, bounded) or nightly (long). Default: ci under CI, else dev.",
)
@click.option(
    "--max-n",
    type=click.IntRange(min=1),
    default=None,
    help="Cap sequence lengths below the profile's limit (e.g. for interpreted kernels).",
)
@click.option(
    "--case",
    "case_json_text",
    default=None,
    metavar="JSON",
    help="Check exactly this case (as printed in a repro command) instead of searching.",
)
@click.option(
    "--database/--no-database",
    default=True,
    help="Use the example database under .lowbit/hypothesis (never under the ci profile).",
)
@click.option(
    "--case-timeout",
    type=float,
    default=None,
    metavar="SECONDS",
    help="A case running longer is a failure (timed_out); its worker is killed. The first, possibly "
    "compiling, kernel call is not counted. Default: $LOWBIT_CASE_TIMEOUT, else sized by device and shape.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def fuzz_command(
    kernel_ref: str,
    examples: int | None,
    seed: int | None,
    max_rel_l2: float | None,
    max_abs: float | None,
    device: str | None,
    profile: str | None,
    max_n: int | None,
    case_json_text: str | None,
    database: bool,
    case_timeout: float | None,
    as_json: bool,
) -> None:
    """Search shapes and value distributions for an input where the kernel is wrong.

    The kernel runs in a worker process: a segfault, an abort, a CUDA fault or a hang is a failed case
    (property crashed or timed_out), shrunk and printed with its repro line like any other.
    """
    from harness.core.timeouts import configured_case_timeout

    profile = profile or ("ci" if in_ci() else "dev")
    try:
        timeout = configured_case_timeout(case_timeout)
    except ValueError as exc:
        _fail_usage(str(exc))
    device = _select(device)

    from harness.cli.render import console
    from harness.search.cases import Case
    from harness.search.targets import KernelLoadError, load_kernel

    try:
        target = load_kernel(kernel_ref, max_rel_l2=max_rel_l2, max_abs=max_abs)
    except KernelLoadError as exc:
        _fail_usage(str(exc))
    out, err = console(), console(stderr=True)
    from harness.search.isolation import IsolatedChecker

    checker = IsolatedChecker(target, device, timeout)
    if checker.note:
        err.print(f"lowbit: warning: {checker.note}", highlight=False, markup=False)

    if case_json_text is not None:
        try:
            case = Case.from_json(case_json_text)
        except ValueError as exc:
            _fail_usage(f"--case: {exc}")
        from harness.cli.render import case_json, render_case_result
        from harness.search.fuzz import replay

        with checker:
            result = replay(target, case, device, check=checker)
        if as_json:
            click.echo(json.dumps(case_json(result)))
        else:
            render_case_result(out, result)
        sys.exit(0 if result.ok else 1)

    import dataclasses

    from harness.cli.render import FuzzProgress, fuzz_json, render_report
    from harness.search.fuzz import fuzz
    from harness.search.profiles import DEFAULT_EXAMPLES, size_limits

    limits = size_limits(profile, device)
    if max_n is not None:
        limits = dataclasses.replace(limits, max_n=min(limits.max_n, max_n))
    total = examples or DEFAULT_EXAMPLES[profile]
    with checker, FuzzProgress(err, total, f"fuzz {target.name}") as progress:
        report = fuzz(
            target,
            examples=examples,
            seed=seed,
            device=device,
            profile=profile,
            on_result=progress.update,
            database=database,
            sizes=limits,
            check=checker,
        )
    if as_json:
        click.echo(json.dumps(fuzz_json(report)))
    else:
        render_report(out, report)
    sys.exit(0 if report.ok else 1)


def fuzz_commands() -> list[click.Command]:
    return [kernels_command, fuzz_command]
