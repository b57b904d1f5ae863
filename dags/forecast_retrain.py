"""forecast_retrain: nightly Prophet retrain on the imported history, backtest, gated publish.

``select_window`` picks the history source (param ``source``, else the one reaching furthest) and
the last ``training_days`` days of its imported minutes; the window depends only on what was
imported, so a rerun on the same history trains on the same minutes. ``train_and_publish`` calls
``rtcrypto.forecast.publish.publish``: train on the window before its held-out days, forecast
``horizon_minutes`` minutes, score the holdout (hit rate, P&L after fees, baselines), write a
version, and make it ``current`` only if it is not worse than the current one (the gate).
``book_parity`` trains stock Prophet on every minute, as the book did (slow).
``report`` logs the verdict. Import history first (DAG ``history_download`` or
``rtc history import FILE``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

DEFAULT_HORIZON_MINUTES = 150_000  # the book's horizon; rtcrypto.forecast has the same default
DEFAULT_TRAINING_DAYS = 30

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "rtcrypto",
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
}


@dag(
    dag_id="forecast_retrain",
    description="Train Prophet on the imported history, backtest, publish past the gate",
    schedule="30 0 * * *",  # daily at 00:30 UTC
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
            title="Training window (days)",
            description="The last N days of imported history; the held-out days are its end.",
        ),
        "horizon_minutes": Param(
            DEFAULT_HORIZON_MINUTES,
            type="integer",
            minimum=1,
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
            title="History source",
            description="Imported source (kaggle_bitstamp, binance, ...); empty: the most recent.",
        ),
    },
)
def forecast_retrain() -> None:
    @task(execution_timeout=timedelta(minutes=10))
    def select_window(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Source and ``[start, end)`` of the training window (ISO UTC), from the manifest."""
        from airflow.sdk.exceptions import AirflowFailException

        from rtcrypto.history import resolve_history_dir, summarize

        params = params or {}
        summaries = [entry for entry in summarize() if entry.last_ts_ms is not None]
        wanted = str(params.get("source") or "").strip()
        if wanted:
            summaries = [entry for entry in summaries if entry.source == wanted]
        if not summaries:
            which = f"source {wanted!r}" if wanted else "any source"
            raise AirflowFailException(
                f"no imported history for {which} in {resolve_history_dir()}: run the DAG "
                "history_download or `rtc history import FILE` first"
            )
        chosen = max(summaries, key=lambda entry: (entry.last_ts_ms or 0, entry.source))
        end_ms = int(chosen.last_ts_ms or 0) + 60_000  # exclusive: the minute after the last
        days = int(params.get("training_days") or DEFAULT_TRAINING_DAYS)
        start_ms = max(int(chosen.first_ts_ms or 0), end_ms - days * 86_400_000)
        return {
            "source": chosen.source,
            "start": datetime.fromtimestamp(start_ms / 1000, UTC).isoformat(),
            "end": datetime.fromtimestamp(end_ms / 1000, UTC).isoformat(),
            "training_days": days,
        }

    @task(execution_timeout=timedelta(hours=2))
    def train_and_publish(
        window: dict[str, Any], params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Train, forecast, backtest on the holdout and publish a version past the gate."""
        import logging

        from rtcrypto.backtest import BacktestConfig
        from rtcrypto.config import get_settings
        from rtcrypto.forecast.publish import publish
        from rtcrypto.history import load_history

        log = logging.getLogger(__name__)
        params = params or {}
        settings = get_settings()
        bars = load_history(window["source"], window["start"], window["end"])
        holdout_days = min(settings.forecast_holdout_days, window["training_days"] / 2)
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
        )
        return {
            "version": result.version,
            "folder": str(result.folder),
            "promoted": result.promoted,
            "reason": result.reason,
            "backtest": result.metadata.get("backtest", {}),
            "training": result.metadata.get("training", {}),
        }

    @task(execution_timeout=timedelta(minutes=5))
    def report(result: dict[str, Any]) -> None:
        """Log the gate's verdict and the holdout figures."""
        import logging

        log = logging.getLogger(__name__)
        status = "current" if result["promoted"] else "candidate (not promoted)"
        log.info("version %s -> %s: %s", result["version"], result["folder"], status)
        log.info("gate: %s", result["reason"])
        log.info("holdout metrics: %s", result["backtest"])

    report(train_and_publish(select_window()))


forecast_retrain()
