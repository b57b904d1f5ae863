"""The trade review report: what the trader recorded in a time range, as HTML and a PNG chart.

:func:`build_report` reads the trader's documents from Elasticsearch (scores, fills, orders,
balances, ticker, liquidity; index ``<prefix>-<kind>``, documents of
``rtcrypto.search.documents``) whose ``@timestamp`` lies in ``[start_ms, end_ms)``, and the
current published forecast from its files. Pure functions turn the rows into series:

- cumulative realised P&L: the scores' ``pnl_usd_exact`` summed in Decimal, in exit order;
- trades: buy and sell markers at each fill's price and time;
- the liquidity ratio (ask/bid price-weighted volume) per minute;
- forecast against realised price: ``exp(yhat)`` of each forecast minute (shifted by the feed's
  clock offset) against that minute's mid price (ticker, else the liquidity record's);
- equity: the balances marked at the latest mid price.

The range is counted on the trader's clock (:mod:`rtcrypto.report.clock`: the feed clock, replay
offset included); ``build_report(clock=...)`` writes which clock into the page and the summary.

It writes ``report.png`` (four stacked panels), ``report.html`` (self-contained: summary, the
PNG as base64, round trips, orders) and ``summary.json`` into ``out_dir``. The report states
what happened; it makes no claim about profit to come. Times are epoch milliseconds (UTC),
money is USD, quantities BTC.
"""

from __future__ import annotations

import base64
import bisect
import dataclasses
import html
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtcrypto.search.client import SearchError, SearchUnavailableError
from rtcrypto.search.documents import TRADING_MODES
from rtcrypto.search.indices import index_name

if TYPE_CHECKING:
    import pandas as pd
    from elasticsearch import Elasticsearch

MINUTE_MS = 60_000
PAGE_SIZE = 1_000  # documents per search request; search_after pages through the rest
CENT = Decimal("0.01")

# Sort keys after @timestamp that make each kind's order total (search_after needs no ties).
TIEBREAKERS: dict[str, tuple[tuple[str, str], ...]] = {
    "scores": (("exit_client_order_id", "keyword"),),
    "fills": (("client_order_id", "keyword"), ("fill_sequence", "long")),
    "orders": (("client_order_id", "keyword"),),
    "balances": (("trading_mode", "keyword"),),
    "ticker": (("symbol", "keyword"),),
    "liquidity": (("symbol", "keyword"),),
}
MODE_KINDS = frozenset({"scores", "fills", "orders", "balances"})  # documents with trading_mode
SYMBOL_KINDS = frozenset({"scores", "fills", "orders", "ticker", "liquidity"})

REPORT_HTML = "report.html"
REPORT_PNG = "report.png"
REPORT_JSON = "summary.json"


class ReportError(ValueError):
    """The report cannot be built from these arguments or documents; the message says why."""


# --- rows and series ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportRows:
    """The ``_source`` of every document in range, per kind, in time order."""

    scores: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    balances: list[dict[str, Any]] = field(default_factory=list)
    ticker: list[dict[str, Any]] = field(default_factory=list)
    liquidity: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class PnlPoint:
    """Cumulative realised P&L (USD, after fees) just after the round trip that exits at ``ts_ms``."""

    ts_ms: int
    cumulative_pnl_usd: Decimal


@dataclass(frozen=True)
class TradeMarker:
    """One fill: when, which side, at which price (USD per BTC), how much (BTC)."""

    ts_ms: int
    side: str
    price: Decimal
    base_quantity: Decimal


@dataclass(frozen=True)
class PricePoint:
    """A value at the start of a minute (``minute_ms``): a mid price in USD or a ratio."""

    minute_ms: int
    value: float


@dataclass(frozen=True)
class ForecastPoint:
    """One forecast minute on the feed's clock: forecast price = exp(yhat), USD per BTC."""

    minute_ms: int
    forecast_price: float
    forecast_lower: float
    forecast_upper: float
    side: str
    realised_price: float | None  # that minute's mid price; None when nothing was recorded


@dataclass(frozen=True)
class EquityPoint:
    """Balances at ``ts_ms`` and their value at the latest mid price (None without a price)."""

    ts_ms: int
    usd: Decimal
    btc: Decimal
    equity_usd: float | None


@dataclass(frozen=True)
class ForecastComparison:
    """How the forecast compared with realised mid prices over the report's minutes."""

    version: str | None
    points: list[ForecastPoint]
    note: str  # what was compared, or why nothing was
    minutes_compared: int = 0  # minutes with both a forecast and a realised price
    mean_abs_error_pct: float | None = None  # mean |forecast - realised| / realised, percent
    side_minutes: int = 0  # minutes whose next minute's realised move is known and nonzero
    side_agreed: int = 0  # of those, the forecast side agreed with the move


