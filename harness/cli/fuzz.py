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
    help="Cap sequence lengths below the profile's limit (e.g. for interpreted kernels); a cap also leaves "
    "out the GPU profiles' 2^31-offset cases.",
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
@click.option(
    "--head-dims",
    default=None,
    metavar="D,D,...",
    help="Domain of a bare callable: the head dims it supports (otherwise learned by probing).",
)
@click.option("--dtypes", default=None, metavar="NAME,...", help="Domain: float16 and/or bfloat16.")
@click.option(
    "--layouts", default=None, metavar="NAME,...", help="Domain: memory layouts (hnd, bnhd, fused, kv_cache)."
)
@click.option(
    "--same-length/--any-length", "same_length", default=None, help="Domain: only Nq == Nk, or any lengths."
)
@click.option(
    "--length-multiple",
    type=click.Choice(["1", "16", "32", "64", "128"]),
    default=None,
    help="Domain: every sequence length is a multiple of this.",
)
@click.option(
    "--domain",
    "domain_json",
    default=None,
    metavar="JSON",
    help='Domain as one object, e.g. \'{"head_dims":[64,128],"dtypes":["float16"],"same_length":true}\'; '
    "the flags above override its fields. Axes not stated are learned by probing.",
)
@click.option(
    "--long-cases/--no-long-cases",
    default=True,
    show_default=True,
    help="On a GPU, check the ci and nightly profiles' 2^31-offset cases before the search. They are the "
    "same whatever the seed: a campaign over several seeds needs them once.",
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
    head_dims: str | None,
    dtypes: str | None,
    layouts: str | None,
    same_length: bool | None,
    length_multiple: str | None,
    domain_json: str | None,
    long_cases: bool,
    as_json: bool,
) -> None:
    """Search shapes and value distributions for an input where the kernel is wrong.

    The kernel runs in a worker process: a segfault, an abort, a CUDA fault or a hang is a failed case
    (property crashed or timed_out), shrunk and printed with its repro line like any other.
    A bare callable's domain (head dims, dtypes, masks, head layouts, lengths, memory layouts) is learned
    first from what it refuses, and printed; nine examples in ten are then drawn inside it.
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

    stated = _stated_domain(head_dims, dtypes, layouts, same_length, length_multiple, domain_json)
    if stated and target.spec is not None:
        _fail_usage(
            "--domain and its flags apply to module:function kernels; a registered spec declares its own"
        )
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
            domain=stated or None,
            long_cases=long_cases,
        )
    if as_json:
        click.echo(json.dumps(fuzz_json(report)))
    else:
        if report.domain is not None:
            out.print(domain_table(report))
        render_report(out, report)
    sys.exit(0 if report.ok else 1)


def _split_list(option: str, text: str | None, convert) -> list | None:
    if text is None:
        return None
    try:
        values = [convert(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
        _fail_usage(f"{option}: expected a comma-separated list, got {text!r}")
    if not values:
        _fail_usage(f"{option}: expected at least one value")
    return values


def _stated_domain(head_dims, dtypes, layouts, same_length, length_multiple, domain_json) -> dict:
    """The domain axes the user stated (Domain field -> value), validated; exits 2 on bad input."""
    from harness.search.domain import Domain, DomainError

    stated: dict = {}
    if domain_json is not None:
        try:
            given = json.loads(domain_json)
            stated = {k: v for k, v in Domain.from_dict(given).to_dict().items() if k in given}
        except (DomainError, ValueError) as exc:
            _fail_usage(f"--domain: {exc}")
    flags = {
        "head_dims": _split_list("--head-dims", head_dims, int),
        "dtypes": _split_list("--dtypes", dtypes, str),
        "layouts": _split_list("--layouts", layouts, str),
        "same_length": same_length,
        "length_multiple": int(length_multiple) if length_multiple is not None else None,
    }
    stated.update({k: v for k, v in flags.items() if v is not None})
    try:
        # Validate the stated fields (unstated ones take the unrestricted default here).
        Domain.from_dict(stated)
    except DomainError as exc:
        _fail_usage(str(exc))
    return stated


def domain_table(report):
    """The learned domain: one row per axis, and the probes that decided it."""
    from rich.table import Table

    probe = report.domain
    table = Table(title=f"domain of {report.kernel} ({probe.calls} probe calls)", title_justify="left")
    table.add_column("axis")
    table.add_column("accepted")
    table.add_column("refused")
    refused: dict[str, list[str]] = {}
    for row in probe.rows:
        if not row["accepted"]:
            refused.setdefault(row["axis"], []).append(str(row["value"]))
    for key, value in probe.domain.to_dict().items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        table.add_row(key, shown, ", ".join(refused.get(key, [])))
    for axis in ("nq != nk", "length multiple"):
        if axis in refused:
            table.add_row(axis, "", "; ".join(refused[axis]))
    if probe.note:
        table.caption = probe.note
    return table


def fuzz_commands() -> list[click.Command]:
    return [kernels_command, fuzz_command]
