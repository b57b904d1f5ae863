"""Liquidity math of the book (pure): price-weighted volume per side and the ask/bid ratio.

The Spark job computes the same quantities with Spark SQL expressions; this module is the
reference that unit tests, the backtester and the trader share. The record the job writes is
``rtcrypto.market.schemas.LiquidityMinute``.
"""

from __future__ import annotations

from collections.abc import Iterable

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


# The last millisecond Spark's timestamps (and so its windows and watermark) hold: 9999-12-31
# 23:59:59.999 UTC. timestamp_millis of ~9.2e15 ms overflows and fails the job on every restart.
MAX_EVENT_MS = 253_402_300_799_999


def event_time_problem(
    ts_event_ms: int | None, receive_ms: int | None, window_ms: int
) -> str | None:
    """Why the Spark jobs must not use a record's event time (None: usable), as they check it.

    Spark has no feed clock: a record's receive time there is its Kafka timestamp (the wall
    clock), and a history replay's event times are legitimately years behind it. So only what
    can move the watermark is refused: an event time more than ``window_ms`` after the receive
    time, or outside ``[0, MAX_EVENT_MS]``. An old event time is merely late (the watermark
    drops it). ``receive_ms`` None (no Kafka timestamp) checks the range only.
    """
    if ts_event_ms is None:
        return None  # the record's own checks say "missing ts_event_ms"
    if not 0 <= ts_event_ms <= MAX_EVENT_MS:
        return f"ts_event_ms {ts_event_ms} is outside [0, {MAX_EVENT_MS}]"
    if receive_ms is not None and ts_event_ms > receive_ms + window_ms:
        return (
            f"ts_event_ms {ts_event_ms} is more than {window_ms // 1000} s after the record's "
            f"Kafka time {receive_ms}"
        )
    return None
