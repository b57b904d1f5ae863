"""The bar rules, pure: trades and book mids of one symbol -> 1-minute OHLCV bars.

A bar covers the UTC minute ``[ts_ms, ts_ms + 60 000)`` by exchange event time (``ts_event_ms``).

- A minute with at least one trade: ``open`` / ``close`` = the price of its first / last trade in
  ``(ts_event_ms, trade_id)`` order, ``high`` / ``low`` = the highest / lowest trade price,
  ``volume`` = the sum of the trades' ``amount`` (base currency, BTC), ``weighted_price`` = the
  volume-weighted average price sum(price x amount) / volume, ``trades`` = the trade count.
- A minute without a trade but with a book mid (the ingest's ``book_depth`` record, written at the
  minute's last millisecond with the mid of the book at that moment): a flat bar,
  ``open = high = low = close = mid``, ``volume = 0``, ``weighted_price`` = None, ``trades = 0``.
  The latest mid of the minute counts (there is one per minute).
- A minute with neither (no trade and no book change) has no bar: a gap, as in imported files.

Prices are quote currency (USD) per unit; sums are exact (``Decimal``), then rounded to float.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from rtcrypto.history.bars import MINUTE_MS, Bars


@dataclass(frozen=True, slots=True)
class TradeIn:
    """One trade of ``gemini.trades.v1``: decimal strings as the exchange sent them."""

    symbol: str
    ts_event_ms: int
    trade_id: int
    price: str
    amount: str


@dataclass(frozen=True, slots=True)
class MidIn:
    """The book's mid of one symbol at ``ts_event_ms`` (a ``book_depth`` record), or None."""

    symbol: str
    ts_event_ms: int
    mid_price: float | None


@dataclass(frozen=True, slots=True)
class FeedBar:
    """One minute bar of one symbol (see the module docstring for each field's rule)."""

    symbol: str
    ts_ms: int  # minute open time, UTC ms
    open: float
    high: float
    low: float
    close: float
    volume: float
    weighted_price: float | None
    trades: int


def minute_start_ms(ts_ms: int) -> int:
    """The UTC minute ``ts_ms`` falls in (floor, also for times before 1970)."""
    return ts_ms - ts_ms % MINUTE_MS


def usable_mid(mid_price: float | None) -> bool:
    """A mid can make a bar when it is a finite positive number."""
    return mid_price is not None and math.isfinite(mid_price) and mid_price > 0


def bar_from_trades(symbol: str, ts_ms: int, trades: Iterable[TradeIn]) -> FeedBar:
    """The bar of one minute's trades (at least one); see the module docstring."""
    ordered = sorted(trades, key=lambda trade: (trade.ts_event_ms, trade.trade_id))
    if not ordered:
        raise ValueError("a trade bar needs at least one trade")
    prices = [Decimal(trade.price) for trade in ordered]
    amounts = [Decimal(trade.amount) for trade in ordered]
    volume = sum(amounts, Decimal(0))
    notional = sum((p * a for p, a in zip(prices, amounts, strict=True)), Decimal(0))
    return FeedBar(
        symbol=symbol,
        ts_ms=ts_ms,
        open=float(prices[0]),
        high=float(max(prices)),
        low=float(min(prices)),
        close=float(prices[-1]),
        volume=float(volume),
        weighted_price=float(notional / volume) if volume > 0 else None,
        trades=len(ordered),
    )


def bar_from_mid(symbol: str, ts_ms: int, mid_price: float) -> FeedBar:
    """The flat bar of a minute without trades: every price the mid, volume 0."""
    return FeedBar(symbol, ts_ms, mid_price, mid_price, mid_price, mid_price, 0.0, None, 0)


def minute_bars(trades: Iterable[TradeIn], mids: Iterable[MidIn] = ()) -> list[FeedBar]:
    """Every bar the trades and mids make, sorted by (symbol, minute)."""
    trades_by_minute: dict[tuple[str, int], list[TradeIn]] = defaultdict(list)
    for trade in trades:
        trades_by_minute[(trade.symbol, minute_start_ms(trade.ts_event_ms))].append(trade)
    latest_mid: dict[tuple[str, int], MidIn] = {}
    for mid in mids:
        key = (mid.symbol, minute_start_ms(mid.ts_event_ms))
        if key not in latest_mid or mid.ts_event_ms >= latest_mid[key].ts_event_ms:
            latest_mid[key] = mid
    bars = [bar_from_trades(symbol, ts, group) for (symbol, ts), group in trades_by_minute.items()]
    for (symbol, ts), mid in latest_mid.items():
        if (symbol, ts) not in trades_by_minute and usable_mid(mid.mid_price):
            assert mid.mid_price is not None
            bars.append(bar_from_mid(symbol, ts, mid.mid_price))
    return sorted(bars, key=lambda bar: (bar.symbol, bar.ts_ms))


def feed_source(symbol: str, feed_source_name: str, traded_symbol: str) -> str:
    """The history source of ``symbol``'s bars.

    The traded symbol's bars are ``feed_source_name`` (``history_feed_source``, default
    ``gemini-feed``: the source the retrain reads); another symbol's are
    ``<feed_source_name>-<symbol in lowercase>`` (``gemini-feed-ethusd``): the store holds one
    series per source.
    """
    if symbol.upper() == traded_symbol.upper():
        return feed_source_name
    return f"{feed_source_name}-{symbol.lower()}"


def to_history_bars(bars: Iterable[FeedBar]) -> Bars:
    """Bars of one symbol as the store's columns, sorted by minute (one bar per minute)."""
    ordered = sorted(bars, key=lambda bar: bar.ts_ms)

    def column(name: str) -> np.ndarray:
        return np.array([getattr(bar, name) for bar in ordered], dtype=np.float64)

    return Bars(
        ts_ms=np.array([bar.ts_ms for bar in ordered], dtype=np.int64),
        open=column("open"),
        high=column("high"),
        low=column("low"),
        close=column("close"),
        volume=column("volume"),
        weighted_price=np.array(
            [np.nan if bar.weighted_price is None else bar.weighted_price for bar in ordered],
            dtype=np.float64,
        ),
    )


def group_by_source(
    bars: Iterable[FeedBar], feed_source_name: str, traded_symbol: str
) -> Mapping[str, Bars]:
    """Bars per history source (see ``feed_source``), each sorted by minute."""
    grouped: dict[str, list[FeedBar]] = defaultdict(list)
    for bar in bars:
        grouped[feed_source(bar.symbol, feed_source_name, traded_symbol)].append(bar)
    return {source: to_history_bars(group) for source, group in sorted(grouped.items())}
