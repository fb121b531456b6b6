"""Commands ``lowbit check``, ``lowbit history`` and ``lowbit bisect``: judging recorded history.

Exit status of ``check``: 0 clean, 1 a regression or new failure, 2 bad usage or an unusable database,
3 nothing comparable was measured (no baseline, another environment, no overlapping case, shards
missing): a gate that measured nothing never reads as clean nor as regressed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.store import StoreError, open_store, resolve_url, validate_commit

DB_HELP = "Database URL (any SQLAlchemy URL). Default: $LOWBIT_DB_URL, else ./lowbit.db (SQLite)."
FORMATS = ("md", "json", "junit")
METRIC_CHOICES = (
    "failures",
    "rel_l2",
    "max_abs",
    "kernel_rel_l2",
    "kernel_max_abs",
    "p20_ms",
    "p50_ms",
    "p80_ms",
    "tflops",
)
SHARD_POLL_S = 10.0


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _fail(message: str) -> None:
    _err().print(f"[bold red]error:[/] {escape(message)}")
    sys.exit(2)


@contextmanager
def _exit_2_on_bad_input() -> Iterator[None]:
    from harness.verdicts import VerdictError

    try:
        yield
    except (StoreError, VerdictError, ValueError) as exc:
        _fail(str(exc))


def _head_commit() -> str:
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        proc = None
    if proc is None or proc.returncode != 0:
        _fail("no --commit given and no git repository here to take HEAD from")
    return proc.stdout.strip()


def _percent(name: str, value: float | None, default: float) -> float:
    if value is None:
        return default
    if value < 0:
        _fail(f"{name}: expected a percentage >= 0, got {value:g}")
    return value / 100


def _wait_for_shards(store, commit: str, wait_s: float) -> None:
    """Poll until the newest measurement of ``commit`` has every shard finished, or ``wait_s`` passed."""
    from harness.store import history
    from harness.verdicts import measurements

    deadline = time.monotonic() + wait_s
    while True:
        found = measurements(history.measured_runs(store), commit)
        if found and found[0].complete:
            return
        if time.monotonic() >= deadline:
            return
        waiting = (
            "no run yet"
            if not found
            else ", ".join([*(f"shard {s} missing" for s in found[0].missing_shards), *found[0].unfinished])
        )
        _err().print(f"lowbit check: waiting for {commit[:12]}: {waiting}")
        time.sleep(min(SHARD_POLL_S, max(deadline - time.monotonic(), 0.1)))


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {path}: {exc.strerror or exc}")


def check_commands() -> list[click.Command]:
    @click.command("check")
    @click.option("--db", "db_url", metavar="URL", help=DB_HELP)
    @click.option(
        "--commit", metavar="SHA", help="Commit to judge (default: HEAD of the git repository here)."
    )
    @click.option(
        "--baseline",
        default="auto",
        show_default=True,
        metavar="SHA|auto",
        help="Commit to compare with; auto: the nearest ancestor measured in the same environment.",
    )
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default="md", show_default=True)
    @click.option(
        "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write the report here, not stdout."
    )
    @click.option(
        "--markdown",
        "md_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Also write Markdown here.",
    )
    @click.option(
        "--junit",
        "junit_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Also write JUnit XML here.",
    )
    @click.option(
        "--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), help="Also write JSON here."
    )
    @click.option(
        "--latency-threshold",
        type=float,
        metavar="PCT",
        help="Median must move more than this, in percent (default 5), and the rank test be significant.",
    )
    @click.option(
        "--precision-threshold",
        type=float,
        metavar="PCT",
        help="Error must grow more than this, in percent (default 10), and past an absolute floor.",
    )
    @click.option(
        "--p-value",
        type=float,
        default=None,
        metavar="P",
        help="Mann-Whitney U significance level (default 0.002, asv's).",
    )
    @click.option(
        "--kernel", "kernels", metavar="NAME", multiple=True, help="Only these kernels; repeatable."
    )
    @click.option(
        "--wait-shards",
        type=click.FloatRange(min=0),
        default=0,
        metavar="SECONDS",
        help="Wait up to this long for every shard of the commit to finish (default: report missing ones).",
    )
    @click.option(
        "--environment",
        "environment_id",
        type=int,
        metavar="ID",
        help="Judge the commit's runs in this environment (default: the one measured last).",
    )
    def check(
        db_url,
        commit,
        baseline,
        fmt,
        output,
        md_path,
        junit_path,
        json_path,
        latency_threshold,
        precision_threshold,
        p_value,
        kernels,
        wait_shards,
        environment_id,
    ) -> None:
        """Judge one commit against its baseline: new failures, less precise, slower, trades.

        Exit status: 0 clean, 1 a regression or a new failure, 2 bad usage or an unusable database,
        3 nothing comparable measured (the commit never recorded, no baseline, another environment, no
        overlapping case, missing shards).
        """
        from harness.verdicts import RENDERERS, Thresholds, compare
        from harness.verdicts.rules import (
            DEFAULT_LATENCY_THRESHOLD,
            DEFAULT_P_VALUE,
            DEFAULT_PRECISION_THRESHOLD,
        )

        with _exit_2_on_bad_input():
            thresholds = Thresholds(
                latency=_percent("--latency-threshold", latency_threshold, DEFAULT_LATENCY_THRESHOLD),
                precision=_percent("--precision-threshold", precision_threshold, DEFAULT_PRECISION_THRESHOLD),
                p_value=DEFAULT_P_VALUE if p_value is None else p_value,
            )
            commit = validate_commit(commit or _head_commit())
            if baseline != "auto":
                baseline = validate_commit(baseline)
            store = open_store(resolve_url(db_url), create=False)
            try:
                if wait_shards:
                    _wait_for_shards(store, commit, wait_shards)
                comparison = compare(
                    store,
                    commit,
                    baseline,
                    thresholds=thresholds,
                    kernels=kernels or None,
                    environment_id=environment_id,
                )
            finally:
                store.close()
        text = RENDERERS[fmt](comparison)
        if output is not None:
            _write(output, text)
        else:
            click.echo(text, nl=False)
        for path, kind in ((md_path, "md"), (junit_path, "junit"), (json_path, "json")):
            if path is not None:
                _write(path, RENDERERS[kind](comparison))
        counts = comparison.counts
        _err().print(
            f"lowbit check {comparison.commit[:12]} vs {(comparison.baseline.commit or 'nothing')[:12]}: "
            f"{comparison.status} ({counts['new-failure']} new failure(s), "
            f"{len(comparison.regressions) - counts['new-failure']} regression(s), {counts['fixed']} fixed, "
            f"{comparison.compared} case(s) compared); exit {comparison.exit_code}"
        )
        for problem in comparison.problems:
            _err().print(f"[yellow]note:[/] {escape(problem)}")
        sys.exit(comparison.exit_code)

    @click.command("history")
    @click.option("--db", "db_url", metavar="URL", help=DB_HELP)
    @click.option("--kernel", required=True, metavar="NAME", help="Kernel name as recorded.")
    @click.option(
        "--case", "case_id", metavar="ID", help="One case (default: every case with a change point)."
    )
    @click.option("--metric", type=click.Choice(METRIC_CHOICES), default="rel_l2", show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
    def history(db_url, kernel, case_id, metric, as_json) -> None:
        """Print a kernel x case series and its change points (detected with ruptures' PELT, and stored
        for the dashboard). Without --case: every case of the kernel that has a change point."""
        import json

        from harness.store import history as hist
        from harness.verdicts import change_points, series

        with _exit_2_on_bad_input():
            store = open_store(resolve_url(db_url), create=False)
            try:
                if kernel not in hist.kernel_names(store):
                    raise ValueError(f"no kernel named {kernel!r} in the database")
                cases = [case_id] if case_id else [c["case_id"] for c in hist.kernel_cases(store, kernel)]
                found = []
                for cid in cases:
                    points = series(store, kernel, cid, metric)
                    steps = change_points(store, kernel, cid, metric)
                    if case_id or any(steps.values()):
                        found.append((cid, points, steps))
            finally:
                store.close()
        if case_id and not any(found[0][1].values()):
            _fail(f"no finished run measured {metric} of {kernel!r} on case {case_id}")
        if as_json:
            payload = [
                {
                    "case_id": cid,
                    "metric": metric,
                    "environments": [
                        {
                            "environment_id": env,
                            "points": points[env],
                            "change_points": [s.as_dict() for s in steps.get(env, [])],
                        }
                        for env in points
                    ],
                }
                for cid, points, steps in found
            ]
            click.echo(json.dumps(payload, indent=2, default=str))
            return
        out = _out()
        if not found:
            out.print(f"{kernel}: no change point in {metric} over {len(cases)} case(s)")
        for cid, points, steps in found:
            for env, pts in points.items():
                marks = {s.index: s for s in steps.get(env, [])}
                table = Table(title=f"{kernel} · {cid} · {metric} · environment {env}")
                for col in ("run", "commit", "recorded", metric, "change"):
                    table.add_column(col, justify="right" if col in ("run", metric) else "left")
                for i, p in enumerate(pts):
                    mark = marks.get(i)
                    note = ""
                    if mark is not None:
                        ratio = f" ×{mark.ratio:.3g}" if mark.ratio is not None else ""
                        note = f"[bold]▲ step {mark.direction}[/]{ratio}"
                    table.add_row(
                        str(p["run_id"]),
                        p["commit"][:12],
                        (p["started_at"] or "")[:19],
                        f"{p['value']:.4g}",
                        note,
                    )
                out.print(table)

    @click.command("bisect")
    @click.option("--db", "db_url", metavar="URL", help=DB_HELP)
    @click.option("--kernel", required=True, metavar="NAME", help="Kernel name as recorded.")
    @click.option("--case", "case_id", required=True, metavar="ID", help="Case id.")
    @click.option("--metric", type=click.Choice(METRIC_CHOICES), default="rel_l2", show_default=True)
    def bisect_cmd(db_url, kernel, case_id, metric) -> None:
        """Name the first recorded commit where the series stepped (its latest step), and print the
        `git bisect start BAD GOOD` line when commits between were never recorded.

        Exit status: 0 a step was found, 1 no step in the series, 2 bad usage or nothing recorded.
        """
        from harness.verdicts import bisect

        with _exit_2_on_bad_input():
            store = open_store(resolve_url(db_url), create=False)
            try:
                result = bisect(store, kernel, case_id, metric, cwd=Path.cwd())
            finally:
                store.close()
        out = _out()
        if result.bad is None:
            out.print(f"{kernel} · {case_id} · {metric}: {result.reason}")
            sys.exit(1)
        step = result.steps[-1]
        ratio = f" (×{step.ratio:.3g})" if step.ratio is not None else ""
        out.print(
            f"{kernel} · {case_id} · {metric}: stepped {step.direction} from {step.before:.4g} to "
            f"{step.after:.4g}{ratio} at commit {result.bad} (last recorded before: {result.good})"
        )
        out.print(result.reason)
        if result.git_bisect:
            out.print(result.git_bisect)

    bisect_cmd.name = "bisect"
    return [check, history, bisect_cmd]
