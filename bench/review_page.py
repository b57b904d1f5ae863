"""The Trade review page's load time in headless Chromium, beside ``rtc report`` of the same range.

    .venv/bin/python -m bench.review_page [--day 2024-10-28] [--orders 120] [--loads 5] [--no-save]

Goal (issue 12): a page load with one day of minute data (1,440 liquidity documents and at least
100 orders) renders in <= 2 s in headless Chromium.

1. Seeds one real UTC day (``bench/review_seed.py``: the real Binance bars of ``--day`` through
   the history replay's modelled book; a Prophet forecast published for the day into a temporary
   forecast folder; ``--orders`` paper orders through a real ledger) into a fresh index prefix on
   the Elasticsearch node at ``RTC_SEARCH_URL`` (if none answers, a node of the bench's own on
   free ports in its temporary home, stopped afterwards), with the templates of
   ``ensure_templates``.
2. Starts Airflow standalone (``rtcrypto.stack.airflow``) with its own ``RTC_HOME``, free ports,
   an empty DAGs folder (no DAG may start services) and the bench's settings in its environment
   (``RTC_SEARCH_INDEX_PREFIX``, ``RTC_FORECAST_DIR``, ``RTC_FEED=live``: the ISO range is taken
   as it is, forecast offset 0).
3. Logs in through Debian's headless Chromium (``tests/browser_helpers.py``), then per round:
   - page: ``/rtc-review/?since=<day>&until=<day + 1>&refresh=0`` from navigation start
     (``performance.now()`` in the page) to ``body[data-state=loaded]`` and to two animation
     frames later (the charts painted), plus the wall time around ``goto`` and the wait and
     the page's own fetch of ``api/review`` (Resource Timing); the
     first load of the session (cold api-server, empty browser cache) is reported apart; the
     page's fill count (``#fills-count``) must equal the seeded fills;
   - JSON: ``GET /rtc-review/api/review`` of the same range with a bearer token (urllib);
   - ``rtc report --since --until --out`` as a user runs it (a subprocess, the same settings:
     Python start-up, imports, PNG and HTML included), and ``build_report`` in this process (the
     same data and series; matplotlib PNG and HTML).
4. Prints median / min / max of each and the verdict; exit 1 if the median warm page load (to
   the charts painted) is over 2 s. Stops Airflow, deletes the prefix and the temporary home.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import save
from bench.review_seed import (
    DAY_MS,
    MINUTE_MS,
    SeededDay,
    check_finite,
    forecast_documents_of,
    publish_day_forecast,
    seed_day,
)
from rtcrypto.config import Feed, Settings, get_settings
from rtcrypto.search.client import search_client
from rtcrypto.search.indices import ensure_templates
from rtcrypto.stack import airflow
from rtcrypto.stack import search as search_stack
from rtcrypto.supervision.registry import secret_env, settings_env
from tests.browser_helpers import ARTIFACTS, chromium_page, log_in
from tests.helpers import MINUTE_DIR, free_port
from tests.trade_documents import drop_prefix, index_actions

MINUTE_FILE = MINUTE_DIR / "binance_BTCUSDT_1m_2024-10-01_2024-11-04.csv.gz"
GOAL_S = 2.0
LOAD_TIMEOUT_MS = 60_000
# Records when body[data-state] turns "loaded" or "error" (ms since navigation start), and two
# animation frames later (the charts' canvases painted).
TIMING_SCRIPT = """
(() => {
  const watch = new MutationObserver(() => {
    const state = document.body && document.body.dataset.state;
    if ((state === "loaded" || state === "error") && window.__rtcLoadedMs === undefined) {
      window.__rtcLoadedMs = performance.now();
      window.__rtcState = state;
      requestAnimationFrame(() => requestAnimationFrame(() => {
        window.__rtcPaintedMs = performance.now();
      }));
      watch.disconnect();
    }
  });
  watch.observe(document, {subtree: true, attributes: true,
                           attributeFilter: ["data-state"]});
})();
"""

# The two marks above and the page's own fetch of api/review (request start to response end).
RESOURCE_SCRIPT = """
[window.__rtcLoadedMs, window.__rtcPaintedMs,
 performance.getEntriesByType("resource").filter((e) => e.name.includes("/api/review"))
   .map((e) => e.responseEnd - e.startTime).pop()]
