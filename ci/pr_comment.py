"""Post lowbit check's Markdown report as ONE pull-request comment, updating it on every later push.

    python ci/pr_comment.py lowbit-report/lowbit-check.md

Needs GITHUB_TOKEN (or GH_TOKEN), GITHUB_REPOSITORY ("owner/name") and the pull request number in
LOWBIT_PR (the workflow passes github.event.pull_request.number); GITHUB_API_URL is honoured for GitHub
Enterprise. The comment is found by the marker line the report starts with, so reruns edit it instead of
adding another. Standard library only: it runs before or without lowbit's own install.
Exit status: 0 posted or updated, 2 missing configuration or report, 1 the API refused.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

MARKER = "<!-- lowbit-check -->"  # harness.verdicts.report.COMMENT_MARKER (a test checks they agree)
Api = Callable[[str, str, dict | None], object]


def github_api(token: str, base: str) -> Api:
    def call(method: str, path: str, body: dict | None) -> object:
        request = urllib.request.Request(
            f"{base.rstrip('/')}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    return call


def upsert_comment(api: Api, repo: str, pr: int, body: str) -> str:
    """Update the comment that carries the marker, else create one; returns "updated" or "created"."""
    page = 1
    while True:
        comments = api("GET", f"/repos/{repo}/issues/{pr}/comments?per_page=100&page={page}", None)
        assert isinstance(comments, list)
        for comment in comments:
            if MARKER in (comment.get("body") or ""):
                api("PATCH", f"/repos/{repo}/issues/comments/{comment['id']}", {"body": body})
                return "updated"
        if len(comments) < 100:
            break
        page += 1
    api("POST", f"/repos/{repo}/issues/{pr}/comments", {"body": body})
    return "created"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python ci/pr_comment.py REPORT.md", file=sys.stderr)
        return 2
    report = Path(argv[1])
    token = os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN")
    repo, pr = os.environ.get("GITHUB_REPOSITORY"), os.environ.get("LOWBIT_PR", "")
    missing = [
        name
        for name, value in (
            ("GITHUB_TOKEN or GH_TOKEN", token),
            ("GITHUB_REPOSITORY", repo),
            ("LOWBIT_PR (a pull request number)", pr.isdigit()),
        )
        if not value
    ]
    if missing:
        print(f"pr_comment: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    if not report.is_file():
        print(f"pr_comment: no report at {report}", file=sys.stderr)
        return 2
    body = report.read_text(encoding="utf-8")
    if MARKER not in body:
        body = f"{MARKER}\n{body}"
    api = github_api(token, os.environ.get("GITHUB_API_URL", "https://api.github.com"))
    try:
        done = upsert_comment(api, repo, int(pr), body)
    except urllib.error.HTTPError as exc:
        print(f"pr_comment: GitHub API refused: {exc.code} {exc.reason}", file=sys.stderr)
        return 1
    print(f"pr_comment: {done} the lowbit comment on {repo}#{pr}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
