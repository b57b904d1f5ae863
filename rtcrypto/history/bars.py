"""Columnar minute bars and the pure checks the importer runs on them.

Times are integer milliseconds since the epoch, UTC (``ts_ms``), always on a whole minute.
Prices are in the quote currency (USD or USDT) per BTC, volumes in BTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from rtcrypto.history.schemas import BarSchema, TimestampFormat

MINUTE_MS = 60_000

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Why a row is dropped, in the order the checks run (a row counts under the first that fails).
BAD_TIMESTAMP = "bad_timestamp"  # unparsable, not finite, or not on a whole minute
NAN_ROW = "nan_row"  # a price or volume is missing (the 2018 Kaggle file's no-trade minutes)
INVALID_OHLC = "invalid_ohlc"  # not low <= open,close <= high, a price <= 0, or volume < 0
DUPLICATE_TS = "duplicate_ts"  # a later row for a minute already seen (the first one is kept)
DROP_REASONS = (BAD_TIMESTAMP, NAN_ROW, INVALID_OHLC, DUPLICATE_TS)


@dataclass(frozen=True)
class Bars:
    """Minute bars as parallel numpy arrays; ``weighted_price`` is None when the file has none."""

    ts_ms: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    weighted_price: FloatArray | None = None

    def __len__(self) -> int:
        return len(self.ts_ms)

    def take(self, selector: BoolArray | IntArray) -> Bars:
        """The rows picked by a boolean mask or an index array, in that order."""
        return Bars(
            ts_ms=self.ts_ms[selector],
            open=self.open[selector],
            high=self.high[selector],
            low=self.low[selector],
            close=self.close[selector],
            volume=self.volume[selector],
            weighted_price=None if self.weighted_price is None else self.weighted_price[selector],
        )

    @staticmethod
    def concat(parts: Sequence[Bars], has_weighted_price: bool) -> Bars:
        """All ``parts`` one after the other (an empty list gives empty arrays)."""

        def joined(name: str, dtype: type) -> npt.NDArray:
            arrays = [getattr(part, name) for part in parts]
            return np.concatenate(arrays) if arrays else np.empty(0, dtype=dtype)

        return Bars(
            ts_ms=joined("ts_ms", np.int64),
            open=joined("open", np.float64),
            high=joined("high", np.float64),
            low=joined("low", np.float64),
            close=joined("close", np.float64),
            volume=joined("volume", np.float64),
            weighted_price=joined("weighted_price", np.float64) if has_weighted_price else None,
        )

    def typical_price(self) -> FloatArray:
        """(high + low + close) / 3 per bar: the price used when a file has no weighted price."""
        return (self.high + self.low + self.close) / 3.0


@dataclass(frozen=True)
class Gap:
    """Missing minutes between two consecutive kept bars."""

    after_ts_ms: int  # the last bar before the gap
    before_ts_ms: int  # the first bar after it
    missing_minutes: int


@dataclass(frozen=True)
class GapStats:
    count: int
    missing_minutes: int
    largest: tuple[Gap, ...]  # up to five, largest first


def _as_float(column: pd.Series) -> FloatArray:
    """Numbers as float64; unparsable cells (a stray word in a price column) become NaN."""
    if column.dtype.kind in "fiu":
        return column.to_numpy(dtype=np.float64)
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)


def parse_timestamps(
    column: pd.Series, timestamp_format: TimestampFormat
) -> tuple[IntArray, BoolArray]:
    """``(ts_ms, valid)``: epoch milliseconds and whether each is parsable and on a whole minute."""
    if timestamp_format is TimestampFormat.epoch_seconds:
        seconds = _as_float(column)
        valid = np.isfinite(seconds)
        seconds = np.where(valid, seconds, 0.0)
        valid &= np.mod(seconds, 60.0) == 0.0
        return (seconds * 1000.0).astype(np.int64), valid
    parsed = pd.to_datetime(column, format="ISO8601", utc=True, errors="coerce")
    valid = parsed.notna().to_numpy()
    nanos = parsed.to_numpy(dtype="datetime64[ns]").view(np.int64)
    nanos = np.where(valid, nanos, 0)
    valid &= nanos % (MINUTE_MS * 1_000_000) == 0
    return nanos // 1_000_000, valid


def bars_from_frame(frame: pd.DataFrame, schema: BarSchema) -> tuple[Bars, BoolArray]:
    """Canonical bars of one chunk read with ``schema``'s header, and the valid-timestamp mask."""
    columns = schema.column_map
    ts_ms, valid_ts = parse_timestamps(frame[columns["ts"]], schema.timestamp_format)
    bars = Bars(
        ts_ms=ts_ms,
        open=_as_float(frame[columns["open"]]),
        high=_as_float(frame[columns["high"]]),
        low=_as_float(frame[columns["low"]]),
        close=_as_float(frame[columns["close"]]),
        volume=_as_float(frame[columns["volume"]]),
        weighted_price=(
            _as_float(frame[columns["weighted_price"]]) if schema.has_weighted_price else None
        ),
    )
    return bars, valid_ts


