"""The HTML report in a real browser: headless Chromium driven by Playwright.

Loads ``index.html`` from a local file with every network fetch refused, checks
the grid and the counts the JavaScript shows, the filters and sorting, opens a
diverging cell and finds its diagnosis and plots, and saves screenshots under
the test's tmp_path. Skipped, with the reason, when Playwright or Chromium is
absent (``CONFORMANCE_CHROMIUM`` names another Chromium binary).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conformance.report import write_reports
from tests.test_report_html import CASE_FILE, DIAGNOSIS, EXPECTED_COUNTS, MOMENTS, SINGLE, TWO_STEPS, sample_record

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
CHROMIUM = os.environ.get("CONFORMANCE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)", allow_module_level=True)

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    case_file = tmp_path / "cases.yaml"
    case_file.write_text(CASE_FILE)
    html = write_reports(sample_record(case_file), tmp_path / "reports" / "r-html")["html"]
    pg = browser.new_page(viewport={"width": 1400, "height": 900})
    problems, requests = [], []
    pg.on("pageerror", lambda exc: problems.append(str(exc)))
    pg.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    pg.on("request", lambda req: requests.append(req.url))
    pg.goto(html.as_uri())
    pg.wait_for_selector("body[data-ready]", timeout=10_000)
    yield pg
    assert problems == [], problems
    assert all(u.startswith(("file:", "data:", "blob:", "about:")) for u in requests), requests
    pg.close()


def visible_cases(pg) -> list[str]:
    return pg.eval_on_selector_all("#grid tbody tr:not(.hidden)", "rows => rows.map(r => r.dataset.case)")


def test_grid_renders_with_the_right_counts(page, tmp_path):
    assert page.get_attribute("body", "data-ready") == "1"  # the embedded data decoded, the script ran
    for adapter, statuses in EXPECTED_COUNTS.items():
        for status in ("pass", "diverge", "expected-divergence", "xpass", "error", "unsupported", "skipped"):
            shown = page.locator(f'#grid td.cell[data-adapter="{adapter}"][data-status="{status}"]').count()
            assert shown == statuses.get(status, 0), (adapter, status)
            counted = page.inner_text(f'#counts tr[data-adapter="{adapter}"] td[data-status="{status}"]')
            assert int(counted) == statuses.get(status, 0), (adapter, status)
    assert page.inner_text("#f-shown") == "showing 3 of 3 cases"
    page.screenshot(path=str(tmp_path / "grid.png"), full_page=True)


def test_filters_and_sorting(page):
    page.select_option("#f-op", "moments")
    assert visible_cases(page) == [MOMENTS]
    page.select_option("#f-op", "")
    for status in ("pass", "diverge", "expected-divergence", "error", "unsupported", "skipped"):
        page.uncheck(f'#f-status input[value="{status}"]')
    assert visible_cases(page) == [SINGLE]  # the only case with an xpass
    page.check('#f-status input[value="error"]')
    assert sorted(visible_cases(page)) == sorted([SINGLE, TWO_STEPS])
    page.click("#f-adapters summary")
    page.uncheck('#f-adapters input[value="gamma"]')
    assert page.locator('#grid th.ad[data-adapter="gamma"]').is_hidden()
    assert visible_cases(page) == [SINGLE]  # the error is gamma's, now hidden
    page.check('#f-adapters input[value="gamma"]')
    for status in ("pass", "diverge", "expected-divergence", "unsupported", "skipped"):
        page.check(f'#f-status input[value="{status}"]')
    page.select_option("#f-sort", "error")
    assert visible_cases(page)[0] == MOMENTS  # relative error ~100 on gamma: the largest
    page.click('#grid th.ad[data-adapter="beta"]')
    assert visible_cases(page)[0] == TWO_STEPS  # beta's only divergence


def test_clicking_a_diverging_cell_opens_its_diagnosis_and_plots(page, tmp_path):
    page.click(f'#grid tr[data-case="{TWO_STEPS}"] td.cell[data-adapter="beta"]')
    panel = page.locator("#panel")
    assert panel.is_visible()
    text = panel.inner_text()
    assert DIAGNOSIS in text and "unbiased-moving-variance" in text
    assert f"conformance run {tmp_path / 'cases.yaml'} -a beta -k {TWO_STEPS}" in text
    assert "id: batch_norm/demo/two-steps" in page.inner_text("#panel pre.yaml")
    assert page.locator('#panel .errplots[data-output="step2.moving_variance"] canvas.heat').count() == 1
    assert page.locator('#panel .errplots[data-output="step2.moving_variance"] .uplot').count() == 1  # histogram
    # the multi-step chart: moving mean and moving variance, each with expected + the 2 adapters that produced them
    assert page.locator("#panel .msplots .uplot").count() == 2
    legend = page.inner_text("#panel .msplots .uplot >> nth=1")
    assert "expected" in legend and "alpha" in legend and "beta" in legend and "gamma" not in legend
    page.screenshot(path=str(tmp_path / "diverging-cell.png"))
    assert (tmp_path / "diverging-cell.png").stat().st_size > 10_000
    page.keyboard.press("Escape")
    assert panel.is_hidden()


def test_xpass_and_missing_case_file_are_explained(page):
    page.click(f'#grid tr[data-case="{SINGLE}"] td.cell[data-adapter="beta"]')
    assert "Passed although declared as a known divergence" in page.inner_text("#panel")
    page.click(f'#grid tr[data-case="{MOMENTS}"] td.cell[data-adapter="gamma"]')
    text = page.inner_text("#panel")
    assert "was not readable when this report was rendered" in text and "gone/missing.yaml" in text
