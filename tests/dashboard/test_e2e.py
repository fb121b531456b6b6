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


def _heatmap_cell(page, family: str, shape_class: str):
    """The heatmap's rectangle for one cell (Vega's SVG marks carry their fields in aria-label)."""
    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    return chart.locator(
        f'[role="graphics-symbol"][aria-label*="family: {family}; shape_class: {shape_class};"]'
    ).first


def _chooser(page, label: str):
    """The text field of the main area's selectbox labelled ``label``; its value is the chosen option."""
    box = page.locator('[data-testid="stMain"] [data-testid="stSelectbox"]').filter(has_text=label)
    return box.get_by_role("combobox")


def test_clicking_a_heatmap_cell_lists_its_cases(browser_page, shots):
    from playwright.sync_api import expect

    base, page = browser_page
    page.goto(page_address(base, "cases"))
    wait_idle(page)
    cell_box, case_box = _chooser(page, "cell (worst first)"), _chooser(page, "case")
    worst, first_case = cell_box.input_value(), case_box.input_value()
    target = " × ".join(("gaussian", "gqa/nq<nk/full"))
    assert worst and worst != target
    # Near the rectangle's corner: its centre holds the label text, drawn on top of it.
    _heatmap_cell(page, "gaussian", "gqa/nq<nk/full").click(position={"x": 4, "y": 4})
    expect(cell_box).to_have_value(target, timeout=30_000)
    wait_idle(page)
    # The case list now holds that cell's cases: the case chooser offers a gaussian GQA case.
    listed = case_box.input_value()
    assert listed != first_case and " gaussian " in listed and "Hq=4 Hkv=2" in listed
    assert page.locator(ERROR_SELECTOR).count() == 0
    page.mouse.move(0, 0)  # the tooltip would hide the outlined cell in the picture
    page.wait_for_timeout(300)
    screenshot(page, shots / "cases-cell-click.png")

    # The keyboard still chooses through the selectbox, and a click on the earlier cell is news again.
    cell_box.click()
    page.keyboard.type(worst)
    page.keyboard.press("Enter")
    expect(cell_box).to_have_value(worst, timeout=30_000)
    wait_idle(page)
    _heatmap_cell(page, "gaussian", "gqa/nq<nk/full").click(position={"x": 4, "y": 4})
    expect(cell_box).to_have_value(target, timeout=30_000)
    wait_idle(page)
    assert page.locator(ERROR_SELECTOR).count() == 0


# The canvas pixels drawn in a saturated colour (a series' line and points; grid and text are grey),
# every 3rd pixel, relative to the canvas's top-left corner.
_COLOURED_PIXELS = """canvas => {
    const box = canvas.getBoundingClientRect(), scale = canvas.width / box.width;
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const out = [];
    for (let y = 0; y < box.height; y += 3) {
        for (let x = 0; x < box.width; x += 3) {
            const i = (Math.round(y * scale) * canvas.width + Math.round(x * scale)) * 4;
            const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
            if (Math.max(r, g, b) - Math.min(r, g, b) > 80) out.push([x, y]);
        }
    }
    return out;
}"""
_TOOLTIP = (
    """() => Array.from(document.querySelectorAll(".vg-tooltip.visible")).map(e => e.innerText).join("\\n")"""
)


def test_trend_tooltip_names_commit_subject_and_time(browser_page, shots):
    base, page = browser_page
    page.goto(page_address(base, "trends"))
    wait_idle(page)
    canvas = page.locator('[data-testid="stVegaLiteChart"]').first.locator("canvas").first
    canvas.wait_for()
    page.wait_for_timeout(500)  # Vega draws after the element appears
    box = canvas.bounding_box()
    shown = ""
    for x, y in canvas.evaluate(_COLOURED_PIXELS):
        page.mouse.move(box["x"] + x, box["y"] + y)
        shown = page.evaluate(_TOOLTIP)
        if shown.strip():
            break
    # A point's tooltip names its commit by short sha, subject line and time of the run.
    assert "commit" in shown and "subject" in shown and "recorded (UTC)" in shown, shown
    assert any(s in shown for s in ("routine change", "planted", "(no subject recorded)")), shown
    screenshot(page, shots / "trends-tooltip.png")
