"""The trade review's pure series: rows (the documents' ``_source``) in, points and a summary out.

- cumulative realised P&L: the scores' ``pnl_usd_exact`` summed in Decimal, in exit order;
- trades: buy and sell markers at each fill's price and time;
- the liquidity ratio (ask/bid price-weighted volume) and the depth imbalance per minute;
- forecast against realised price: ``exp(yhat)`` of each forecast minute (shifted by the feed's
  clock offset) against that minute's mid price (ticker, else the liquidity record's);
- equity: the balances marked at the latest mid price.

Times are epoch milliseconds (UTC), money is USD (Decimal where exact), quantities BTC.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rtcrypto.report.model import (
    MINUTE_MS,
    EquityPoint,
    ForecastComparison,
    ForecastPoint,
    PnlPoint,
    PricePoint,
    ReportError,
    ReportRows,
    ReportSummary,
    TradeMarker,
    decimal_of,
    iso_minute,
    minute_of,
)

if TYPE_CHECKING:
    import pandas as pd


def _required_decimal(row: Mapping[str, Any], name: str, what: str) -> Decimal:
    value = decimal_of(row, name)
    if value is None:
        raise ReportError(f"{what} has no {name}: {dict(row)!r}")
    return value


def score_key(row: Mapping[str, Any]) -> tuple[int, str]:
    """The ledger's order of round trips: exit time, then exit order id."""
    return int(row["exit_ts_ms"]), str(row.get("exit_client_order_id") or "")


def cumulative_pnl(scores: Iterable[Mapping[str, Any]]) -> list[PnlPoint]:
    """Running Decimal sum of the scores' ``pnl_usd_exact``, in exit order (the ledger's order)."""
    total = Decimal(0)
    points = []
    for row in sorted(scores, key=score_key):
        total += _required_decimal(row, "pnl_usd", f"score {row.get('exit_client_order_id')}")
        points.append(PnlPoint(int(row["exit_ts_ms"]), total))
    return points


def fill_key(row: Mapping[str, Any]) -> tuple[int, str, int]:
    """Fills in time order, then by order id and fill sequence."""
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
    for row in sorted(fills, key=fill_key):
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


def liquidity_per_minute(liquidity: Iterable[Mapping[str, Any]], name: str) -> list[PricePoint]:
    """Field ``name`` of each minute window's liquidity record (null or non-finite values, e.g. a
    ratio without bids, are left out), in minute order."""
    values: dict[int, float] = {}
    for row in liquidity:
        value = row.get(name)
        if value is not None and math.isfinite(float(value)):
            values[minute_of(int(row["window_start_ms"]))] = float(value)
    return [PricePoint(minute, value) for minute, value in sorted(values.items())]


def liquidity_ratio_per_minute(liquidity: Iterable[Mapping[str, Any]]) -> list[PricePoint]:
    """The ask/bid ratio of each minute window (null ratios, i.e. no bids, are left out)."""
    return liquidity_per_minute(liquidity, "liquidity_ratio")


def depth_imbalance_per_minute(liquidity: Iterable[Mapping[str, Any]]) -> list[PricePoint]:
    """The depth imbalance (bid - ask) / (bid + ask) of each minute window (null left out)."""
    return liquidity_per_minute(liquidity, "depth_imbalance")


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
            for row in sorted(fills, key=fill_key)
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
