"""Name the commit where a kernel x case series stepped, and how to bisect what was never recorded."""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.store import Store
from harness.verdicts.baseline import VerdictError
from harness.verdicts.changepoints import ChangePoint, change_points_of, series
from harness.verdicts.rules import Thresholds


@dataclass
class BisectResult:
    kernel: str
    case_id: str
    metric: str
    environment_id: int | None
    points: int
    steps: list[ChangePoint] = field(default_factory=list)
    good: str | None = None  # last recorded commit before the (latest) step
    bad: str | None = None  # first recorded commit at the new level
    unrecorded_between: int | None = None  # commits git knows between good and bad (None: unknown)
    git_bisect: str | None = None  # the `git bisect start BAD GOOD` line, when there is anything to bisect
    reason: str = ""

    def as_dict(self) -> dict:
        out = asdict(self)
        out["steps"] = [s.as_dict() for s in self.steps]
        return out


def commits_between(good: str, bad: str, cwd: Path | None = None) -> int | None:
    """Commits reachable from ``bad`` but not ``good``, minus ``bad`` itself; None when git cannot say."""
    try:
        proc = subprocess.run(
            ["git", "rev-list", "--count", f"{good}..{bad}"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return max(int(proc.stdout.strip() or 0) - 1, 0)


def bisect(
    store: Store,
    kernel: str,
    case_id: str,
    metric: str,
    *,
    environment_id: int | None = None,
    thresholds: Thresholds | None = None,
    cwd: Path | None = None,
) -> BisectResult:
    """The latest step of the series (the environment with the most points unless one is given): the
    first recorded commit at the new level (``bad``), the last one before it (``good``), and the
    ``git bisect start BAD GOOD`` line when git knows commits between them that were never recorded
    (or cannot tell, and the recorded parents do not make them adjacent)."""
    by_env = series(store, kernel, case_id, metric, environment_id=environment_id)
    if not by_env:
        raise VerdictError(f"no finished run measured {metric} of kernel {kernel!r} on case {case_id}")
    env_id, points = max(by_env.items(), key=lambda kv: (len(kv[1]), kv[0]))
    steps = change_points_of(points, metric, thresholds)
    result = BisectResult(kernel, case_id, metric, env_id, len(points), steps)
    if not steps:
        result.reason = f"no step in {len(points)} recorded point(s): nothing to bisect"
        return result
    last = steps[-1]
    result.good, result.bad = last.previous_commit, last.commit
    between = commits_between(result.good, result.bad, cwd) if result.good else None
    result.unrecorded_between = between
    bad_point = points[last.index]
    adjacent = result.good in bad_point["parents"]
    if between is None and adjacent:
        result.reason = "the step is between a commit and its recorded parent: that commit is the cause"
    elif between == 0:
        result.reason = "no commit between the two recorded ones: the later one is the cause"
    else:
        result.git_bisect = f"git bisect start {result.bad} {result.good}"
        result.reason = (
            f"{between} commit(s) between them were never recorded"
            if between is not None
            else "git here does not know these commits; the recorded parents do not make them adjacent"
        )
    return result