@dataclass(frozen=True)
class ReportSummary:
    """The headline figures of one report."""

    start_ms: int
    end_ms: int
    mode: str | None
    symbol: str | None
    trades: int  # fills
    buys: int
    sells: int
    orders: int
    round_trips: int
    profitable_round_trips: int
    realised_pnl_usd: Decimal  # sum of the round trips' P&L, both fees included
    fees_paid_usd: Decimal  # fees of every fill in range (also of an unclosed buy)
    modes_seen: tuple[str, ...]
    forecast_versions_seen: tuple[str, ...]
    forecast: ForecastComparison
    clock: str | None = None  # which clock the range was counted on (rtcrypto.report.clock)

    @property
    def hit_rate(self) -> float | None:
        """Share of round trips with P&L > 0; None without round trips."""
        return self.profitable_round_trips / self.round_trips if self.round_trips else None

    @property
    def empty(self) -> bool:
        return self.trades == 0 and self.orders == 0 and self.round_trips == 0

    def verdict(self) -> str:
        """One plain sentence about the range's result; no promise about any other range."""
        if self.empty:
            return "No trades in this range."
        if self.round_trips == 0:
            return (
                f"{self.trades} fill(s) and no closed round trip in this range, so no P&L was "
                "realised; fees paid are still counted."
            )
        outcome = "lost" if self.realised_pnl_usd < 0 else "made"
        return (
            f"The {self.round_trips} round trip(s) closed in this range {outcome} "
            f"{usd_text(abs(self.realised_pnl_usd))} USD after fees. This describes this range "
            "only; it says nothing about future results."
        )

    def lines(self) -> list[str]:
        """The summary as short text lines (for the terminal and logs)."""
        hit = "n/a" if self.hit_rate is None else f"{self.hit_rate:.1%}"
        lines = [
            f"range: {iso_minute(self.start_ms)} .. {iso_minute(self.end_ms)} UTC"
            f" (mode {self.mode or 'all'}, symbol {self.symbol or 'all'})",
            self.verdict(),
            f"trades (fills): {self.trades} ({self.buys} buys, {self.sells} sells); "
            f"orders: {self.orders}",
            f"round trips: {self.round_trips}; hit rate: {hit}",
            f"realised P&L after fees: {usd_text(self.realised_pnl_usd)} USD "
            f"(exact {exact_text(self.realised_pnl_usd)})",
            f"fees paid: {usd_text(self.fees_paid_usd)} USD (exact {exact_text(self.fees_paid_usd)})",
            f"forecast: {self.forecast.note}",
        ]
        if self.clock:
            lines.append(self.clock)
        if len(self.modes_seen) > 1:
            lines.append(
                f"several trading modes in range ({', '.join(self.modes_seen)}): use --mode"
            )
        return lines

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: money as exact decimal strings, times as epoch ms and ISO."""
        forecast = self.forecast
        return {
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "start": iso_minute(self.start_ms),
            "end": iso_minute(self.end_ms),
            "mode": self.mode,
            "symbol": self.symbol,
            "trades": self.trades,
            "buys": self.buys,
            "sells": self.sells,
            "orders": self.orders,
            "round_trips": self.round_trips,
            "profitable_round_trips": self.profitable_round_trips,
            "hit_rate": self.hit_rate,
            "realised_pnl_usd": exact_text(self.realised_pnl_usd),
            "fees_paid_usd": exact_text(self.fees_paid_usd),
            "modes_seen": list(self.modes_seen),
            "forecast_versions_seen": list(self.forecast_versions_seen),
            "forecast": {
                "version": forecast.version,
                "note": forecast.note,
                "minutes_compared": forecast.minutes_compared,
                "mean_abs_error_pct": forecast.mean_abs_error_pct,
                "side_minutes": forecast.side_minutes,
                "side_agreed": forecast.side_agreed,
            },
            "verdict": self.verdict(),
            "clock": self.clock,
        }


@dataclass(frozen=True)
class ReportResult:
    """Where the report was written, and its summary."""

    out_dir: Path
    html_path: Path
    png_path: Path
    json_path: Path
    summary: ReportSummary


# --- value helpers -----------------------------------------------------------------------------


def decimal_of(row: Mapping[str, Any], name: str) -> Decimal | None:
    """``row[name + "_exact"]`` as a Decimal; the float ``row[name]`` only when that is absent."""
    text = row.get(f"{name}_exact")
    if text is not None:
        return Decimal(str(text))
    value = row.get(name)
    return None if value is None else Decimal(str(value))


def exact_text(value: Decimal) -> str:
    """The exact decimal string, never in exponent notation."""
    return format(value, "f")


def usd_text(value: Decimal) -> str:
    """Rounded to the cent with thousands separators: ``-1,234.57``."""
    return f"{value.quantize(CENT, rounding=ROUND_HALF_EVEN):,.2f}"


def iso_minute(ts_ms: int) -> str:
    """``2026-11-27 20:00:05`` (UTC; seconds kept, milliseconds dropped)."""
    return f"{datetime.fromtimestamp(ts_ms / 1000, UTC):%Y-%m-%d %H:%M:%S}"


def minute_of(ts_ms: int) -> int:
    return int(ts_ms) - int(ts_ms) % MINUTE_MS


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_MS = {"s": 1_000, "m": MINUTE_MS, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_time_bound(text: str, now_ms: int, duration_scale: float = 1.0) -> int:
    """``"24h"`` / ``"90m"`` / ``"7d"`` (that long before ``now_ms``, times ``duration_scale``),
    ``"now"``, or an ISO date or date-time (``2026-11-27``, ``2026-11-27T12:00``; UTC when it
    names no zone) -> epoch ms."""
    value = text.strip()
    if value.lower() == "now":
        return now_ms
    duration = _DURATION.match(value.lower())
    if duration:
        return now_ms - round(
            float(duration.group(1)) * _UNIT_MS[duration.group(2)] * duration_scale
        )
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ReportError(
            f"cannot read the time {text!r}: give a duration before now (24h, 90m, 7d, 2w), "
            "'now', or an ISO date or date-time (2026-11-27, 2026-11-27T12:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def default_out_dir(home: Path, end_ms: int) -> Path:
    """``<home>/reports/<UTC date of the range's end>``."""
    return Path(home) / "reports" / f"{datetime.fromtimestamp(end_ms / 1000, UTC):%Y-%m-%d}"


