"""forecast_retrain: nightly (or on new history) Prophet retrain, backtest, gated publish.

Schedule: daily at 00:30 UTC **or** when the asset ``rtc_history`` gets an event (an import by
``history_download``): ``rtc_airflow.assets.FORECAST_RETRAIN_SCHEDULE``.

``select_window`` picks the history source and window by the rule of
``rtcrypto.forecast.selection``: the param ``source``, else ``RTC_FORECAST_SOURCE``, else the
platform's own recorded bars (``RTC_HISTORY_FEED_SOURCE``) when they hold a full window of
``training_days`` days, else the imported source whose latest full window is newest; a full window
has >= ``RTC_FORECAST_MIN_COVERAGE`` (90 %) of its training and of its held-out minutes. It never
picks a source too short: when none qualifies, the run is **skipped** with the reason (not failed
and retried). Only minutes before the trader's clock count (``rtcrypto.exchange.feedclock``: the simulator's
time while it replays history, else the wall clock), so a replay never trains on minutes the trader
has not reached; given the stored minutes and that clock, a rerun trains on the same ones.
``train_and_publish`` calls ``rtcrypto.forecast.publish.publish``: train on the window before its
held-out days, forecast ``horizon_minutes`` minutes, score the holdout (hit rate, P&L after
fees, baselines), write a version, and make it ``current`` past the gate
(``rtcrypto.forecast.publish``: not worse than the current one on the common holdout, or the
current one no longer covers the trader's next hours).
``book_parity`` trains stock Prophet on every minute, as the book did (slow).
``report`` logs the verdict. A successful ``train_and_publish`` is an event of the asset
``rtc_forecast`` (the version it wrote, and whether it became current, in the event's extra); the
consumers of the current forecast declare it. Import history first (DAG ``history_download`` or
``rtc history import FILE``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task
from rtc_airflow.assets import FORECAST, FORECAST_RETRAIN_SCHEDULE

DEFAULT_HORIZON_MINUTES = 150_000  # the book's horizon; rtcrypto.forecast has the same default
# = rtcrypto.config.FORECAST_HORIZON_MAX_MINUTES (a year of minutes; why: there), not imported:
# DAG files import nothing of the project at parse time (a test checks both are equal)
MAX_HORIZON_MINUTES = 525_600
MAX_TRAINING_DAYS = 366  # a year of minute bars is ~527k rows: Prophet's fit time grows with it
# As `rtc up`'s first forecast (rtcrypto/platform/bootstrap.py): 21 days fit inside every real segment of
# ../shared/data/minute, so a replay's retrain trains on the days just before the trader's clock.
DEFAULT_TRAINING_DAYS = 21

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "rtcrypto",
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
}


def _select_window(params: dict[str, Any]) -> dict[str, Any]:
    """Source and ``[start, end)`` of the training window (ISO UTC), by the rule of
    ``rtcrypto.forecast.selection``; skipped (with the reason) when no source qualifies."""
    import logging

    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from rtcrypto.config import get_settings
    from rtcrypto.forecast.selection import (
        NoSourceQualifies,
        UnknownSourceError,
        select_training_window,
    )
    from rtcrypto.report.clock import trader_now_ms

    days = int(params.get("training_days") or DEFAULT_TRAINING_DAYS)
    # The trader's clock: a replay of history trains only on minutes the trader has passed.
    now_ms, clock = trader_now_ms(get_settings())
    logging.getLogger(__name__).info("trader's clock: %s", clock)
    try:
        choice = select_training_window(
            training_days=days, param_source=params.get("source"), until_ms=now_ms
        )
    except NoSourceQualifies as error:
        raise AirflowSkipException(f"no retrain: {error}") from None
    except UnknownSourceError as error:
        raise AirflowFailException(str(error)) from None
    window = {**choice.to_dict(), "now_ms": now_ms}
    logging.getLogger(__name__).info(
        "training window: %s %s .. %s (%s)",
        window["source"],
        window["start"],
        window["end"],
        window["why"],
    )
    return window


def _train_and_publish(window: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Train, forecast, backtest on the holdout and publish a version past the gate."""
    import logging

    from rtcrypto.config import get_settings
    from rtcrypto.forecast.publish import publish
    from rtcrypto.history import load_history
    from rtcrypto.trading.backtest import BacktestConfig

    log = logging.getLogger(__name__)
    settings = get_settings()
    bars = load_history(window["source"], window["start"], window["end"])
    holdout_days = float(window["holdout_days"])
    log.info(
        "training on %s minutes of %s from %s to %s (holdout %.1f days)",
        f"{len(bars):,}",
        window["source"],
        window["start"],
        window["end"],
        holdout_days,
    )
    result = publish(
        bars,
        source=window["source"],
        holdout_days=holdout_days,
        horizon_minutes=int(params.get("horizon_minutes") or DEFAULT_HORIZON_MINUTES),
        book_parity=bool(params.get("book_parity", False)),
        config=BacktestConfig.from_settings(settings),
        now_ms=window.get("now_ms"),  # staleness of the current version on the trader's clock
    )
    return {
        "version": result.version,
        "folder": str(result.folder),
        "promoted": result.promoted,
        "reason": result.reason,
        "rule": result.metadata.get("gate", {}).get("rule", ""),
        "backtest": result.metadata.get("backtest", {}),
        "training": result.metadata.get("training", {}),
    }


