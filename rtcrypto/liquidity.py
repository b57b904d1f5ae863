"""Liquidity math of the book (pure): price-weighted volume per side and the ask/bid ratio.

The Spark job computes the same quantities with Spark SQL expressions; this module is the
reference that unit tests, the backtester and the trader share.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

WINDOW_MS = 60_000


def window_start_ms(ts_event_ms: int, window_ms: int = WINDOW_MS) -> int:
    """Start of the tumbling window that holds ``ts_event_ms`` (UTC milliseconds)."""
    return ts_event_ms - (ts_event_ms % window_ms)


def price_weighted_volume(levels: Iterable[tuple[float, float]]) -> float:
    """Sum of price x remaining over ``(price, remaining)`` pairs, in quote currency (USD)."""
    return float(sum(price * remaining for price, remaining in levels))


def liquidity_ratio(
    ask_price_weighted_volume: float, bid_price_weighted_volume: float
) -> float | None:
    """The book's ratio ask / bid; ``None`` when there is no bid volume to divide by."""
    if bid_price_weighted_volume == 0:
        return None
    return ask_price_weighted_volume / bid_price_weighted_volume


@dataclass(frozen=True, slots=True)
class LiquidityWindow:
    """One ``liquidity.minute.v1`` record (see DESIGN.md)."""

    symbol: str
    window_start_ms: int
    window_end_ms: int
    bid_price_weighted_volume: float
    ask_price_weighted_volume: float
    liquidity_ratio: float | None
    event_count: int
    depth_imbalance: float | None = None
    mid_price: float | None = None