# --- pure series -------------------------------------------------------------------------------


def _required_decimal(row: Mapping[str, Any], name: str, what: str) -> Decimal:
    value = decimal_of(row, name)
    if value is None:
        raise ReportError(f"{what} has no {name}: {dict(row)!r}")
    return value


def _score_key(row: Mapping[str, Any]) -> tuple[int, str]:
    return int(row["exit_ts_ms"]), str(row.get("exit_client_order_id") or "")


def cumulative_pnl(scores: Iterable[Mapping[str, Any]]) -> list[PnlPoint]:
    """Running Decimal sum of the scores' ``pnl_usd_exact``, in exit order (the ledger's order)."""
    total = Decimal(0)
    points = []
    for row in sorted(scores, key=_score_key):
        total += _required_decimal(row, "pnl_usd", f"score {row.get('exit_client_order_id')}")
        points.append(PnlPoint(int(row["exit_ts_ms"]), total))
    return points


def _fill_key(row: Mapping[str, Any]) -> tuple[int, str, int]:
    return (
        int(row["ts_event_ms"]),
        str(row.get("client_order_id") or ""),
        int(row.get("fill_sequence") or 0),
    )


def trade_markers(
    fills: Iterable[Mapping[str, Any]],
) -> tuple[list[TradeMarker], list[TradeMarker]]:
    """Buy and sell markers (time, fill price, quantity), each list in time order."""
    buys: list[TradeMarker] = []
    sells: list[TradeMarker] = []
    for row in sorted(fills, key=_fill_key):
        what = f"fill of {row.get('client_order_id')}"
        marker = TradeMarker(
            ts_ms=int(row["ts_event_ms"]),
            side=str(row["side"]),
            price=_required_decimal(row, "price", what),
            base_quantity=_required_decimal(row, "base_quantity", what),
        )
        if marker.side == "buy":
            buys.append(marker)
        elif marker.side == "sell":
            sells.append(marker)
        else:
            raise ReportError(f"{what} has side {marker.side!r}, expected buy or sell")
    return buys, sells


def liquidity_ratio_per_minute(liquidity: Iterable[Mapping[str, Any]]) -> list[PricePoint]:
    """The ask/bid ratio of each minute window (null ratios, i.e. no bids, are left out)."""
    ratios: dict[int, float] = {}
    for row in liquidity:
        ratio = row.get("liquidity_ratio")
        if ratio is not None and math.isfinite(float(ratio)):
            ratios[minute_of(int(row["window_start_ms"]))] = float(ratio)
    return [PricePoint(minute, ratio) for minute, ratio in sorted(ratios.items())]


def realised_prices(
    ticker: Iterable[Mapping[str, Any]], liquidity: Iterable[Mapping[str, Any]] = ()
) -> list[PricePoint]:
    """Mid price per minute: the minute's last ticker mid, else its liquidity record's mid."""
    from_liquidity: dict[int, float] = {}
    for row in liquidity:
        if row.get("mid_price") is not None:
            from_liquidity[minute_of(int(row["window_start_ms"]))] = float(row["mid_price"])
    from_ticker: dict[int, tuple[int, float]] = {}
    for row in ticker:
        if row.get("mid_price") is None:
            continue  # one side of the book was empty
        ts_ms = int(row["ts_ms"])
        minute = minute_of(ts_ms)
        if minute not in from_ticker or from_ticker[minute][0] <= ts_ms:
            from_ticker[minute] = (ts_ms, float(row["mid_price"]))
    prices = {**from_liquidity, **{minute: mid for minute, (_, mid) in from_ticker.items()}}
    return [PricePoint(minute, price) for minute, price in sorted(prices.items())]


