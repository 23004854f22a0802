"""report.html and compare.html in a real headless Chromium (the system package, driven by Playwright): the page
loads offline with no console errors, and the charts are drawn, which is checked on screenshots (pixels of the
lines' colours), not only in the DOM.

Chromium comes from tests/report/setup (run by `python3 dev.py test`). Without it the test skips saying why; with
CI=true it fails instead, so CI never skips it silently.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from botkit.cli import main

ROOT = Path(__file__).resolve().parents[2]

EQUITY_BLUE = (31, 119, 180)  # #1f77b4
DRAWDOWN_FILL = (243, 186, 187)  # rgba(214,39,40,0.35) over white
BUY_GREEN = (44, 160, 44)  # #2ca02c
SELL_RED = (214, 39, 40)  # #d62728
SECOND_RUN = (255, 127, 14)  # plotly's second colour, #ff7f0e


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}; CI=true makes the browser test mandatory (tests/report/setup installs Chromium)")
    pytest.skip(why)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    _unavailable("Chromium is not installed (run tests/report/setup as root, or apt-get install chromium)")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    exe = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e .[dev])")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _open(browser: Any, page_path: Path) -> tuple[Any, list[str], list[str]]:
    """Open a page with every non-file request refused; returns the page, console errors and refused URLs."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))

    def route(r: Any) -> None:
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(page_path.as_uri())
    page.wait_for_function("document.body.getAttribute('data-charts') !== null", timeout=30_000)
    return page, errors, outside


def _pixels(png: bytes, rgb: tuple[int, int, int], tol: int = 30) -> int:
    """How many pixels of the screenshot are within `tol` of the colour `rgb` on every channel."""
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    return int((np.abs(img - np.asarray(rgb, dtype=np.int16)) <= tol).all(axis=2).sum())


def _shot(page: Any, selector: str) -> bytes:
    el = page.locator(selector)
    el.scroll_into_view_if_needed()
    png: bytes = el.screenshot()
    return png


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("runs")
    old = Path.cwd()
    os.chdir(ROOT)
    try:
        for name in ("bollinger", "sma_cross"):
            assert main(["backtest", f"configs/{name}.toml", "-q", "--out", str(out / name)]) == 0
        assert main(["compare", str(out / "bollinger"), str(out / "sma_cross"), "--html",
                     str(out / "compare.html")]) == 0
    finally:
        os.chdir(old)
    return {"bollinger": out / "bollinger", "sma_cross": out / "sma_cross", "compare": out / "compare.html"}


def test_report_page_loads_offline_and_draws_its_charts(browser: Any, runs: dict[str, Path]) -> None:
    page, errors, outside = _open(browser, runs["bollinger"] / "report.html")
    try:
        assert errors == []
        assert outside == []  # self-contained: nothing fetched from anywhere
        assert page.locator("#chart-equity .main-svg").count() > 0
        equity = _shot(page, "#chart-equity")
        assert _pixels(equity, EQUITY_BLUE) > 1500, "the equity line is drawn"
        assert _pixels(equity, DRAWDOWN_FILL, tol=12) > 1500, "the drawdown area is drawn"
        price = _shot(page, "#chart-price-0")
        assert _pixels(price, BUY_GREEN) > 300, "buy markers are drawn"
        assert _pixels(price, SELL_RED) > 300, "sell markers are drawn"
        # the pixel check can fail: the metrics table has none of the equity line's colour
        table = _shot(page, "table.kv >> nth=0")
        assert _pixels(table, EQUITY_BLUE) < 20
        text = page.inner_text("body")
        for heading in ("Equity and drawdown", "Metrics", "Price with entries and exits", "Monthly returns",
                        "Round trips", "Lots (FIFO", "Data and config"):
            assert heading in text
        assert "take-profit" in text or "stop" in text  # exit reasons reach the trade list
    finally:
        page.close()


def test_compare_page_draws_one_line_per_run(browser: Any, runs: dict[str, Path]) -> None:
    page, errors, outside = _open(browser, runs["compare"])
    try:
        assert errors == [] and outside == []
        chart = _shot(page, "#chart-compare")
        assert _pixels(chart, EQUITY_BLUE) > 1000 and _pixels(chart, SECOND_RUN) > 1000
    finally:
        page.close()


def test_a_missing_browser_skips_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no browser here"):
        _unavailable("no browser here")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true makes the browser test mandatory"):
        _unavailable("no browser here")
