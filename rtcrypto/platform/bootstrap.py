"""What `rtc up` prepares before the streaming services start: history, forecast, indices.

Each step is idempotent, so a second `rtc up` does (almost) nothing:

- **history**: the real minute files of ``../shared/data/minute`` are imported (a file already
  imported is a no-op);
- **forecast**: when no version is current, one is trained and published. With the simulator
  replaying history (the default), the replay window is chosen first (:func:`replay_window`: the
  last ``simulator_history_days`` days of ``simulator_history_source``, kept in
  ``<home>/simulator/replay-window.json``) and the forecast trains on the days right before it, so
  the model never saw the minutes it trades; replaying the capture, its training window ends at
  the capture's first minute; with the live feed, it ends at the newest imported minute;
- **indices**: the Elasticsearch index templates and indices, and Kibana's saved objects when
  ``RTC_KIBANA_URL`` is set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from rtcrypto.config import PROJECT_ROOT, Feed, Settings, SimulatorReplay
from rtcrypto.history.replay_window import replay_window

if TYPE_CHECKING:
    from rtcrypto.history.importer import ImportReport

log = logging.getLogger(__name__)

SHARED_MINUTE_DIR = PROJECT_ROOT.parent / "shared" / "data" / "minute"
MINUTE_FILE_PATTERNS = ("*.csv", "*.csv.gz")
MIN_TRAINING_MINUTES = 2 * 1440  # two days: the holdout must leave something to train on


class BootstrapError(RuntimeError):
    """A preparation step cannot be done; the message says what to do."""


def shared_minute_files(folder: Path = SHARED_MINUTE_DIR) -> list[Path]:
    """The real minute-bar files `rtc up` imports, sorted by name."""
    files = sorted({path for pattern in MINUTE_FILE_PATTERNS for path in folder.glob(pattern)})
    if not files:
        raise BootstrapError(
            f"no minute-bar files in {folder}: put the shared data folder next to the repository "
            "(see ../shared/data/README.md) or import your own with `rtc history import FILE`"
        )
    return files


def import_history(
    settings: Settings,
    files: list[Path],
    on_file: Callable[[Path, ImportReport], None] | None = None,
) -> list[ImportReport]:
    """Import ``files`` into the history store (a file already there is a no-op)."""
    from rtcrypto.history import import_file

    reports = []
    for path in files:
        report = import_file(path, history_dir=settings.history_path)
        reports.append(report)
        if on_file is not None:
            on_file(path, report)
    return reports


@dataclass(frozen=True)
class TrainingWindow:
    source: str
    start: pd.Timestamp
    end: pd.Timestamp  # exclusive
    why: str


def training_window(settings: Settings, days: float) -> TrainingWindow:
    """The window the first forecast trains on (see the module docstring)."""
    from rtcrypto.history import summarize

    if settings.feed is Feed.simulator and settings.simulator_replay is SimulatorReplay.history:
        replay = replay_window(settings)
        return TrainingWindow(
            replay.source,
            replay.start - timedelta(days=days),
            replay.start,
            f"the {days:g} days before the replayed minutes ({replay.why})",
        )
    summaries = [entry for entry in summarize(settings.history_path) if entry.last_ts_ms]
    if not summaries:
        raise BootstrapError("no history imported: run `rtc history import FILE` first")
    if settings.feed is Feed.simulator:
        from rtcrypto.market.captures import load_capture

        capture = load_capture(settings.simulator_capture)
        end = pd.Timestamp(capture.first_ms, unit="ms", tz="UTC").floor("min")
        covering = [
            entry
            for entry in summaries
            if entry.first_ts_ms is not None
            and entry.first_ts_ms <= (end - timedelta(days=days)).value // 1_000_000
            and (entry.last_ts_ms or 0) >= end.value // 1_000_000 - 60_000
        ]
        if not covering:
            raise BootstrapError(
                f"no imported history covers the {days:g} days before the simulator's capture "
                f"({end:%Y-%m-%d %H:%M} UTC): import minute bars of that time with "
                "`rtc history import FILE`, or publish a forecast with `rtc forecast publish`"
            )
        chosen = covering[0]
        why = f"the {days:g} days before the replayed capture's first minute"
    else:
        chosen = max(summaries, key=lambda entry: entry.last_ts_ms or 0)
        end = pd.Timestamp(chosen.last_ts_ms, unit="ms", tz="UTC") + pd.Timedelta(minutes=1)
        why = f"the newest {days:g} days of imported history"
    return TrainingWindow(chosen.source, end - timedelta(days=days), end, why)


def ensure_forecast(settings: Settings, days: float = 21.0) -> tuple[str, bool, str]:
    """``(version, published_now, what)``: the current version, publishing one if none is."""
    from rtcrypto.forecast.publish import current_version, publish
    from rtcrypto.history import load_history
    from rtcrypto.trading.backtest import BacktestConfig

    # cmdstanpy logs every chain at INFO and prophet warns that plotly is missing: neither is news
    logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    forecast_dir = settings.forecast_path
    version = current_version(forecast_dir)
    if version is not None:
        return version, False, "already current (retrain from Airflow: forecast_retrain)"
    window = training_window(settings, days)
    bars = load_history(window.source, window.start, window.end, history_dir=settings.history_path)
    if len(bars) < MIN_TRAINING_MINUTES:
        raise BootstrapError(
            f"only {len(bars)} imported minutes of {window.source} in {window.start:%Y-%m-%d} .. "
            f"{window.end:%Y-%m-%d} ({window.why}); import more with `rtc history import FILE`"
        )
    result = publish(
        bars,
        source=window.source,
        holdout_days=settings.forecast_holdout_days,
        horizon_minutes=settings.forecast_horizon_minutes,
        forecast_dir=forecast_dir,
        config=BacktestConfig.from_settings(settings),
    )
    if not result.promoted:
        raise BootstrapError(f"the first forecast was not published: {result.reason}")
    metrics = result.metadata.get("backtest", {})
    hit_rate = metrics.get("hit_rate")
    what = (
        f"trained on {window.source} {window.start:%Y-%m-%d %H:%M} .. {window.end:%Y-%m-%d %H:%M} "
        f"({window.why}); holdout hit rate "
        f"{'n/a' if hit_rate is None else f'{hit_rate:.4f}'}, "
        f"return {metrics.get('return_pct', 0):+.3f} % after fees vs buy-and-hold "
        f"{metrics.get('buy_and_hold_return_pct', 0):+.3f} % (no edge is claimed)"
    )
    return result.version, True, what


def ensure_indices(settings: Settings) -> str:
    """Index templates and indices, then Kibana's saved objects if a Kibana URL is set."""
    from rtcrypto.search.client import search_client
    from rtcrypto.search.indices import ensure_templates, index_replicas

    report = ensure_templates(
        search_client(settings),
        settings.search_index_prefix,
        replicas=index_replicas(settings),  # 1 per index in the cluster topology
    )
    summary = (
        f"templates: {len(report.templates_created)} created, {len(report.templates_updated)} "
        f"updated, {len(report.templates_unchanged)} unchanged; indices created: "
        f"{len(report.indices_created)}"
    )
    if settings.kibana_url:
        from rtcrypto.search.kibana import import_saved_objects

        password = settings.kibana_password.get_secret_value() if settings.kibana_password else None
        result = import_saved_objects(settings.kibana_url, settings.kibana_username, password)
        summary += f"; Kibana: {result}"
    else:
        summary += "; Kibana: skipped (RTC_KIBANA_URL not set; docker-compose has one)"
    return summary