def forecast_against_realised(
    forecast: pd.DataFrame | None,
    realised: Sequence[PricePoint],
    *,
    start_ms: int,
    end_ms: int,
    offset_ms: int = 0,
    version: str | None = None,
) -> ForecastComparison:
    """The forecast's minutes in ``[start_ms, end_ms)`` against the realised mid prices.

    ``offset_ms`` is how far the feed's clock is ahead of the forecast's (the simulator's replay
    shift; 0 for live data): forecast minute ``ds`` is compared with feed minute ``ds + offset``.
    """
    if forecast is None:
        return ForecastComparison(version, [], "no forecast loaded")
    import numpy as np
    import pandas as pd

    ds_ms = pd.to_datetime(forecast["ds"], utc=True).astype("int64").to_numpy() // 1_000_000
    feed_ms = ds_ms + int(offset_ms)
    inside = (feed_ms >= start_ms) & (feed_ms < end_ms)
    if not inside.any():
        if len(ds_ms) == 0:
            return ForecastComparison(version, [], f"forecast {version} has no minutes")
        return ForecastComparison(
            version,
            [],
            f"forecast {version} does not cover this range (it covers "
            f"{iso_minute(int(ds_ms.min()) + offset_ms)} .. "
            f"{iso_minute(int(ds_ms.max()) + offset_ms)} on the feed's clock, offset "
            f"{offset_ms} ms)",
        )
    selected = forecast.loc[inside]
    minutes = feed_ms[inside]
    price_by_minute = {point.minute_ms: point.value for point in realised}
    columns = zip(
        minutes.tolist(),
        np.exp(selected["yhat"].to_numpy(dtype=float)).tolist(),
        np.exp(selected["yhat_lower"].to_numpy(dtype=float)).tolist(),
        np.exp(selected["yhat_upper"].to_numpy(dtype=float)).tolist(),
        selected["side"].astype(str).tolist(),
        strict=True,
    )
    points = [
        ForecastPoint(
            int(minute), price, lower, upper, side, price_by_minute.get(minute_of(minute))
        )
        for minute, price, lower, upper, side in columns
    ]
    points.sort(key=lambda point: point.minute_ms)
    errors = [
        abs(point.forecast_price - point.realised_price) / point.realised_price * 100
        for point in points
        if point.realised_price
    ]
    side_minutes = side_agreed = 0
    for point in points:
        following = price_by_minute.get(minute_of(point.minute_ms) + MINUTE_MS)
        if point.realised_price is None or following is None or following == point.realised_price:
            continue
        side_minutes += 1
        moved_up = following > point.realised_price
        side_agreed += (point.side == "buy") == moved_up
    compared = len(errors)
    mean_error = sum(errors) / compared if compared else None
    if compared:
        note = (
            f"forecast {version}: {compared} minute(s) compared, mean absolute error "
            f"{mean_error:.3f} % of the mid price; side agreed with the next minute's move in "
            f"{side_agreed} of {side_minutes}"
        )
    else:
        note = (
            f"forecast {version} covers {len(points)} minute(s) here, but no mid price was recorded"
        )
    return ForecastComparison(
        version, points, note, compared, mean_error, side_minutes, side_agreed
    )


def _balance_snapshots(
    balances: Iterable[Mapping[str, Any]], fills: Iterable[Mapping[str, Any]]
) -> list[tuple[int, Decimal, Decimal, float | None]]:
    """(ts_ms, usd, btc, equity as recorded) from balance documents, else from the fills."""
    snapshots = [
        (
            int(row["ts_ms"]),
            _required_decimal(row, "usd", "balance snapshot"),
            _required_decimal(row, "btc", "balance snapshot"),
            None if row.get("equity_usd") is None else float(row["equity_usd"]),
        )
        for row in balances
    ]
    if not snapshots:
        snapshots = [
            (
                int(row["ts_event_ms"]),
                _required_decimal(row, "usd_after", "fill"),
                _required_decimal(row, "btc_after", "fill"),
                None,
            )
            for row in sorted(fills, key=_fill_key)
        ]
    return sorted(snapshots, key=lambda snapshot: snapshot[0])


def equity_series(
    balances: Iterable[Mapping[str, Any]],
    fills: Iterable[Mapping[str, Any]],
    prices: Sequence[PricePoint],
) -> list[EquityPoint]:
    """Equity (USD) at every balance snapshot and every later price minute.

    Balances come from the balance documents (from the fills' balances after, when there are
    none); BTC is valued at the latest mid price at or before the point, no exit fee deducted.
    """
    snapshots = _balance_snapshots(balances, fills)
    if not snapshots:
        return []
    price_minutes = [point.minute_ms for point in prices]
    snapshot_times = [snapshot[0] for snapshot in snapshots]

    def mark(ts_ms: int, usd: Decimal, btc: Decimal) -> float | None:
        index = bisect.bisect_right(price_minutes, minute_of(ts_ms)) - 1
        if index >= 0:
            return float(usd + btc * Decimal(str(prices[index].value)))
        return float(usd) if btc == 0 else None

    points = [
        EquityPoint(ts, usd, btc, recorded if recorded is not None else mark(ts, usd, btc))
        for ts, usd, btc, recorded in snapshots
    ]
    for point in prices:
        if point.minute_ms <= snapshot_times[0]:
            continue
        ts, usd, btc, _ = snapshots[bisect.bisect_right(snapshot_times, point.minute_ms) - 1]
        points.append(
            EquityPoint(point.minute_ms, usd, btc, float(usd + btc * Decimal(str(point.value))))
        )
    return sorted(points, key=lambda point: point.ts_ms)