"""


@dataclass
class Timings:
    """Seconds per measurement; the first page load apart."""

    cold: dict[str, float] = field(default_factory=dict)
    runs: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.runs.setdefault(name, []).append(seconds)


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def bench_settings(base: Settings, home: Path, prefix: str) -> Settings:
    """The bench's own home, ports, prefix and forecast folder; the live feed's clock."""
    return base.model_copy(
        update={
            "home": home,
            "history_dir": home / "history",
            "forecast_dir": home / "forecast",
            "search_index_prefix": prefix,
            "feed": Feed.live,
            "airflow_home": None,
            "airflow_port": free_port(),
            "airflow_worker_log_port": free_port(),
            "airflow_trigger_log_port": free_port(),
        }
    )


def search_node(base: Settings, home: Path) -> tuple[Settings, bool]:
    """The node at ``RTC_SEARCH_URL`` if it answers; else a node of the bench's own, started in
    ``home`` on free ports (never the shared address), and True: stop it afterwards."""
    if search_stack.search_healthy(base.search_url):
        return base, False
    own = base.model_copy(
        update={
            "home": home,
            "search_url": f"http://127.0.0.1:{free_port()}",
            "search_transport_port": free_port(),
        }
    )
    print(f"no Elasticsearch answers at {base.search_url}: starting one of the bench's own")
    started = search_stack.start_search(own, timeout_s=300)
    print(f"Elasticsearch at {own.search_url} after {started.seconds_to_healthy:.0f} s")
    return own, True


def child_env(settings: Settings) -> dict[str, str]:
    """The ``RTC_*`` variables that make a child process read ``settings``."""
    return {**settings_env(settings), **secret_env(settings)}


# --- measurements ------------------------------------------------------------------------------


def page_load(page: Any, url: str, fills: int) -> dict[str, float]:
    """One navigation to ``url``: seconds to data-state=loaded, to painted, and wall."""
    started = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_function("window.__rtcPaintedMs !== undefined", timeout=LOAD_TIMEOUT_MS)
    wall = time.perf_counter() - started
    state = page.evaluate("window.__rtcState")
    if state != "loaded":
        raise SystemExit(f"the page shows an error: {page.text_content('#error')}")
    shown = (page.text_content("#fills-count") or "").strip()
    if shown != str(fills):
        raise SystemExit(f"the page shows {shown!r} fills, {fills} were seeded")
    loaded_ms, painted_ms, fetch_ms = page.evaluate(RESOURCE_SCRIPT)
    return {
        "page_painted": painted_ms / 1000,
        "page_loaded": loaded_ms / 1000,
        "page_wall": wall,
        "page_fetch": fetch_ms / 1000,
    }


def json_load(url: str, token: str, fills: int) -> float:
    """One ``GET /rtc-review/api/review`` with a bearer token; seconds to the whole body."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as reply:
        body = reply.read()
    seconds = time.perf_counter() - started
    trades = json.loads(body)["summary"]["trades"]
    if trades != fills:
        raise SystemExit(f"the JSON shows {trades} fills, {fills} were seeded")
    return seconds


