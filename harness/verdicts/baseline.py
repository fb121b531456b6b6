"""Which runs a commit is judged by, and which commit it is judged against.

A commit's measurement is, per shard label, its newest run. Shards ("I/N") must all be there and finished
before the commit is comparable; missing ones are named. The baseline (``auto``) is the nearest ancestor
commit that has a finished measurement in the same environment: ancestry by git when the repository here
knows the commit, else by the parents each run recorded.
"""

from __future__ import annotations

import subprocess
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.core.fingerprint import ENVIRONMENT_FIELDS, without_host
from harness.store import Store
from harness.store import history as hist

# How far back to walk the ancestry looking for a measured commit.
MAX_ANCESTORS = 5000


class VerdictError(Exception):
    """The request cannot be judged as given (unknown commit or baseline, malformed value): exit 2."""


@dataclass
class Measurement:
    """The runs that measure one commit in one environment."""

    commit: str
    environment_id: int
    run_ids: list[int]
    statuses: dict[int, str]
    shards: dict[str, int]  # shard label ("all" for unsharded) -> run id
    missing_shards: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)  # "run 7 (shard 2/4) is running"

    @property
    def complete(self) -> bool:
        return not self.missing_shards and not self.unfinished

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Baseline:
    """The commit a comparison is made against, and why it was picked."""

    commit: str | None
    reason: str
    measurement: Measurement | None = None
    environment_changes: list[dict] = field(default_factory=list)  # {"field", "baseline", "now"}

    def as_dict(self) -> dict:
        return asdict(self)


def _shard_parts(label: str | None) -> tuple[int, int] | None:
    if not label:
        return None
    try:
        i, n = label.split("/")
        return int(i), int(n)
    except ValueError:
        return None


def measurements(runs: Iterable[dict], commit: str) -> list[Measurement]:
    """The measurements of ``commit`` (full SHA or prefix), one per environment, newest environment first.

    Per environment and shard label, the newest run counts. An unsharded run stands for the whole commit;
    with sharded runs, every shard 1..N must be present and finished.
    """
    by_env: dict[int, dict[str, dict]] = {}
    for run in runs:
        if not run["commit"].startswith(commit):
            continue
        label = run["shard"] or "all"
        by_env.setdefault(run["environment_id"], {})[label] = run  # runs come oldest first
    out = []
    for env_id, shards in by_env.items():
        chosen = shards
        if "all" in shards:
            whole = shards["all"]
            # A newer unsharded run supersedes the shards; shards newer than it are a new sharded attempt.
            if all(r["id"] < whole["id"] for k, r in shards.items() if k != "all"):
                chosen = {"all": whole}
            else:
                chosen = {k: r for k, r in shards.items() if k != "all" and r["id"] > whole["id"]}
        missing: list[str] = []
        parts = [p for p in map(_shard_parts, chosen) if p is not None]
        if parts:
            total = max(n for _, n in parts)
            present = {i for i, n in parts if n == total}
            missing = [f"{i}/{total}" for i in range(1, total + 1) if i not in present]
            chosen = {k: r for k, r in chosen.items() if (_shard_parts(k) or (0, total))[1] == total}
        unfinished = [
            f"run {r['id']} ({'shard ' + k if k != 'all' else 'unsharded'}) is {r['status']}"
            for k, r in sorted(chosen.items())
            if r["status"] not in hist.FINISHED_RUN_STATUSES
        ]
        full = next(iter(chosen.values()))["commit"]
        out.append(
            Measurement(
                commit=full,
                environment_id=env_id,
                run_ids=sorted(r["id"] for r in chosen.values()),
                statuses={r["id"]: r["status"] for r in chosen.values()},
                shards={k: r["id"] for k, r in sorted(chosen.items())},
                missing_shards=missing,
                unfinished=unfinished,
            )
        )
    out.sort(key=lambda m: max(m.run_ids), reverse=True)
    return out


def environment_changes(base: dict, now: dict) -> list[dict]:
    """The fingerprint fields (host aside) that differ, the searchable fields first."""
    base, now = without_host(base), without_host(now)
    keys = [*ENVIRONMENT_FIELDS, *sorted((set(base) | set(now)) - set(ENVIRONMENT_FIELDS))]
    return [
        {"field": k, "baseline": base.get(k), "now": now.get(k)} for k in keys if base.get(k) != now.get(k)
    ]