def summarize(
    rows: ReportRows,
    *,
    start_ms: int,
    end_ms: int,
    mode: str | None,
    symbol: str | None,
    forecast: ForecastComparison,
) -> ReportSummary:
    """Counts and Decimal sums of one range's documents."""
    pnl = cumulative_pnl(rows.scores)
    buys, sells = trade_markers(rows.fills)
    fees = sum(
        (_required_decimal(row, "fee_usd", "fill") for row in rows.fills),
        Decimal(0),
    )
    profitable = sum(1 for row in rows.scores if _required_decimal(row, "pnl_usd", "score") > 0)
    modes = {
        str(row["trading_mode"])
        for row in (*rows.fills, *rows.scores, *rows.orders)
        if row.get("trading_mode")
    }
    versions = {
        str(row["forecast_version"])
        for row in (*rows.fills, *rows.orders)
        if row.get("forecast_version")
    }
    return ReportSummary(
        start_ms=start_ms,
        end_ms=end_ms,
        mode=mode,
        symbol=symbol,
        trades=len(rows.fills),
        buys=len(buys),
        sells=len(sells),
        orders=len(rows.orders),
        round_trips=len(pnl),
        profitable_round_trips=profitable,
        realised_pnl_usd=pnl[-1].cumulative_pnl_usd if pnl else Decimal(0),
        fees_paid_usd=fees,
        modes_seen=tuple(sorted(modes)),
        forecast_versions_seen=tuple(sorted(versions)),
        forecast=forecast,
    )


# --- Elasticsearch -----------------------------------------------------------------------------


def fetch_rows(
    client: Elasticsearch,
    kind: str,
    *,
    start_ms: int,
    end_ms: int,
    prefix: str,
    mode: str | None = None,
    symbol: str | None = None,
    page_size: int = PAGE_SIZE,
) -> list[dict[str, Any]]:
    """Every ``_source`` of ``<prefix>-<kind>`` with ``@timestamp`` in ``[start_ms, end_ms)``,
    sorted by time, paged with ``search_after``. A missing index gives no rows."""
    import elasticsearch

    filters: list[dict[str, Any]] = [
        {"range": {"@timestamp": {"gte": start_ms, "lt": end_ms, "format": "epoch_millis"}}}
    ]
    if mode is not None and kind in MODE_KINDS:
        filters.append({"term": {"trading_mode": mode}})
    if symbol is not None and kind in SYMBOL_KINDS:
        filters.append({"term": {"symbol": symbol.upper()}})
    sort: list[dict[str, Any]] = [{"@timestamp": {"order": "asc"}}]
    sort += [
        {name: {"order": "asc", "unmapped_type": field_type}}
        for name, field_type in TIEBREAKERS[kind]
    ]
    index = index_name(kind, prefix)
    rows: list[dict[str, Any]] = []
    after: list[Any] | None = None
    try:
        while True:
            extra: dict[str, Any] = {} if after is None else {"search_after": after}
            response = client.search(
                index=index,
                query={"bool": {"filter": filters}},
                sort=sort,
                size=page_size,
                ignore_unavailable=True,
                allow_no_indices=True,
                track_total_hits=False,
                **extra,
            )
            hits = response["hits"]["hits"]
            rows.extend(hit["_source"] for hit in hits)
            if len(hits) < page_size:
                return rows
            after = hits[-1]["sort"]
    except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as error:
        raise SearchUnavailableError(
            f"Elasticsearch does not answer while reading {index}: {error}. Start the local node "
            "with `rtc stack up`, or set RTC_SEARCH_URL"
        ) from error
    except elasticsearch.ApiError as error:
        raise SearchError(f"Elasticsearch refused the search on {index}: {error}") from error


def fetch_report_rows(
    client: Elasticsearch,
    *,
    start_ms: int,
    end_ms: int,
    prefix: str,
    mode: str | None = None,
    symbol: str | None = None,
) -> ReportRows:
    """The documents of every kind the report uses (see :func:`fetch_rows`)."""
    fetched = {
        kind: fetch_rows(
            client, kind, start_ms=start_ms, end_ms=end_ms, prefix=prefix, mode=mode, symbol=symbol
        )
        for kind in TIEBREAKERS
    }
    return ReportRows(**fetched)


# --- rendering ---------------------------------------------------------------------------------


def _moment(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, UTC)


def _empty_panel(axes: Any, text: str) -> None:
    axes.text(0.5, 0.5, text, transform=axes.transAxes, ha="center", va="center", color="0.4")
    axes.set_yticks([])  # an empty panel's 0..1 axis would read like data


