"""The dashboard in a real headless Chromium: every page loads without an error element, a filter click
changes the chart, and a screenshot of each page is saved (``$LOWBIT_SCREENSHOTS``, else pytest's tmp)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.dashboard.browser import (
    ERROR_SELECTOR,
    PAGES,
    chromium,
    dashboard_server,
    page_address,
    require_browser,
    screenshot,
    wait_idle,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def browser_page(history_db):
    require_browser()
    url, _ = history_db
    with dashboard_server(url) as base, chromium() as context:
        yield base, context.new_page()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    where = os.environ.get("LOWBIT_SCREENSHOTS")
    return Path(where) if where else tmp_path_factory.mktemp("screenshots")


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_without_error(browser_page, shots, name):
    base, page = browser_page
    page.goto(page_address(base, name))
    wait_idle(page)
    assert page.locator("h1").first.inner_text().strip() == name.capitalize()
    assert page.locator(ERROR_SELECTOR).count() == 0
    if name != "failures":
        page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
    path = screenshot(page, shots / f"{name}.png")
    assert path.stat().st_size > 10_000


def _pick(page, label: str, option: str) -> None:
    """Open the sidebar widget labelled ``label`` and click ``option`` in its list."""
    widget = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').filter(has_text=label)
    widget.locator("input").first.click()
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")


def test_filter_click_changes_the_chart(browser_page, shots):
    base, page = browser_page
    page.goto(page_address(base, "trends"))
    wait_idle(page)
    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    chart.locator("canvas, svg").first.wait_for()
    before = chart.screenshot()
    _pick(page, "distribution family", "outliers")
    page.wait_for_timeout(300)
    wait_idle(page)
    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    chart.locator("canvas, svg").first.wait_for()
    page.wait_for_timeout(500)  # Vega draws after the element appears
    after = chart.screenshot()
    assert after != before
    assert page.locator(ERROR_SELECTOR).count() == 0
    screenshot(page, shots / "trends-outliers.png")