def git_ancestors(commit: str, cwd: Path | None = None) -> list[str] | None:
    """Ancestors of ``commit`` (itself excluded), nearest first, by git; None when git does not know it."""
    try:
        proc = subprocess.run(
            ["git", "rev-list", f"--max-count={MAX_ANCESTORS}", "--topo-order", commit],
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
    shas = proc.stdout.split()
    return shas[1:] if shas else None


def recorded_ancestors(commit: str, runs: Iterable[dict]) -> list[str]:
    """Ancestors of ``commit`` by the parents runs recorded, nearest first (breadth-first)."""
    parents: dict[str, list[str]] = {}
    for run in runs:
        parents.setdefault(run["commit"], [])
        for p in run["parents"]:
            if p not in parents[run["commit"]]:
                parents[run["commit"]].append(p)
    start = next((c for c in parents if c.startswith(commit)), commit)
    seen, order, queue = {start}, [], deque(parents.get(start, []))
    while queue and len(order) < MAX_ANCESTORS:
        sha = queue.popleft()
        # Recorded parents may be full SHAs while a run recorded a prefix, or the reverse.
        sha = next((c for c in parents if c.startswith(sha) or sha.startswith(c)), sha)
        if sha in seen:
            continue
        seen.add(sha)
        order.append(sha)
        queue.extend(parents.get(sha, []))
    return order


def pick_baseline(
    store: Store,
    current: Measurement,
    baseline: str = "auto",
    *,
    cwd: Path | None = None,
    runs: list[dict] | None = None,
) -> Baseline:
    """The baseline for ``current``: an explicit commit, or (``"auto"``) the nearest ancestor with a
    finished measurement in the same environment.

    With ``auto`` and no such ancestor, the nearest ancestor measured in another environment is returned
    with the fields that changed (latency and precision are then not compared); with none at all,
    ``Baseline(commit=None, reason=...)``. An explicit commit that was never measured raises VerdictError.
    """
    runs = runs if runs is not None else hist.measured_runs(store)
    fingerprints = hist.environments(store, sorted({r["environment_id"] for r in runs}))
    here = fingerprints.get(current.environment_id, {})

    def finished(sha: str) -> list[Measurement]:
        return [m for m in measurements(runs, sha) if m.complete]

    def with_changes(m: Measurement, reason: str) -> Baseline:
        changes = environment_changes(fingerprints.get(m.environment_id, {}), here)
        return Baseline(m.commit, reason, m, changes)

    if baseline != "auto":
        found = measurements(runs, baseline)
        if not found:
            raise VerdictError(f"baseline {baseline}: no run of that commit in the database")
        done = finished(baseline)
        if not done:
            m = found[0]
            why = ", ".join([*(f"shard {s} missing" for s in m.missing_shards), *m.unfinished])
            raise VerdictError(f"baseline {baseline}: not completely measured ({why})")
        same = [m for m in done if m.environment_id == current.environment_id]
        return with_changes((same or done)[0], f"given with --baseline {baseline}")

    ancestors = git_ancestors(current.commit, cwd)
    how = "git"
    if ancestors is None:
        ancestors, how = recorded_ancestors(current.commit, runs), "the parents recorded by lowbit run"
    measured = {r["commit"] for r in runs if r["status"] in hist.FINISHED_RUN_STATUSES}
    other_env: tuple[int, Measurement] | None = None
    for distance, sha in enumerate(ancestors, start=1):
        if not any(c.startswith(sha) or sha.startswith(c) for c in measured):
            continue
        for m in finished(sha):
            if m.environment_id == current.environment_id:
                where = "first parent" if distance == 1 else f"{distance} commits back"
                return Baseline(
                    m.commit,
                    f"nearest ancestor ({where}, by {how}) with a finished run in the same environment",
                    m,
                )
            if other_env is None:
                other_env = (distance, m)
    if other_env is not None:
        distance, m = other_env
        return with_changes(
            m,
            f"no ancestor was measured in this environment; nearest ancestor measured elsewhere "
            f"({distance} commits back, by {how})",
        )
    return Baseline(None, f"no ancestor of {current.commit[:12]} has a finished run (ancestry by {how})")
