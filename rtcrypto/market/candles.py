"""Gemini candles (``GET /v2/candles/{symbol}/{time_frame}``): time frames, parser, wire rows (pure).

Gemini answers an array of arrays, newest first, each ``[time, open, high, low, close, volume]``
as JSON numbers: ``time`` is the candle's open time in UTC epoch milliseconds, prices are in the
quote currency per base unit, ``volume`` in base units (see ``docs/gemini-candles.md`` for the
documentation pages). :func:`parse_candles` turns such a body into :class:`Candle` values, oldest
first and one per candle time, or raises :class:`CandleParseError` saying which row is wrong and
why; :func:`candle_rows` and :func:`aggregate` are what the simulator serves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rtcrypto.bounded import MAX_SAFE_INT

MINUTE_MS = 60_000
# Gemini's documented time frames, as they appear in the path, and their length in milliseconds.
TIME_FRAMES_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1hr": 60 * MINUTE_MS,
    "6hr": 6 * 60 * MINUTE_MS,
    "1day": 24 * 60 * MINUTE_MS,
}
CANDLE_FIELDS = ("time", "open", "high", "low", "close", "volume")
MAX_CANDLES_PARSED = 1_000_000  # a body with more rows is not a candle answer (Gemini's: ~1,440)


class CandleParseError(ValueError):
    """A candles body that is not Gemini's array of ``[time, open, high, low, close, volume]``."""


@dataclass(frozen=True, slots=True)
class Candle:
    """One candle: open time (UTC epoch ms), prices (quote per base unit), volume (base units)."""

    ts_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    def row(self) -> list[int | float]:
        """The candle as Gemini sends it: ``[time_ms, open, high, low, close, volume]``."""
        return [self.ts_ms, self.open, self.high, self.low, self.close, self.volume]


def time_frame_ms(time_frame: str) -> int:
    """The length of a documented time frame (``1m`` .. ``1day``) in ms; else ``KeyError``."""
    return TIME_FRAMES_MS[time_frame]


def _number(value: Any, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CandleParseError(f"{where}: {name} is not a number ({type(value).__name__})")
    try:
        number = float(value)
    except OverflowError:
        raise CandleParseError(f"{where}: {name} is too large") from None
    if not math.isfinite(number):
        raise CandleParseError(f"{where}: {name} is not finite")
    return number


def _time_ms(value: Any, where: str, frame_ms: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CandleParseError(f"{where}: time is not an integer of milliseconds ({value!r:.40})")
    if not 0 <= value <= MAX_SAFE_INT:
        raise CandleParseError(f"{where}: time {value} is outside the epoch-millisecond range")
    if value % frame_ms:
        raise CandleParseError(
            f"{where}: time {value} is not on a {frame_ms // MINUTE_MS}-minute boundary"
        )
    return value


def parse_candle(item: Any, index: int, frame_ms: int = MINUTE_MS) -> Candle:
    """Row ``index`` of a candles body as a :class:`Candle`; raises :class:`CandleParseError`."""
    where = f"candle {index}"
    if not isinstance(item, list) or len(item) != len(CANDLE_FIELDS):
        raise CandleParseError(
            f"{where}: expected [time, open, high, low, close, volume], got {str(item)[:80]}"
        )
    ts_ms = _time_ms(item[0], where, frame_ms)
    open_, high, low, close, volume = (
        _number(value, where, name) for value, name in zip(item[1:], CANDLE_FIELDS[1:], strict=True)
    )
    if not 0 < low <= min(open_, close) or max(open_, close) > high:
        raise CandleParseError(
            f"{where}: prices are inconsistent (need 0 < low <= open, close <= high; "
            f"open={open_} high={high} low={low} close={close})"
        )
    if volume < 0:
        raise CandleParseError(f"{where}: volume {volume} is negative")
    return Candle(ts_ms, open_, high, low, close, volume)


def parse_candles(payload: Any, frame_ms: int = MINUTE_MS) -> list[Candle]:
    """A decoded candles body as candles sorted by time, one per candle time.

    Gemini lists the newest first; where a time appears twice (the docs' own example has one),
    the first listed wins. Raises :class:`CandleParseError` for anything else than an array of
    valid ``[time, open, high, low, close, volume]`` rows on ``frame_ms`` boundaries.
    """
    if isinstance(payload, dict) and payload.get("result") == "error":
        reason, message = payload.get("reason", "?"), payload.get("message", "")
        raise CandleParseError(f"the venue answered an error: {reason}: {str(message)[:200]}")
    if not isinstance(payload, list):
        raise CandleParseError(
            f"expected an array of candles, got {type(payload).__name__}: {str(payload)[:80]}"
        )
    if len(payload) > MAX_CANDLES_PARSED:
        raise CandleParseError(f"{len(payload)} candles is over the {MAX_CANDLES_PARSED} limit")
    by_time: dict[int, Candle] = {}
    for index, item in enumerate(payload):
        candle = parse_candle(item, index, frame_ms)
        by_time.setdefault(candle.ts_ms, candle)
    return [by_time[ts_ms] for ts_ms in sorted(by_time)]


def aggregate(minutes: Iterable[Candle], frame_ms: int) -> list[Candle]:
    """1-minute candles (sorted by time) rolled up into ``frame_ms`` candles, oldest first.

    A candle opens at a multiple of ``frame_ms`` (UTC): open of its first minute, close of its
    last, the extreme high and low, the summed volume. Minutes without a candle are skipped.
    """
    rolled: list[Candle] = []
    for minute in minutes:
        start_ms = minute.ts_ms - minute.ts_ms % frame_ms
        if rolled and rolled[-1].ts_ms == start_ms:
            last = rolled[-1]
            rolled[-1] = Candle(
                start_ms,
                last.open,
                max(last.high, minute.high),
                min(last.low, minute.low),
                minute.close,
                last.volume + minute.volume,
            )
        else:
            rolled.append(Candle(start_ms, minute.open, minute.high, minute.low, minute.close,
                                 minute.volume))  # fmt: skip
    return rolled


def candle_rows(candles: Sequence[Candle], limit: int) -> list[list[int | float]]:
    """The newest ``limit`` candles as Gemini's body: rows, newest first."""
    return [candle.row() for candle in reversed(candles[-limit:])] if limit > 0 else []
