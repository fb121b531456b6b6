"""Commit, parents and branch of a run: read from git, or validated when the user gives them."""

from __future__ import annotations

import subprocess

import pytest

from harness.run.gitinfo import (
    BRANCH_ENV_VARS,
    GitInfoError,
    commit_subject,
    expand_sha,
    resolve_commit,
    validate_sha,
)


def _git(cwd, *args) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository with two commits on branch ``feature``; CI branch variables cleared."""
    for var in BRANCH_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    _git(tmp_path, "init", "-q", "-b", "feature")
    _git(tmp_path, "config", "user.email", "t@example.com")
    _git(tmp_path, "config", "user.name", "t")
    for i in range(2):
        (tmp_path / "f.txt").write_text(str(i))
        _git(tmp_path, "add", "f.txt")
        _git(tmp_path, "commit", "-q", "-m", f"c{i}")
    return tmp_path


def test_head_commit_parents_and_branch(repo):
    head = _git(repo, "rev-parse", "HEAD")
    parent = _git(repo, "rev-parse", "HEAD~1")
    info = resolve_commit(cwd=repo)
    assert info.commit == head
    assert info.parents == [parent]
    assert info.branch == "feature"


def test_subject_is_the_first_line_of_the_message_where_git_knows_the_commit(repo, tmp_path_factory):
    (repo / "f.txt").write_text("2")
    _git(repo, "commit", "-q", "-am", "int8: shared P scale per block\n\nWhy: the body is not the subject.")
    assert resolve_commit(cwd=repo).subject == "int8: shared P scale per block"
    root = _git(repo, "rev-list", "--max-parents=0", "HEAD")
    assert resolve_commit(root[:9], cwd=repo).subject == "c0"  # a given commit, read by git too
    assert commit_subject(root, repo) == "c0"
    # Unknown to git, or no repository at all: no subject, and no error (it only labels the run).
    assert resolve_commit("a" * 40, cwd=repo).subject is None
    assert resolve_commit("abcdef1234567", cwd=repo, allow_short=True).subject is None
    outside = tmp_path_factory.mktemp("no-repo")
    assert resolve_commit(root, cwd=outside).subject is None
    assert commit_subject("not a sha", repo) is None


def test_root_commit_has_no_parents(repo):
    root = _git(repo, "rev-parse", "HEAD~1")
    info = resolve_commit(root[:10], cwd=repo)
    assert info.commit == root  # abbreviated SHA expanded by the repository
    assert info.parents == []
    assert info.branch is None  # not HEAD: the branch is unknown unless given


def test_detached_head_takes_branch_from_ci_environment(repo, monkeypatch):
    _git(repo, "checkout", "-q", "--detach", "HEAD")
    assert resolve_commit(cwd=repo).branch is None
    monkeypatch.setenv("GITHUB_REF_NAME", "main")
    assert resolve_commit(cwd=repo).branch == "main"
    assert resolve_commit(branch="release", cwd=repo).branch == "release"


def test_short_commit_unknown_to_repo_is_refused_unless_allowed(repo):
    with pytest.raises(GitInfoError, match=r"not known to the git repository.*--allow-short"):
        resolve_commit("ABCDEF1234567", branch="x", cwd=repo)
    info = resolve_commit("ABCDEF1234567", branch="x", cwd=repo, allow_short=True)
    assert info.commit == "abcdef1234567"
    assert info.parents == []
    assert info.branch == "x"


def test_full_commit_unknown_to_repo_is_kept(repo):
    assert resolve_commit("A" * 40, cwd=repo).commit == "a" * 40


def test_short_commit_is_expanded_inside_and_refused_outside_a_repo(repo, tmp_path_factory):
    head = resolve_commit(cwd=repo).commit
    assert expand_sha(head[:7].upper(), repo) == head
    outside = tmp_path_factory.mktemp("not-a-repo")
    with pytest.raises(GitInfoError, match="not inside a git repository"):
        expand_sha(head[:7], outside)
    assert expand_sha(head[:7], outside, allow_short=True) == head[:7]


@pytest.mark.parametrize("bad", ["", "abc", "abcdef", "xyz1234", "g" * 40, "a" * 41, "12345-67", "HEAD"])
def test_malformed_sha_rejected(bad):
    with pytest.raises(GitInfoError, match="7 to 40 hexadecimal"):
        validate_sha(bad)


def test_sha_normalized():
    assert validate_sha(" ABCDEF0 ") == "abcdef0"
    assert validate_sha("a" * 40) == "a" * 40


def test_outside_repo_needs_commit(tmp_path):
    with pytest.raises(GitInfoError, match=r"not inside a git repository.*--commit"):
        resolve_commit(cwd=tmp_path)
    info = resolve_commit("a" * 40, cwd=tmp_path)
    assert info.commit == "a" * 40
    assert info.parents == []


def test_repo_without_commits(tmp_path):
    _git(tmp_path, "init", "-q")
    with pytest.raises(GitInfoError, match="no commits"):
        resolve_commit(cwd=tmp_path)