@dag(
    dag_id="forecast_retrain",
    description="Train Prophet on the imported history, backtest, publish past the gate",
    schedule=FORECAST_RETRAIN_SCHEDULE,  # daily at 00:30 UTC, or when new history is imported
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    # The nightly refresh runs without a click. With catchup off, a fresh Airflow (or an unpause)
    # still starts one run for the latest 00:30 at once, with the default params.
    is_paused_upon_creation=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["rtcrypto", "forecast"],
    doc_md=__doc__,
    params={
        "training_days": Param(
            DEFAULT_TRAINING_DAYS,
            type="integer",
            minimum=2,
            maximum=MAX_TRAINING_DAYS,
            title="Training window (days)",
            description="The last N days of imported history; the held-out days are its end.",
        ),
        "horizon_minutes": Param(
            DEFAULT_HORIZON_MINUTES,
            type="integer",
            minimum=1,
            maximum=MAX_HORIZON_MINUTES,
            title="Forecast horizon (minutes)",
            description="Minutes forecast after the training window (book: 150,000).",
        ),
        "book_parity": Param(
            False,
            type="boolean",
            title="Book parity",
            description="Stock Prophet on every minute, as the book did (slow).",
        ),
        "source": Param(
            None,
            type=["null", "string"],  # optional: an empty field must not block the trigger form
            pattern=r"^([A-Za-z0-9_.-]{1,100})?$",  # a source name, never a path (RTC_FORECAST_SOURCE)
            title="History source",
            description="Imported source (kaggle_bitstamp, binance, ...); empty: the rule "
            "(RTC_FORECAST_SOURCE, else the feed's bars, else the newest full window).",
        ),
    },
)
def forecast_retrain() -> None:
    @task(execution_timeout=timedelta(minutes=10))
    def select_window(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Source and training window by ``rtcrypto.forecast.selection`` (or skipped, why)."""
        return _select_window(params or {})

    # Its success is an event of the asset rtc_forecast (a published version; its extra says
    # whether it became current), which the forecast's consumers declare.
    @task(execution_timeout=timedelta(hours=2), outlets=[FORECAST])
    def train_and_publish(
        window: dict[str, Any],
        params: dict[str, Any] | None = None,
        outlet_events: Any = None,
    ) -> dict[str, Any]:
        """Train, forecast, backtest on the holdout and publish a version past the gate."""
        result = _train_and_publish(window, params or {})
        if outlet_events is not None:
            outlet_events[FORECAST].extra = {
                key: result[key] for key in ("version", "promoted", "rule")
            }
        return result

    @task(execution_timeout=timedelta(minutes=5))
    def report(result: dict[str, Any]) -> None:
        """Log the gate's verdict and the holdout figures."""
        import logging

        log = logging.getLogger(__name__)
        status = "current" if result["promoted"] else "candidate (not promoted)"
        log.info("version %s -> %s: %s", result["version"], result["folder"], status)
        log.info("gate (%s): %s", result.get("rule", ""), result["reason"])
        log.info("holdout metrics: %s", result["backtest"])

    report(train_and_publish(select_window()))


forecast_retrain()