def report_cli(settings: Settings, since: str, until: str, out_dir: Path, fills: int) -> float:
    """``rtc report --since --until --out`` in a child process; seconds to its exit."""
    command = [sys.executable, "-m", "rtcrypto.cli.main", "report"]
    command += ["--since", since, "--until", until, "--out", str(out_dir)]
    started = time.perf_counter()
    completed = subprocess.run(
        command,
        env={**os.environ, **child_env(settings)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"rtc report failed ({completed.returncode}): {completed.stderr[-2000:]}")
    trades = json.loads((out_dir / "summary.json").read_text())["trades"]
    if trades != fills:
        raise SystemExit(f"rtc report shows {trades} fills, {fills} were seeded")
    return seconds


def report_in_process(settings: Settings, start_ms: int, end_ms: int, out_dir: Path) -> float:
    """``build_report`` of the range (the CLI's work without its start-up); seconds."""
    from rtcrypto.report import build_report

    client = search_client(settings, max_retries=0)
    started = time.perf_counter()
    try:
        build_report(
            client,
            start_ms=start_ms,
            end_ms=end_ms,
            prefix=settings.search_index_prefix,
            forecast_dir=settings.forecast_dir,
            out_dir=out_dir,
        )
    finally:
        client.close()
    return time.perf_counter() - started


# --- the run -----------------------------------------------------------------------------------


def seed(settings: Settings, day_ms: int, orders: int) -> SeededDay:
    """Publish the day's forecast and index the day's documents under the bench's prefix."""
    from rtcrypto.history import import_file

    assert settings.history_dir is not None and settings.forecast_dir is not None
    import_file(MINUTE_FILE, history_dir=settings.history_dir)
    began = time.perf_counter()
    version = publish_day_forecast(day_ms, settings.history_dir, settings.forecast_dir)
    print(f"forecast {version} published in {time.perf_counter() - began:.1f} s")
    began = time.perf_counter()
    prefix = settings.search_index_prefix
    seeded = seed_day(day_ms, settings.history_dir, orders=orders, version=version, prefix=prefix)
    seeded.actions += forecast_documents_of(version, settings.forecast_dir, prefix)
    check_finite(seeded)
    client = search_client(settings, request_timeout_s=120.0, max_retries=0)
    try:
        ensure_templates(client, prefix)
        index_actions(client, seeded.actions)
    finally:
        client.close()
    print(
        f"seeded {len(seeded.actions):,} documents under {prefix}-* in "
        f"{time.perf_counter() - began:.1f} s: {seeded.liquidity} liquidity, {seeded.tickers} "
        f"ticker, {seeded.orders} orders, {seeded.fills} fills, {seeded.round_trips} round trips"
    )
    return seeded


def measure(settings: Settings, seeded: SeededDay, day_ms: int, loads: int) -> Timings:
    """Start Airflow, log in, and time ``loads`` rounds of page / JSON / report (see the doc)."""
    since, until = iso(day_ms), iso(day_ms + DAY_MS)
    query = urllib.parse.urlencode({"since": since, "until": until})
    base = settings.airflow_url
    page_url = f"{base}/rtc-review/?{query}&refresh=0"
    json_url = f"{base}/rtc-review/api/review?{query}"
    timings = Timings()
    empty_dags = settings.home / "no-dags"
    empty_dags.mkdir(parents=True, exist_ok=True)
    extra_env = {**child_env(settings), "AIRFLOW__CORE__DAGS_FOLDER": str(empty_dags)}
    began = time.perf_counter()
    airflow.start_airflow(settings, timeout_s=300, extra_env=extra_env)
    print(f"Airflow standalone answering at {base} after {time.perf_counter() - began:.0f} s")
    password = airflow.admin_password(settings)
    token = airflow.api_token(base, airflow.ADMIN_USER, password)
    with chromium_page(ARTIFACTS / "review_page_bench_failure.png") as page:
        page.add_init_script(TIMING_SCRIPT)
        log_in(page, base, password)
        timings.cold = page_load(page, page_url, seeded.fills)
        page.screenshot(path=str(ARTIFACTS / "review_page_bench.png"), full_page=True)
        for round_number in range(loads):
            for name, seconds in page_load(page, page_url, seeded.fills).items():
                timings.add(name, seconds)
            timings.add("json", json_load(json_url, token, seeded.fills))
            out_dir = settings.home / "reports" / f"run-{round_number}"
            timings.add("report_cli", report_cli(settings, since, until, out_dir, seeded.fills))
            timings.add(
                "report_build",
                report_in_process(settings, day_ms, day_ms + DAY_MS, out_dir / "in-process"),
            )
            print(f"  round {round_number + 1}/{loads} done")
    return timings


LABELS = {
    "page_painted": "page load, navigation start -> charts painted (warm)",
    "page_loaded": "page load, navigation start -> data-state=loaded (warm)",
    "page_wall": "page load, wall time around goto + wait (warm)",
    "page_fetch": "the page's fetch of api/review, in the page (warm)",
    "json": "GET /rtc-review/api/review alone (bearer token)",
    "report_cli": "rtc report --since --until (child process, PNG + HTML)",
    "report_build": "build_report in process (same data, PNG + HTML)",
}


def print_table(timings: Timings) -> None:
    print(f"\n{'measurement':58s} {'n':>3s} {'median':>8s} {'min':>8s} {'max':>8s}")
    for name, label in LABELS.items():
        values = timings.runs[name]
        print(
            f"{label:58s} {len(values):3d} {statistics.median(values):7.3f}s "
            f"{min(values):7.3f}s {max(values):7.3f}s"
        )
    cold = timings.cold
    print(
        "first page load after Airflow's start (cold api-server, empty browser cache): painted "
        f"{cold['page_painted']:.3f} s, loaded {cold['page_loaded']:.3f} s, wall "
        f"{cold['page_wall']:.3f} s, of which its fetch of api/review {cold['page_fetch']:.3f} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", default="2024-10-28", help="UTC day inside the minute file")
    parser.add_argument("--orders", type=int, default=120, help="paper orders over the day")
    parser.add_argument("--loads", type=int, default=5, help="warm rounds (after one cold load)")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results")
    args = parser.parse_args(argv)
    if not 100 <= args.orders <= 1_440 or args.loads < 1:
        parser.error(
            "--orders must be 100 .. 1440 (the goal's day; one a minute at most), --loads >= 1"
        )
    from rtcrypto.simulator.history_replay import HistoryReplayError, parse_utc_ms

    try:
        day_ms = parse_utc_ms(args.day, "--day")
    except HistoryReplayError as error:
        parser.error(str(error))
    if day_ms % MINUTE_MS:
        parser.error("--day must be a date (YYYY-MM-DD) or a minute boundary")
    home = Path(tempfile.mkdtemp(prefix="bench-review-"))
    base, own_node = search_node(get_settings(), home)
    settings = bench_settings(base, home, f"rtcbench{uuid.uuid4().hex[:8]}")
    try:
        seeded = seed(settings, day_ms, args.orders)
        timings = measure(settings, seeded, day_ms, args.loads)
    finally:
        airflow.stop_airflow(settings)
        client = search_client(settings, max_retries=0)
        try:
            drop_prefix(client, settings.search_index_prefix)
        finally:
            client.close()
        if own_node:
            search_stack.stop_search(base)
        shutil.rmtree(home, ignore_errors=True)
    print_table(timings)
    median_s = statistics.median(timings.runs["page_painted"])
    met = median_s <= GOAL_S
    print(
        f"median warm page load {median_s:.3f} s (1,440 liquidity minutes, {seeded.orders} "
        f"orders, {seeded.fills} fills): goal <= {GOAL_S:g} s {'met' if met else 'NOT met'}"
    )
    if not args.no_save:
        result = {
            "day": args.day,
            "orders": seeded.orders,
            "fills": seeded.fills,
            "liquidity_documents": seeded.liquidity,
            "load_average": os.getloadavg(),
            "cold": timings.cold,
            "seconds": timings.runs,
            "median_warm_page_s": median_s,
            "goal_met": met,
        }
        print(f"saved {save('review_page', result)}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
