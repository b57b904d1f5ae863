"""Which history source, and which window of it, the nightly retrain trains on.

The rule (``select_source``, pure; ``select_training_window`` reads the history store for it):

1. A **forced** source: the run's ``source`` param, else ``RTC_FORECAST_SOURCE``. It must be
   imported (else ``UnknownSourceError``: a configuration mistake, the run fails without retry)
   and must hold a full window (else ``NoSourceQualifies``: the run is skipped with the reason).
2. Else the traded market's **own recorded bars** (``RTC_HISTORY_FEED_SOURCE``, default
   ``gemini-feed``) when they hold a full window.
3. Else the **imported source whose latest full window ends last** (ties: the source name in
   alphabetical order).
4. Else nothing qualifies: ``NoSourceQualifies`` says, per source, how close it came.

A **full window** is ``training_days`` days ``[start, end)`` (``training_days`` includes the
holdout: its last ``holdout_days`` days are held out, see ``holdout_days_for``) whose training
part and whose held-out part each have at least ``min_coverage`` (``RTC_FORECAST_MIN_COVERAGE``,
default 0.9) of their minutes present, and whose ``end`` is the minute after a present minute.
A source's latest full window is the one with the largest such ``end``. So a source is never
picked when it is too short (the 10 rows of the 2025 Bitstamp files, the 7 days of the Kaggle
head for a 30-day window) or too holey (a 30-day window with more than 3 days missing), while an
exchange halt of a few hours (Binance, 2021-04-20 and 04-25: 434 minutes) does not disqualify.
The window depends only on the stored minutes, so a rerun on the same history trains on the same
minutes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MINUTE_MS = 60_000
DAY_MINUTES = 1440


class NoSourceQualifies(Exception):
    """No history source holds a full window; the message says why, per source."""


class UnknownSourceError(ValueError):
    """A forced source (param ``source`` or ``RTC_FORECAST_SOURCE``) is not imported."""


@dataclass(frozen=True)
class FullWindow:
    """``[start_ms, end_ms)`` (UTC epoch ms) and the minutes present in each part."""

    start_ms: int
    end_ms: int  # exclusive: the minute after the window's last present minute
    holdout_start_ms: int
    training_minutes_present: int
    holdout_minutes_present: int

    @property
    def minutes_present(self) -> int:
        return self.training_minutes_present + self.holdout_minutes_present


@dataclass(frozen=True)
class SourceWindow:
    """The choice: a source, its window and why it was chosen."""

    source: str
    window: FullWindow
    training_days: int
    holdout_days: float
    why: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (the DAG's XCom): ISO UTC times."""
        return {
            "source": self.source,
            "start": _iso(self.window.start_ms),
            "end": _iso(self.window.end_ms),
            "training_days": self.training_days,
            "holdout_days": self.holdout_days,
            "minutes_present": self.window.minutes_present,
            "why": self.why,
        }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def holdout_days_for(training_days: float, holdout_setting_days: float) -> float:
    """The held-out days of a ``training_days`` window: the setting, at most half the window."""
    return min(float(holdout_setting_days), float(training_days) / 2)


