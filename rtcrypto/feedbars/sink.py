"""One micro-batch of bars into the history store, idempotently (``upsert_bars`` per source).

The Spark query hands each micro-batch's closed windows over as plain rows (``BAR_COLUMNS``);
``write_bars`` upserts them by (source, minute). A batch Spark replays after a restart carries
the same rows, so the store ends up unchanged; a corrected minute replaces the stored one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtcrypto.feedbars.model import FeedBar, group_by_source
from rtcrypto.history.upsert import UpsertReport, upsert_bars

log = logging.getLogger(__name__)

# The columns of the Spark query's output, one row per (symbol, minute).
BAR_COLUMNS = (
    "symbol",
    "ts_ms",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "weighted_price",
    "trades",
)


@dataclass(frozen=True, slots=True)
class SinkTarget:
    """Where and under which names the bars go."""

    history_dir: Path
    feed_source: str  # settings.history_feed_source
    traded_symbol: str  # settings.trader_symbol: its bars go to ``feed_source`` itself
    origin: str  # recorded in the manifest entry, e.g. the input topic


def bar_from_row(row: Mapping[str, Any]) -> FeedBar:
    """A ``FeedBar`` from one output row (a dict with ``BAR_COLUMNS``)."""
    weighted = row.get("weighted_price")
    return FeedBar(
        symbol=str(row["symbol"]),
        ts_ms=int(row["ts_ms"]),
        open=float(row["open"]),
        high=float(row["high"]),
        low=float(row["low"]),
        close=float(row["close"]),
        volume=float(row["volume"]),
        weighted_price=None if weighted is None else float(weighted),
        trades=int(row["trades"]),
    )


def write_bars(rows: Iterable[Mapping[str, Any]], target: SinkTarget) -> list[UpsertReport]:
    """Upsert the rows' bars, one call per source; return what each upsert did."""
    bars = [bar_from_row(row) for row in rows]
    reports = []
    for source, history_bars in group_by_source(
        bars, target.feed_source, target.traded_symbol
    ).items():
        report = upsert_bars(
            history_bars, source, history_dir=target.history_dir, origin=target.origin
        )
        log.info(
            "bars upserted source=%s rows=%d inserted=%d replaced=%d unchanged=%d total=%d",
            source,
            report.rows_in,
            report.inserted,
            report.replaced,
            report.unchanged,
            report.rows_total,
        )
        reports.append(report)
    return reports
