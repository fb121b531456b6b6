"""Which commit a run measures: its SHA, its parents, its branch and its subject line, read from git or
given by the user.

Histories are keyed by commit, so a run must never be recorded against a guessed or malformed SHA:
anything that cannot be resolved is a :class:`GitInfoError` (the CLI turns it into exit 2).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

_SHA = re.compile(r"^[0-9a-f]{7,40}$")

# CI systems check out a detached HEAD; they name the branch in the environment instead.
BRANCH_ENV_VARS = (
    "GITHUB_HEAD_REF",
    "GITHUB_REF_NAME",
    "CI_COMMIT_REF_NAME",
    "BUILDKITE_BRANCH",
    "BRANCH_NAME",
)


class GitInfoError(ValueError):
    """The commit to record cannot be determined or is malformed."""


@dataclass(frozen=True)
class CommitInfo:
    commit: str
    parents: list[str]
    branch: str | None
    # The first line of the commit's message; None where git does not know the commit.
    subject: str | None = None


def validate_sha(sha: str) -> str:
    """Return ``sha`` lower-cased if it is 7 to 40 hex digits, else raise :class:`GitInfoError`."""
    normalized = sha.strip().lower()
    if not _SHA.match(normalized):
        raise GitInfoError(f"malformed commit {sha!r}: expected 7 to 40 hexadecimal digits")
    return normalized


def _git(cwd: Path, *args: str) -> str | None:
    """Output of ``git args`` in ``cwd``, or None if git is missing or the command fails."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip()


def _inside_repo(cwd: Path) -> bool:
    return _git(cwd, "rev-parse", "--is-inside-work-tree") == "true"


def _parents_of(cwd: Path, commit: str) -> list[str] | None:
    line = _git(cwd, "rev-list", "--parents", "-n", "1", commit)
    if not line:
        return None
    return line.split()[1:]


def commit_subject(commit: str, cwd: str | Path | None = None) -> str | None:
    """The subject line (first line of the message) of ``commit`` in the repository at ``cwd``, or None
    when there is no repository there or it does not know the commit. Never raises: a subject labels a
    run, it never decides what is recorded."""
    where = Path(cwd) if cwd is not None else Path.cwd()
    try:
        sha = validate_sha(commit)
    except GitInfoError:
        return None
    # `--format=%s` joins a multi-line first paragraph into one line, as git shows subjects everywhere.
    subject = _git(where, "log", "-1", "--format=%s", f"{sha}^{{commit}}", "--")
    return subject or None


def _branch_of_head(cwd: Path) -> str | None:
    name = _git(cwd, "rev-parse", "--abbrev-ref", "HEAD")
    if name and name != "HEAD":
        return name
    for var in BRANCH_ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return value
    return None


FULL_SHA_LENGTH = 40


def expand_sha(commit: str, cwd: str | Path | None = None, *, allow_short: bool = False) -> str:
    """``commit`` as a full SHA: an abbreviated one is resolved by the git repository in ``cwd``.

    Histories are keyed by the full SHA: a short one stored as given never matches the same commit
    recorded in full, and grows ambiguous as the repository grows. So a short SHA that git cannot
    resolve (outside a repository, or unknown to it) is refused unless ``allow_short``.
    """
    sha = validate_sha(commit)
    if len(sha) == FULL_SHA_LENGTH:
        return sha
    where = Path(cwd) if cwd is not None else Path.cwd()
    if _inside_repo(where):
        full = _git(where, "rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}")
        if full:
            return full
        if allow_short:
            return sha
        raise GitInfoError(
            f"commit {sha} is not known to the git repository at {where}: give the full 40-digit SHA "
            "(or --allow-short to record the abbreviation as given)"
        )
    if allow_short:
        return sha
    raise GitInfoError(
        f"short commit {sha} cannot be resolved: {where} is not inside a git repository; give the full "
        "40-digit SHA (or --allow-short to record the abbreviation as given)"
    )


def resolve_commit(
    commit: str | None = None,
    branch: str | None = None,
    cwd: str | Path | None = None,
    *,
    allow_short: bool = False,
) -> CommitInfo:
    """Commit, parents and branch for a run.

    With ``commit`` given it is validated and expanded to the full SHA (:func:`expand_sha`); its parents
    are read when the repository in ``cwd`` knows it. Without ``commit``, HEAD of the repository in
    ``cwd`` is used, and outside a repository that is an error. ``branch`` overrides the branch read from
    git (or from the CI's environment on a detached HEAD).
    """
    where = Path(cwd) if cwd is not None else Path.cwd()
    in_repo = _inside_repo(where)
    if commit is not None:
        sha = expand_sha(commit, where, allow_short=allow_short)
        parents: list[str] = []
        if in_repo:
            full = _git(where, "rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}")
            if full:
                sha = full
                parents = _parents_of(where, sha) or []
        head = _git(where, "rev-parse", "HEAD") if in_repo else None
        if branch is None and head == sha:
            branch = _branch_of_head(where)
        subject = commit_subject(sha, where) if in_repo else None
        return CommitInfo(commit=sha, parents=parents, branch=branch, subject=subject)
    if not in_repo:
        raise GitInfoError(f"{where} is not inside a git repository: pass --commit SHA (and --branch NAME)")
    head = _git(where, "rev-parse", "HEAD")
    if not head:
        raise GitInfoError(f"the git repository at {where} has no commits yet: pass --commit SHA")
    return CommitInfo(
        commit=head,
        parents=_parents_of(where, head) or [],
        branch=branch if branch is not None else _branch_of_head(where),
        subject=commit_subject(head, where),
    )