def row_checks(bars: Bars, valid_ts: BoolArray) -> tuple[BoolArray, dict[str, int]]:
    """``(keep, dropped)``: the rows that pass every row-level check and counts per reason."""
    values = [bars.open, bars.high, bars.low, bars.close, bars.volume]
    if bars.weighted_price is not None:
        values.append(bars.weighted_price)
    has_nan = np.zeros(len(bars), dtype=bool)
    for column in values:
        has_nan |= np.isnan(column)
    with np.errstate(invalid="ignore"):
        sane = (
            (bars.low > 0.0)
            & (bars.low <= np.minimum(bars.open, bars.close))
            & (np.maximum(bars.open, bars.close) <= bars.high)
            & np.isfinite(bars.high)
            & (bars.volume >= 0.0)
            & np.isfinite(bars.volume)
        )
        if bars.weighted_price is not None:
            sane &= (bars.weighted_price > 0.0) & np.isfinite(bars.weighted_price)
    bad_ts = ~valid_ts
    nan_row = valid_ts & has_nan
    invalid = valid_ts & ~has_nan & ~sane
    keep = valid_ts & ~has_nan & sane
    dropped = {
        BAD_TIMESTAMP: int(bad_ts.sum()),
        NAN_ROW: int(nan_row.sum()),
        INVALID_OHLC: int(invalid.sum()),
    }
    return keep, dropped


def count_out_of_order(ts_ms: IntArray, previous_max_ms: int | None) -> tuple[int, int | None]:
    """Rows earlier than some row before them in file order, and the new running maximum.

    ``previous_max_ms`` carries the maximum over earlier chunks of the same file.
    """
    if len(ts_ms) == 0:
        return 0, previous_max_ms
    start = np.iinfo(np.int64).min if previous_max_ms is None else previous_max_ms
    running = np.maximum.accumulate(np.concatenate(([start], ts_ms)))
    return int((ts_ms < running[:-1]).sum()), int(running[-1])


def sort_and_deduplicate(bars: Bars) -> tuple[Bars, int]:
    """Bars sorted by time with one row per minute (the first in file order); the duplicates dropped."""
    order = np.argsort(bars.ts_ms, kind="stable")
    sorted_ts = bars.ts_ms[order]
    first = np.ones(len(sorted_ts), dtype=bool)
    first[1:] = sorted_ts[1:] != sorted_ts[:-1]
    return bars.take(order[first]), int((~first).sum())


def find_gaps(ts_ms: IntArray, largest: int = 5) -> GapStats:
    """Gaps between consecutive minutes of sorted, unique ``ts_ms``."""
    if len(ts_ms) < 2:
        return GapStats(count=0, missing_minutes=0, largest=())
    steps = np.diff(ts_ms) // MINUTE_MS
    at = np.flatnonzero(steps > 1)
    missing = steps[at] - 1
    top = at[np.argsort(-missing, kind="stable")[:largest]]
    return GapStats(
        count=len(at),
        missing_minutes=int(missing.sum()),
        largest=tuple(
            Gap(
                after_ts_ms=int(ts_ms[i]),
                before_ts_ms=int(ts_ms[i + 1]),
                missing_minutes=int(steps[i] - 1),
            )
            for i in top
        ),
    )
