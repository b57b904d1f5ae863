"""The Trade review page as a user meets it: log in to the Airflow UI in headless Chromium, click
"Trade review" in the navigation, choose a range in the page's form, and read what it shows.

Used by the running platform's test (tests/integration/test_platform_up.py). The page marks
``body[data-state=loaded]`` once it has drawn a payload and ``data-start-ms`` / ``data-end-ms``
with the range it drew; the charts are read back from ECharts' own options.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.browser_helpers import ARTIFACTS, chromium_page, log_in

SCREENSHOT = ARTIFACTS / "trade_review.png"
PAGE_SCREENSHOT = ARTIFACTS / "trade_review_page.png"
FAILURE_SCREENSHOT = ARTIFACTS / "trade_review_failure.png"
LOAD_TIMEOUT_MS = 60_000

_CHART_SERIES = """() => Object.fromEntries(
  ['chart-pnl', 'chart-price', 'chart-liquidity', 'chart-equity'].map((id) => {
    const chart = echarts.getInstanceByDom(document.getElementById(id));
    return [id, chart.getOption().series.map((s) => [s.name, s.data.length])];
  }))"""


@dataclass(frozen=True)
class ReviewSeen:
    """What the page showed for the range the user chose."""

    start_ms: int
    end_ms: int
    fills: int
    orders_rows: int
    pnl_text: str
    series: dict[str, dict[str, int]]  # chart id -> series name -> points
    status: str
    first_load_s: float  # click in the navigation -> the page drawn
    refresh_live_s: int  # the refresh interval the page chose for its default range (ends now)
    refresh_past_s: int  # ... and after the user chose a range in the past


def iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _wait_drawn(frame: Any) -> None:
    frame.wait_for_function(
        "() => ['loaded', 'error'].includes(document.body && document.body.dataset.state)",
        timeout=LOAD_TIMEOUT_MS,
    )
    state = frame.evaluate("() => document.body.dataset.state")
    if state != "loaded":
        raise AssertionError(f"the page shows an error: {frame.locator('#error').inner_text()}")


def review_in_browser(url: str, password: str, *, back_ms: int) -> ReviewSeen:
    """Log in, click "Trade review", then choose the range from the default range's start to
    ``back_ms`` before the trader's now (fills of that range are all indexed) and press Show."""
    with chromium_page(FAILURE_SCREENSHOT) as page:
        log_in(page, url, password)
        page.wait_for_load_state("networkidle")
        started = time.monotonic()
        page.get_by_role("link", name="Trade review").click()
        page.wait_for_url("**/plugin/trade-review")
        frame = page.locator("iframe").element_handle().content_frame()
        _wait_drawn(frame)
        first_load_s = time.monotonic() - started
        refresh_live_s = int(frame.input_value("#refresh"))
        start_ms = int(frame.evaluate("() => document.body.dataset.startMs"))
        end_ms = int(frame.evaluate("() => document.body.dataset.endMs")) - back_ms
        frame.fill("#since", iso(start_ms))
        frame.fill("#until", iso(end_ms))
        frame.evaluate("() => { document.body.dataset.state = 'submitted'; }")
        frame.click("button[type=submit]")
        _wait_drawn(frame)
        time.sleep(1)  # the charts' canvases settle before the screenshot
        page.screenshot(path=str(SCREENSHOT))
        series = frame.evaluate(_CHART_SERIES)
        seen = ReviewSeen(
            start_ms=int(frame.evaluate("() => document.body.dataset.startMs")),
            end_ms=int(frame.evaluate("() => document.body.dataset.endMs")),
            fills=int(frame.locator("#fills-count").inner_text()),
            orders_rows=frame.locator("#orders tbody tr").count(),
            pnl_text=frame.locator("#pnl-value").inner_text(),
            series={chart: dict(map(tuple, pairs)) for chart, pairs in series.items()},
            status=frame.locator("#status").inner_text(),
            first_load_s=first_load_s,
            refresh_live_s=refresh_live_s,
            refresh_past_s=int(frame.input_value("#refresh")),
        )
        page.goto(f"{url}/rtc-review/?since={iso(seen.start_ms)}&until={iso(seen.end_ms)}")
        _wait_drawn(page.main_frame)
        page.screenshot(path=str(PAGE_SCREENSHOT), full_page=True)
        return seen


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def anonymous_get(url: str) -> tuple[int, str, str]:
    """(status, Location header, body) of a GET without any login, redirects not followed."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=30) as reply:
            return reply.status, reply.headers.get("Location", ""), reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location", ""), error.read().decode()


def screenshots() -> list[Path]:
    return [path for path in (SCREENSHOT, PAGE_SCREENSHOT) if path.is_file()]
