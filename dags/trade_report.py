"""trade_report: the daily trade review (HTML + PNG) of the last hours of the trader's clock.

Runs at 01:00 UTC and reviews the last ``RTC_REPORT_HOURS`` hours (24) of the **feed clock**, the
trader's clock (``rtcrypto/exchange/feedclock.py``), so the report holds the minutes the trader actually
traded, also when the simulator replays historical days:

- live feed: the range ends at the run's ``data_interval_end`` (the wall clock of the scheduled
  run), so a rerun of the same run rebuilds the same report (same documents, same files; each
  file is replaced atomically);
- simulator feed: the range ends at the simulator's time when the task runs (e.g. 2024-10-28
  13:00 UTC during a history replay; shifted to now in a capture replay with --shift-to-now);
  once the simulator is stopped, at the newest liquidity window or order recorded in
  Elasticsearch. A rerun while the replay goes on reviews the newer hours.

``summary.json`` and the page say which clock was used. A manual trigger works the same way.
Task ``build_report`` reads the trader's scores, fills,
orders, balances, ticker and liquidity documents from Elasticsearch (``SearchHook``: the Airflow
connection ``elasticsearch_default``, else ``RTC_SEARCH_URL``; indices
``<RTC_SEARCH_INDEX_PREFIX>-*``) and the current forecast (the asset ``rtc_forecast``, declared
as the task's inlet), and writes ``report.html``,
``report.png`` and ``summary.json`` into ``<home>/reports/trade_report/<start>--<end>/`` (the
reviewed range, whole minutes, UTC). Param ``mode`` keeps one trading mode (paper, sandbox, live);
empty keeps all. The same report from a shell: ``rtc report --since 24h``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import CronTriggerTimetable, Param, dag, task
from rtc_airflow.assets import FORECAST

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "rtcrypto",
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
}
# A trigger timetable with a one-day interval: the 01:00 run's data interval is the 24 hours
# before it (a bare cron string would give Airflow 3 an empty interval, start == end).
SCHEDULE = CronTriggerTimetable("0 1 * * *", timezone="UTC", interval=timedelta(days=1))


HOUR_MS = 3_600_000
MINUTE_MS = 60_000


def minute_ceiling_ms(ts_ms: int) -> int:
    """``ts_ms`` rounded up to a whole minute (the range ends after the current minute)."""
    return -(-ts_ms // MINUTE_MS) * MINUTE_MS


def moment(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, UTC)


def report_folder_name(start: datetime, end: datetime) -> str:
    """``2026-11-27T0100Z--2026-11-28T0100Z``: one folder per data interval."""
    return f"{start.astimezone(UTC):%Y-%m-%dT%H%MZ}--{end.astimezone(UTC):%Y-%m-%dT%H%MZ}"


@dag(
    dag_id="trade_report",
    description="Daily trade review of the trader's clock's last hours: orders, fills, round "
    "trips, P&L after fees, as HTML + PNG",
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    is_paused_upon_creation=False,  # runs on its schedule without a click
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["rtcrypto", "trader", "report"],
    doc_md=__doc__,
    params={
        "mode": Param(
            "",
            type=["null", "string"],
            enum=[None, "", "paper", "sandbox", "live"],
            title="Trading mode",
            description="paper, sandbox or live; empty reviews every mode together.",
        ),
    },
)
def trade_report() -> None:
    @task(execution_timeout=timedelta(minutes=30), inlets=[FORECAST])
    def build_report(
        data_interval_start: datetime | None = None,
        data_interval_end: datetime | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Build the report of the feed clock's last ``RTC_REPORT_HOURS``; return its summary."""
        import logging

        from airflow.sdk.exceptions import AirflowFailException
        from rtc_airflow.hooks import SearchHook

        from rtcrypto.config import get_settings
        from rtcrypto.report import ReportError
        from rtcrypto.report import build_report as build
        from rtcrypto.report.clock import WALL, review_clock

        log = logging.getLogger(__name__)
        if data_interval_end is None:
            raise AirflowFailException("this run has no data interval: trigger it on a schedule")
        mode = str((params or {}).get("mode") or "").strip() or None
        settings = get_settings()
        client = SearchHook().get_conn()  # elasticsearch_default, else RTC_SEARCH_URL
        try:
            clock = review_clock(settings, client, symbol=settings.trader_symbol)
            # the wall clock's "now" of a scheduled run is its data interval's end (reruns agree)
            end_ms = (
                int(data_interval_end.timestamp() * 1000)
                if clock.source == WALL
                else minute_ceiling_ms(clock.now_ms)
            )
            start_ms = end_ms - int(settings.report_hours * HOUR_MS)
            log.info("reviewing %s", clock.description)
            folder = (
                settings.reports_dir
                / "trade_report"
                / report_folder_name(moment(start_ms), moment(end_ms))
            )
            result = build(
                client,
                start_ms=start_ms,
                end_ms=end_ms,
                prefix=settings.search_index_prefix,
                forecast_dir=settings.forecast_dir,
                out_dir=folder,
                mode=mode,
                symbol=settings.trader_symbol,
                forecast_offset_ms=clock.forecast_offset_ms,
                # a wall-clock run names its data interval, not the moment it ran: reruns agree
                clock=(
                    "feed clock: wall clock (live feed), the run's data interval"
                    if clock.source == WALL
                    else clock.description
                ),
            )
        except ReportError as error:  # a bad param or range: a retry cannot help
            raise AirflowFailException(str(error)) from None
        finally:
            client.close()
        for line in result.summary.lines():
            log.info("%s", line)
        log.info("report: %s", result.html_path)
        return {
            "html": str(result.html_path),
            "png": str(result.png_path),
            "json": str(result.json_path),
            **result.summary.as_dict(),
        }

    build_report()


trade_report()