def render_chart(
    path: Path,
    *,
    start_ms: int,
    end_ms: int,
    pnl: Sequence[PnlPoint],
    buys: Sequence[TradeMarker],
    sells: Sequence[TradeMarker],
    prices: Sequence[PricePoint],
    forecast: ForecastComparison,
    ratios: Sequence[PricePoint],
    ratio_band: tuple[float, float],
    equity: Sequence[EquityPoint],
    title: str,
) -> None:
    """Four stacked panels on one time axis (UTC) into a PNG at ``path``: cumulative realised
    P&L, mid price with buy/sell markers and the forecast price, the liquidity ratio with the
    buy band, and equity. Uses the Agg canvas directly (no pyplot, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 12), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    pnl_axes, price_axes, ratio_axes, equity_axes = figure.subplots(4, 1, sharex=True)
    figure.suptitle(title)
    # The axis starts at the first recorded minute: a range reaching back before the replay (or the
    # platform's start) would otherwise squeeze every recorded minute into its right edge.
    firsts = [series[0].minute_ms for series in (prices, ratios) if series]
    firsts += [equity[0].ts_ms] if equity else []
    first_recorded_ms = min(firsts, default=start_ms)
    left, right = _moment(max(start_ms, first_recorded_ms)), _moment(end_ms)

    pnl_axes.set_title("Cumulative realised P&L after fees (USD, closed round trips)", loc="left")
    pnl_axes.axhline(0, color="0.6", linewidth=0.8)
    if pnl:
        times = [left] + [_moment(point.ts_ms) for point in pnl] + [right]
        values = [0.0] + [float(point.cumulative_pnl_usd) for point in pnl]
        values.append(values[-1])
        pnl_axes.plot(times, values, drawstyle="steps-post", color="tab:blue")
        pnl_axes.plot(times[1:-1], values[1:-1], "o", color="tab:blue", markersize=4)
    else:
        _empty_panel(pnl_axes, "no round trips in this range")

    price_axes.set_title("Price (USD/BTC): mid, fills, forecast exp(yhat)", loc="left")
    if prices:
        price_axes.plot(
            [_moment(point.minute_ms) for point in prices],
            [point.value for point in prices],
            color="0.35",
            linewidth=1,
            label="mid price",
        )
    if forecast.points:
        price_axes.plot(
            [_moment(point.minute_ms) for point in forecast.points],
            [point.forecast_price for point in forecast.points],
            color="tab:purple",
            linestyle="--",
            linewidth=1,
            label=f"forecast {forecast.version}",
        )
    for markers, style, colour, label in (
        (buys, "^", "tab:green", "buy"),
        (sells, "v", "tab:red", "sell"),
    ):
        if markers:
            price_axes.plot(
                [_moment(marker.ts_ms) for marker in markers],
                [float(marker.price) for marker in markers],
                style,
                color=colour,
                markersize=8,
                linestyle="none",
                label=label,
            )
    if prices or forecast.points or buys or sells:
        price_axes.legend(loc="best", fontsize="small")
    else:
        _empty_panel(price_axes, "no prices recorded in this range")

    low, high = ratio_band
    ratio_axes.set_title(
        f"Liquidity ratio ask/bid per minute (buy band {low:g} .. {high:g})", loc="left"
    )
    ratio_axes.axhspan(low, high, color="tab:green", alpha=0.1, label="buy band")
    if ratios:
        ratio_axes.plot(
            [_moment(point.minute_ms) for point in ratios],
            [point.value for point in ratios],
            color="tab:orange",
            linewidth=1,
            marker=".",
            markersize=3,
        )
    else:
        _empty_panel(ratio_axes, "no liquidity records in this range")

    equity_axes.set_title("Equity (USD + BTC at the mid price, no exit fee)", loc="left")
    valued = [point for point in equity if point.equity_usd is not None]
    if valued:
        equity_axes.plot(
            [_moment(point.ts_ms) for point in valued],
            [point.equity_usd for point in valued],
            drawstyle="steps-post",
            color="tab:cyan",
        )
    elif equity:
        equity_axes.plot(
            [_moment(point.ts_ms) for point in equity],
            [float(point.usd) for point in equity],
            drawstyle="steps-post",
            color="tab:cyan",
            label="USD balance (no price to value BTC)",
        )
        equity_axes.legend(loc="best", fontsize="small")
    else:
        _empty_panel(equity_axes, "no balances recorded in this range")

    locator = AutoDateLocator()
    equity_axes.xaxis.set_major_locator(locator)
    equity_axes.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
    equity_axes.set_xlim(left, right)
    equity_axes.set_xlabel("time (UTC)")
    for axes in (pnl_axes, price_axes, ratio_axes, equity_axes):
        axes.grid(True, alpha=0.3)
    figure.savefig(path, format="png")


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; text-align: left; }
.summary th { width: 16em; }
.note { background: #fff8e1; padding: 0.6em 1em; border-left: 4px solid #f0b400; }
.empty { font-weight: bold; font-size: 1.2em; }
img { max-width: 100%; border: 1px solid #ddd; }
code { font-size: 0.9em; }
"""


