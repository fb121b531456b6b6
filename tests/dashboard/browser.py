"""A real dashboard server and a real headless Chromium, for the end-to-end tests and the benchmark.

Streamlit listens on 127.0.0.1 only, on a free port; Chromium is Debian's ``/usr/bin/chromium`` driven by
Playwright (never ``playwright install``), with a fresh user-data directory each time.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PAGES = ("overview", "trends", "cases", "failures", "compare")
ERROR_SELECTOR = '[data-testid="stException"], [data-testid="stAlertContentError"]'
START_TIMEOUT_S = 60.0


def missing_browser() -> str | None:
    """Why no browser can be driven here (Playwright or Chromium missing), or None."""
    import importlib.util

    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (it comes with the dev extras)"
    if not Path(CHROMIUM).is_file():
        return f"Chromium not found at {CHROMIUM} (Debian's chromium package)"
    return None


def require_browser() -> None:
    """For a test: with ``CI`` set a missing browser FAILS (CI must run the end-to-end tests); elsewhere
    the test is skipped with the reason, as the PostgreSQL tests are without a server."""
    import pytest

    reason = missing_browser()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the dashboard in a real browser")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard_server(url: str) -> Iterator[str]:
    """A Streamlit server for the database at ``url``; yields its base address."""
    port = free_port()
    env = dict(os.environ)
    with tempfile.TemporaryFile() as log:
        # Started the way users start it: `lowbit dashboard` (which becomes the Streamlit server).
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "dashboard", "--db", url, "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"streamlit did not start: {log.read().decode()[-2000:]}")
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator:
    """A Playwright browser context on Debian's Chromium with a fresh profile."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="lowbit-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
        )
        try:
            yield context
        finally:
            context.close()


def wait_idle(page, timeout_s: float = 30.0) -> None:
    """Until the script run has finished: a title is drawn and the app reports its script not running."""
    page.wait_for_selector("h1", timeout=timeout_s * 1000)
    page.wait_for_selector(
        '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_s * 1000
    )


def first_paint(page, address: str, timeout_s: float = 30.0) -> float:
    """Seconds from navigation to the page's content drawn: its title and every chart rendered, and
    the script run finished."""
    start = time.perf_counter()
    page.goto(address)
    wait_idle(page, timeout_s)
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    for i in range(charts.count()):
        charts.nth(i).locator("canvas, svg").first.wait_for(timeout=timeout_s * 1000)
    return time.perf_counter() - start


def screenshot(page, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def page_address(base: str, name: str) -> str:
    return base + ("/" if name == "overview" else f"/{name}")


if __name__ == "__main__":  # pragma: no cover - manual use: screenshots of a database's pages
    out = Path(sys.argv[2])
    with dashboard_server(sys.argv[1]) as base, chromium() as ctx:
        tab = ctx.new_page()
        for name in PAGES:
            seconds = first_paint(tab, page_address(base, name))
            print(f"{name}: {seconds:.2f} s -> {screenshot(tab, out / f'{name}.png')}")
