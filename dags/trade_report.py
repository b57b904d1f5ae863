"""trade_report: the daily trade review (HTML + PNG) of the run's data interval.

Runs at 01:00 UTC and reviews the 24 hours before: the data interval ``[data_interval_start,
data_interval_end)`` of the run, never the clock, so a rerun of the same interval rebuilds the
same report (same documents, same files; each file is replaced atomically). A manual trigger
reviews the 24 hours before the trigger. Task ``build_report`` reads the trader's scores, fills,
orders, balances, ticker and liquidity documents from Elasticsearch (``RTC_SEARCH_URL``, indices
``<RTC_SEARCH_INDEX_PREFIX>-*``) and the current forecast, and writes ``report.html``,
``report.png`` and ``summary.json`` into ``<home>/reports/trade_report/<start>--<end>/``.
Param ``mode`` keeps one trading mode (paper, sandbox, live); empty keeps all. The same report
from a shell: ``rtc report --since 24h``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import CronTriggerTimetable, Param, dag, task

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "rtcrypto",
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
}
# A trigger timetable with a one-day interval: the 01:00 run's data interval is the 24 hours
# before it (a bare cron string would give Airflow 3 an empty interval, start == end).
SCHEDULE = CronTriggerTimetable("0 1 * * *", timezone="UTC", interval=timedelta(days=1))


def report_folder_name(start: datetime, end: datetime) -> str:
    """``2026-11-27T0100Z--2026-11-28T0100Z``: one folder per data interval."""
    return f"{start.astimezone(UTC):%Y-%m-%dT%H%MZ}--{end.astimezone(UTC):%Y-%m-%dT%H%MZ}"


@dag(
    dag_id="trade_report",
    description="Daily trade review: orders, fills, round trips, P&L after fees, as HTML + PNG",
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
            title="Trading mode",
            description="paper, sandbox or live; empty reviews every mode together.",
        ),
    },
)
def trade_report() -> None:
    @task(execution_timeout=timedelta(minutes=30))
    def build_report(
        data_interval_start: datetime | None = None,
        data_interval_end: datetime | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Build the report of ``[data_interval_start, data_interval_end)``; return its summary."""
        import logging

        from airflow.sdk.exceptions import AirflowFailException

        from rtcrypto.config import get_settings
        from rtcrypto.report import ReportError
        from rtcrypto.report import build_report as build
        from rtcrypto.search import search_client

        log = logging.getLogger(__name__)
        if data_interval_start is None or data_interval_end is None:
            raise AirflowFailException("this run has no data interval: trigger it on a schedule")
        mode = str((params or {}).get("mode") or "").strip() or None
        settings = get_settings()
        folder = (
            settings.home
            / "reports"
            / "trade_report"
            / report_folder_name(data_interval_start, data_interval_end)
        )
        client = search_client(settings)
        try:
            result = build(
                client,
                start_ms=int(data_interval_start.timestamp() * 1000),
                end_ms=int(data_interval_end.timestamp() * 1000),
                prefix=settings.search_index_prefix,
                forecast_dir=settings.forecast_dir,
                out_dir=folder,
                mode=mode,
                symbol=settings.trader_symbol,
                forecast_offset_ms=settings.trader_forecast_offset_ms or 0,
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