def _cell(value: Any) -> str:
    return "" if value is None else html.escape(str(value))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty_text: str) -> str:
    if not rows:
        return f"<p>{html.escape(empty_text)}</p>"
    head = "".join(f"<th>{html.escape(header)}</th>" for header in headers)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


def _exact_or_number(row: Mapping[str, Any], name: str) -> str | None:
    value = decimal_of(row, name)
    return None if value is None else exact_text(value)


def render_html(
    summary: ReportSummary,
    rows: ReportRows,
    png: bytes,
    *,
    prefix: str,
    forecast_dir: Path | str,
) -> str:
    """The self-contained report page: summary table, the chart (base64), round trips, orders."""
    hit = "n/a" if summary.hit_rate is None else f"{summary.hit_rate:.1%}"
    forecast = summary.forecast
    summary_rows = [
        ("Trades (fills)", f"{summary.trades}"),
        ("Buys / sells", f"{summary.buys} / {summary.sells}"),
        ("Orders", f"{summary.orders}"),
        ("Round trips", f"{summary.round_trips}"),
        (
            "Hit rate of round trips",
            f"{hit} ({summary.profitable_round_trips} of {summary.round_trips} with P&amp;L &gt; 0)",
        ),
        (
            "Realised P&amp;L after fees (USD)",
            f"{usd_text(summary.realised_pnl_usd)} "
            f"(exact <code>{exact_text(summary.realised_pnl_usd)}</code>)",
        ),
        (
            "Fees paid (USD)",
            f"{usd_text(summary.fees_paid_usd)} "
            f"(exact <code>{exact_text(summary.fees_paid_usd)}</code>)",
        ),
        ("Trading modes", html.escape(", ".join(summary.modes_seen) or "none")),
        (
            "Forecast versions used",
            html.escape(", ".join(summary.forecast_versions_seen) or "none"),
        ),
        ("Forecast against realised price", html.escape(forecast.note)),
        ("Clock", html.escape(summary.clock or "as given (absolute times)")),
    ]
    summary_table = "\n".join(
        f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in summary_rows
    )
    round_trips = [
        (
            iso_minute(int(row["entry_ts_ms"])),
            iso_minute(int(row["exit_ts_ms"])),
            _exact_or_number(row, "entry_price"),
            _exact_or_number(row, "exit_price"),
            _exact_or_number(row, "base_quantity"),
            _exact_or_number(row, "entry_fee_usd"),
            _exact_or_number(row, "exit_fee_usd"),
            _exact_or_number(row, "pnl_usd"),
            row.get("exit_client_order_id"),
        )
        for row in sorted(rows.scores, key=_score_key)
    ]
    orders = [
        (
            iso_minute(int(row["ts_ms"])),
            row.get("client_order_id"),
            row.get("side"),
            row.get("state"),
            _exact_or_number(row, "limit_price"),
            _exact_or_number(row, "quantity"),
            _exact_or_number(row, "executed_quantity"),
            _exact_or_number(row, "average_execution_price"),
            _exact_or_number(row, "fee_usd"),
            row.get("trading_mode"),
            row.get("forecast_version"),
        )
        for row in sorted(
            rows.orders, key=lambda row: (int(row["ts_ms"]), str(row.get("client_order_id")))
        )
    ]
    headline = html.escape(summary.verdict())
    headline_class = "empty" if summary.empty else ""
    mode_warning = ""
    if len(summary.modes_seen) > 1:
        mode_warning = (
            f'<p class="note">This range holds several trading modes '
            f"({html.escape(', '.join(summary.modes_seen))}); their figures are added up here. "
            "Build one report per mode with <code>rtc report --mode</code>.</p>"
        )
    encoded = base64.b64encode(png).decode("ascii")
    title = f"Trade review {iso_minute(summary.start_ms)} .. {iso_minute(summary.end_ms)} UTC"
    source = (
        f"Elasticsearch indices <code>{html.escape(prefix)}-*</code>"
        f" (mode {html.escape(summary.mode or 'all')}, symbol {html.escape(summary.symbol or 'all')});"
        f" forecast files in <code>{html.escape(str(forecast_dir))}</code>"
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>From {source}.</p>
<p class="{headline_class}">{headline}</p>
<p class="note">This report states what the trader recorded in this range. Realised P&amp;L
counts closed round trips only (each sell scored against the last buy, both taker fees
included); a position still open at the end is not in it. Fees paid count every fill in the
range. Nothing here predicts future results.</p>
{mode_warning}
<h2>Summary</h2>
<table class="summary">
{summary_table}
</table>
<h2>Charts</h2>
<img alt="Cumulative P&amp;L, price with trades and forecast, liquidity ratio, equity" src="data:image/png;base64,{encoded}">
<h2>Round trips</h2>
{_table(("entry (UTC)", "exit (UTC)", "entry price", "exit price", "BTC", "entry fee USD", "exit fee USD", "P&L USD", "exit order"), round_trips, "No round trips in this range.")}
<h2>Orders</h2>
{_table(("time (UTC)", "client order id", "side", "state", "limit price", "BTC", "executed BTC", "average price", "fee USD", "mode", "forecast"), orders, "No orders in this range.")}
</body>
</html>
"""


def _write_atomically(path: Path, content: bytes) -> None:
    """Write next to ``path`` and rename: a reader never sees half a file."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _load_forecast(
    forecast_dir: Path | None,
) -> tuple[pd.DataFrame | None, str | None, str | None]:
    """(frame, version, None) of the current forecast, or (None, None, why not)."""
    from rtcrypto.forecast.model import ForecastError
    from rtcrypto.forecast.publish import load_current

    try:
        current = load_current(forecast_dir)
    except ForecastError as error:
        return None, None, str(error)
    except (OSError, ValueError, KeyError) as error:
        return None, None, f"the current forecast could not be read: {error}"
    return current.forecast, current.version, None


