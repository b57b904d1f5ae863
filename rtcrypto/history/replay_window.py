"""The days of real minute bars the simulator replays in history mode, chosen once and kept.

``replay_window`` picks ``RTC_SIMULATOR_HISTORY_START``/``_END`` when set, else the window an
earlier `rtc up` chose (``<simulator_dir>/replay-window.json``), else the last
``simulator_history_days`` days of the imported source from midnight UTC, and keeps it so that
every restart (the supervisor's included) replays the same days. `rtc up`'s preparation
(:mod:`rtcrypto.platform.bootstrap`) and the simulator's launch (:mod:`rtcrypto.supervision`)
both read it from here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from rtcrypto.config import Settings

if TYPE_CHECKING:
    from rtcrypto.history.info import SourceSummary

log = logging.getLogger(__name__)

REPLAY_WINDOW_FILE = "replay-window.json"


class ReplayWindowError(RuntimeError):
    """No usable replay window; the message says what to do."""


@dataclass(frozen=True)
class ReplayWindow:
    """The real minute bars the simulator replays in history mode: ``[start, end)`` of ``source``."""

    source: str
    start: pd.Timestamp
    end: pd.Timestamp  # exclusive
    why: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "source": self.source,
                "start": self.start.isoformat(),
                "end": self.end.isoformat(),
                "why": self.why,
            },
            indent=2,
        )


def replay_window_path(settings: Settings) -> Path:
    """Where `rtc up` keeps the replay window it chose, so restarts replay the same days."""
    return settings.simulator_dir / REPLAY_WINDOW_FILE


def _source_summary(settings: Settings, source: str) -> SourceSummary:
    from rtcrypto.history.info import summarize

    summaries = {entry.source: entry for entry in summarize(settings.history_path)}
    entry = summaries.get(source)
    if entry is None or entry.first_ts_ms is None or entry.last_ts_ms is None:
        known = ", ".join(sorted(summaries)) or "none"
        raise ReplayWindowError(
            f"history source {source!r} (RTC_SIMULATOR_HISTORY_SOURCE) is not imported (imported: "
            f"{known}): import its minute bars with `rtc history import FILE`"
        )
    return entry


def _stored_replay_window(path: Path, source: str) -> ReplayWindow | None:
    try:
        stored = json.loads(path.read_text())
        window = ReplayWindow(
            str(stored["source"]),
            pd.Timestamp(stored["start"]),
            pd.Timestamp(stored["end"]),
            str(stored.get("why", "kept from the first `rtc up`")),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ReplayWindowError(
            f"unreadable replay window {path} ({error}): delete it and `rtc up` chooses again"
        ) from None
    if window.source != source:
        log.warning(
            "replay window %s is for source %s, not %s: choosing again", path, window.source, source
        )
        return None
    return window


def replay_window(settings: Settings) -> ReplayWindow:
    """The days of real minute bars the simulator replays (history mode), chosen once.

    ``RTC_SIMULATOR_HISTORY_START`` / ``_END`` when set; else the window an earlier `rtc up` chose
    (``<home>/simulator/replay-window.json``); else the last ``simulator_history_days`` days of the
    source, starting at midnight UTC, which is then kept so that every restart (the supervisor's
    included) replays the same days and resumes where it stopped instead of starting over.
    """
    source = settings.simulator_history_source
    summary = _source_summary(settings, source)
    first = pd.Timestamp(summary.first_ts_ms, unit="ms", tz="UTC")
    after_last = pd.Timestamp(summary.last_ts_ms, unit="ms", tz="UTC") + pd.Timedelta(minutes=1)
    days = pd.Timedelta(days=settings.simulator_history_days)
    path = replay_window_path(settings)
    if settings.simulator_history_start is not None:
        start = pd.Timestamp(settings.simulator_history_start).tz_convert("UTC")
        end = (
            pd.Timestamp(settings.simulator_history_end).tz_convert("UTC")
            if settings.simulator_history_end is not None
            else min(start + days, after_last)
        )
        window = ReplayWindow(source, start, end, "RTC_SIMULATOR_HISTORY_START/_END")
    else:
        stored = _stored_replay_window(path, source)
        if stored is not None:
            return stored
        start = (after_last - days).floor("D")
        window = ReplayWindow(
            source,
            start,
            after_last,
            f"the last {settings.simulator_history_days:g} days of {source}, from midnight UTC",
        )
    if not window.start < window.end:
        raise ReplayWindowError(
            f"empty or reversed replay window {window.start:%Y-%m-%d %H:%M} .. "
            f"{window.end:%Y-%m-%d %H:%M}: set RTC_SIMULATOR_HISTORY_START before _END"
        )
    if window.start < first or window.end > after_last:
        raise ReplayWindowError(
            f"replay window {window.start:%Y-%m-%d %H:%M} .. {window.end:%Y-%m-%d %H:%M} is outside "
            f"the imported {source} minutes ({first:%Y-%m-%d %H:%M} .. "
            f"{after_last:%Y-%m-%d %H:%M}): change RTC_SIMULATOR_HISTORY_START/_END or import more"
        )
    if settings.simulator_history_start is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(window.to_json() + "\n")
        temporary.replace(path)
    return window