def minute_array(ts_ms: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Sorted unique minute starts (epoch ms) of ``ts_ms`` (any order, any ms within a minute)."""
    values = np.asarray(ts_ms, dtype=np.int64)
    return np.unique(values - values % MINUTE_MS)


def _part_counts(
    minutes: npt.NDArray[np.int64], window_ms: int, holdout_ms: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For each candidate end (a present minute + 1): end, training and holdout minute counts."""
    ends = minutes + MINUTE_MS
    upto_end = np.arange(1, len(minutes) + 1, dtype=np.int64)  # minutes < end
    upto_holdout = np.searchsorted(minutes, ends - holdout_ms, side="left").astype(np.int64)
    upto_start = np.searchsorted(minutes, ends - window_ms, side="left").astype(np.int64)
    return ends, upto_holdout - upto_start, upto_end - upto_holdout


def latest_full_window(
    ts_ms: npt.ArrayLike, window_days: float, holdout_days: float, min_coverage: float
) -> FullWindow | None:
    """The full window (module doc) with the largest end, or None if the minutes hold none."""
    _check(window_days, holdout_days, min_coverage)
    minutes = minute_array(ts_ms)
    if not len(minutes):
        return None
    window_ms, holdout_ms = _span_ms(window_days), _span_ms(holdout_days)
    need_training, need_holdout = _needed(window_ms, holdout_ms, min_coverage)
    ends, training, holdout = _part_counts(minutes, window_ms, holdout_ms)
    full = np.flatnonzero((training >= need_training) & (holdout >= need_holdout))
    if not len(full):
        return None
    best = int(full[-1])
    end_ms = int(ends[best])
    return FullWindow(
        start_ms=end_ms - window_ms,
        end_ms=end_ms,
        holdout_start_ms=end_ms - holdout_ms,
        training_minutes_present=int(training[best]),
        holdout_minutes_present=int(holdout[best]),
    )


def best_coverage(
    ts_ms: npt.ArrayLike, window_days: float, holdout_days: float
) -> tuple[float, float]:
    """The best ``(training, holdout)`` fractions present over every candidate end: the pair of
    the end whose smaller fraction is largest (how close a source came, for messages)."""
    _check(window_days, holdout_days, 1.0)
    minutes = minute_array(ts_ms)
    if not len(minutes):
        return 0.0, 0.0
    window_ms, holdout_ms = _span_ms(window_days), _span_ms(holdout_days)
    _, training, holdout = _part_counts(minutes, window_ms, holdout_ms)
    training_fraction = training / ((window_ms - holdout_ms) // MINUTE_MS)
    holdout_fraction = holdout / (holdout_ms // MINUTE_MS)
    best = int(np.argmax(np.minimum(training_fraction, holdout_fraction)))
    return float(training_fraction[best]), float(holdout_fraction[best])


def _span_ms(days: float) -> int:
    return int(round(days * DAY_MINUTES)) * MINUTE_MS


def _needed(window_ms: int, holdout_ms: int, min_coverage: float) -> tuple[int, int]:
    training_minutes = (window_ms - holdout_ms) // MINUTE_MS
    holdout_minutes = holdout_ms // MINUTE_MS
    return (
        max(1, math.ceil(min_coverage * training_minutes - 1e-9)),
        max(1, math.ceil(min_coverage * holdout_minutes - 1e-9)),
    )


def _check(window_days: float, holdout_days: float, min_coverage: float) -> None:
    if not 0 < min_coverage <= 1:
        raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
    if not 0 < holdout_days * DAY_MINUTES < window_days * DAY_MINUTES - 1:
        raise ValueError(
            f"holdout_days ({holdout_days}) must be > 0 and leave training minutes in a "
            f"{window_days}-day window"
        )


def select_source(
    minute_times: Mapping[str, npt.ArrayLike],
    *,
    training_days: int,
    holdout_days: float,
    min_coverage: float,
    feed_source: str,
    forced: str | None = None,
    forced_by: str = "RTC_FORECAST_SOURCE",
) -> SourceWindow:
    """Apply the module's rule to ``minute_times`` (source -> its minutes, epoch ms).

    Raises ``UnknownSourceError`` when ``forced`` is not a key, ``NoSourceQualifies`` when no
    eligible source holds a full window.
    """
    rule = (
        f"a full {training_days}-day window ({training_days - holdout_days:g} training + "
        f"{holdout_days:g} held-out days, each with >= {min_coverage:.0%} of its minutes)"
    )

    def window_of(source: str) -> FullWindow | None:
        return latest_full_window(minute_times[source], training_days, holdout_days, min_coverage)

    def shortfall(source: str) -> str:
        minutes = minute_array(minute_times[source])
        if not len(minutes):
            return f"{source}: no minutes"
        training, holdout = best_coverage(minutes, training_days, holdout_days)
        return (
            f"{source}: {len(minutes):,} minutes {_iso(int(minutes[0]))[:16]} .. "
            f"{_iso(int(minutes[-1]))[:16]}, at best {training:.1%} of the training and "
            f"{holdout:.1%} of the held-out minutes"
        )

    def chosen(source: str, window: FullWindow, why: str) -> SourceWindow:
        return SourceWindow(source, window, training_days, holdout_days, f"{why}; {rule}")

    forced = (forced or "").strip() or None
    if forced is not None:
        if forced not in minute_times:
            known = ", ".join(sorted(minute_times)) or "none"
            raise UnknownSourceError(
                f"{forced_by} names source {forced!r}, which is not imported (imported: "
                f"{known}); import it with `rtc history import FILE --source {forced}` or "
                f"change {forced_by}"
            )
        window = window_of(forced)
        if window is None:
            raise NoSourceQualifies(
                f"source {forced!r} (set by {forced_by}) does not hold {rule}: "
                f"{shortfall(forced)}. Import more minutes or unset {forced_by}."
            )
        return chosen(forced, window, f"forced by {forced_by}")
    if feed_source in minute_times:
        window = window_of(feed_source)
        if window is not None:
            return chosen(feed_source, window, "the traded market's own recorded bars")
    windows = {source: window_of(source) for source in sorted(minute_times)}
    full = {source: window for source, window in windows.items() if window is not None}
    if full:
        source = min(full, key=lambda name: (-full[name].end_ms, name))
        return chosen(
            source, full[source], "the imported source whose latest full window is newest"
        )
    reasons = "; ".join(shortfall(source) for source in sorted(minute_times)) or "nothing imported"
    raise NoSourceQualifies(
        f"no history source holds {rule}: {reasons}. Import more minute bars "
        "(`rtc history import FILE`, the DAG history_download) or lower training_days."
    )


def load_minute_times(
    history_dir: Path | None = None, sources: list[str] | None = None
) -> dict[str, npt.NDArray[np.int64]]:
    """Each imported source's minutes (epoch ms, sorted) from the history store (``ts`` only)."""
    from rtcrypto.history import load_history
    from rtcrypto.history.store import sources as stored_sources

    names = stored_sources(history_dir) if sources is None else sources
    times = {}
    for name in names:
        frame = load_history(name, history_dir=history_dir, columns=["ts"])
        stamps = (
            frame["ts"].dt.tz_convert(None).to_numpy().astype("datetime64[ms]").astype(np.int64)
        )
        times[name] = minute_array(stamps)
    return times


def select_training_window(
    *,
    training_days: int,
    param_source: str | None = None,
    history_dir: Path | None = None,
    until_ms: int | None = None,
) -> SourceWindow:
    """``select_source`` on the history store with the settings (``RTC_FORECAST_SOURCE``,
    ``RTC_HISTORY_FEED_SOURCE``, ``RTC_FORECAST_MIN_COVERAGE``, ``RTC_FORECAST_HOLDOUT_DAYS``);
    ``param_source`` (the DAG run's param) wins over ``RTC_FORECAST_SOURCE``.

    ``until_ms`` (the trader's clock) hides every minute at or after it: a platform replaying
    history must not train on the minutes its trader has not reached yet."""
    from rtcrypto.config import get_settings

    settings = get_settings()
    param = (param_source or "").strip() or None
    setting = (settings.forecast_source or "").strip() or None
    forced, forced_by = (param, "the run's param 'source'") if param else (setting, "")
    minute_times = load_minute_times(
        history_dir if history_dir is not None else settings.history_path
    )
    if until_ms is not None:
        minute_times = {name: times[times < until_ms] for name, times in minute_times.items()}
    return select_source(
        minute_times,
        training_days=training_days,
        holdout_days=holdout_days_for(training_days, settings.forecast_holdout_days),
        min_coverage=settings.forecast_min_coverage,
        feed_source=settings.history_feed_source,
        forced=forced,
        forced_by=forced_by or "RTC_FORECAST_SOURCE",
    )