# --- the whole report --------------------------------------------------------------------------


def build_report(
    client: Elasticsearch,
    *,
    start_ms: int,
    end_ms: int,
    prefix: str,
    forecast_dir: Path | None,
    out_dir: Path,
    mode: str | None = None,
    symbol: str | None = None,
    forecast_offset_ms: int = 0,
    ratio_band: tuple[Decimal, Decimal] | None = None,
    clock: str | None = None,
) -> ReportResult:
    """Fetch the range's documents, build the series, write PNG, HTML and JSON into ``out_dir``.

    ``mode`` (paper, sandbox, live) and ``symbol`` restrict the documents; None takes all.
    ``forecast_dir`` None means the configured one; ``ratio_band`` None means the settings'
    ``(liquidity_ratio_low, liquidity_ratio_high)``. ``clock`` says which clock the range was
    counted on (:attr:`rtcrypto.report.clock.ReviewClock.description`); the report states it,
    and ``forecast_offset_ms`` is that clock's offset. Raises :class:`ReportError` for a bad
    range or mode and ``SearchUnavailableError`` when Elasticsearch does not answer.
    """
    from rtcrypto.forecast.publish import resolve_forecast_dir  # pandas and friends: on use

    if end_ms <= start_ms:
        raise ReportError(
            f"the range is empty: end {iso_minute(end_ms)} is not after start {iso_minute(start_ms)}"
        )
    if mode is not None and mode not in TRADING_MODES:
        raise ReportError(f"mode must be one of {sorted(TRADING_MODES)} or none, got {mode!r}")
    if ratio_band is None:
        from rtcrypto.config import get_settings

        settings = get_settings()
        ratio_band = (settings.liquidity_ratio_low, settings.liquidity_ratio_high)
    rows = fetch_report_rows(
        client, start_ms=start_ms, end_ms=end_ms, prefix=prefix, mode=mode, symbol=symbol
    )
    prices = realised_prices(rows.ticker, rows.liquidity)
    forecast_dir = resolve_forecast_dir(forecast_dir)
    frame, version, why_not = _load_forecast(forecast_dir)
    if frame is None:
        comparison = ForecastComparison(None, [], why_not or "no forecast")
    else:
        comparison = forecast_against_realised(
            frame,
            prices,
            start_ms=start_ms,
            end_ms=end_ms,
            offset_ms=forecast_offset_ms,
            version=version,
        )
    summary = summarize(
        rows, start_ms=start_ms, end_ms=end_ms, mode=mode, symbol=symbol, forecast=comparison
    )
    if clock:
        summary = dataclasses.replace(summary, clock=clock)
    buys, sells = trade_markers(rows.fills)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png_path = out_dir / REPORT_PNG
    html_path = out_dir / REPORT_HTML
    json_path = out_dir / REPORT_JSON
    staging_png = out_dir / f".{REPORT_PNG}.partial"
    render_chart(
        staging_png,
        start_ms=start_ms,
        end_ms=end_ms,
        pnl=cumulative_pnl(rows.scores),
        buys=buys,
        sells=sells,
        prices=prices,
        forecast=comparison,
        ratios=liquidity_ratio_per_minute(rows.liquidity),
        ratio_band=(float(ratio_band[0]), float(ratio_band[1])),
        equity=equity_series(rows.balances, rows.fills, prices),
        title=(
            f"{symbol or 'all symbols'}, mode {mode or 'all'}: "
            f"{iso_minute(start_ms)} .. {iso_minute(end_ms)} UTC"
        ),
    )
    png = staging_png.read_bytes()
    os.replace(staging_png, png_path)
    page = render_html(summary, rows, png, prefix=prefix, forecast_dir=forecast_dir)
    _write_atomically(html_path, page.encode("utf-8"))
    _write_atomically(json_path, json.dumps(summary.as_dict(), indent=2).encode("utf-8"))
    return ReportResult(out_dir, html_path, png_path, json_path, summary)
