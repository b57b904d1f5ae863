"""The one place a range's documents become the trade review's series.

:func:`review_data` fetches a range's documents and the published forecast, and builds every
series the review shows (P&L, trades, prices, forecast, liquidity ratio, depth imbalance, equity)
and its summary. Two places render it: ``rtc report`` (:func:`rtcrypto.report.build_report`: PNG,
HTML, JSON files) and the live "Trade review" page in the Airflow UI (:mod:`rtcrypto.review`).
Times are epoch milliseconds (UTC), money USD, quantities BTC.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtcrypto.report.fetch import fetch_report_rows, load_forecast
from rtcrypto.report.model import (
    EquityPoint,
    ForecastComparison,
    PnlPoint,
    PricePoint,
    ReportError,
    ReportRows,
    ReportSummary,
    TradeMarker,
    iso_minute,
)
from rtcrypto.report.series import (
    cumulative_pnl,
    depth_imbalance_per_minute,
    equity_series,
    forecast_against_realised,
    liquidity_ratio_per_minute,
    realised_prices,
    summarize,
    trade_markers,
)
from rtcrypto.search.documents import TRADING_MODES

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch


@dataclass(frozen=True)
class ReviewData:
    """A range's documents and every series built from them."""

    rows: ReportRows
    prices: list[PricePoint]  # mid price per minute, USD
    forecast: ForecastComparison  # the current forecast against ``prices``
    pnl: list[PnlPoint]  # cumulative realised P&L after fees, USD
    buys: list[TradeMarker]
    sells: list[TradeMarker]
    ratios: list[PricePoint]  # liquidity ratio (ask / bid price-weighted volume) per minute
    imbalance: list[PricePoint]  # depth imbalance (bid - ask) / (bid + ask) per minute
    equity: list[EquityPoint]
    summary: ReportSummary
    ratio_band: tuple[Decimal, Decimal]  # the strategy's buy band of the ratio


def check_range_and_mode(start_ms: int, end_ms: int, mode: str | None) -> None:
    """Raise :class:`ReportError` for an empty range or an unknown trading mode."""
    if end_ms <= start_ms:
        raise ReportError(
            f"the range is empty: end {iso_minute(end_ms)} is not after start {iso_minute(start_ms)}"
        )
    if mode is not None and mode not in TRADING_MODES:
        raise ReportError(f"mode must be one of {sorted(TRADING_MODES)} or none, got {mode!r}")


def configured_ratio_band() -> tuple[Decimal, Decimal]:
    """The strategy's buy band of the liquidity ratio, from the settings."""
    from rtcrypto.config import get_settings

    settings = get_settings()
    return settings.liquidity_ratio_low, settings.liquidity_ratio_high


# (frame, version, None) of a folder's current forecast, or (None, None, why not)
ForecastLoader = Callable[[Path], tuple[Any, str | None, str | None]]


def compare_forecast(
    forecast_dir: Path,
    prices: list[PricePoint],
    *,
    start_ms: int,
    end_ms: int,
    offset_ms: int,
    loader: ForecastLoader = load_forecast,
) -> ForecastComparison:
    """The current forecast of ``forecast_dir`` against the realised prices, or why there is none."""
    frame, version, why_not = loader(forecast_dir)
    if frame is None:
        return ForecastComparison(None, [], why_not or "no forecast")
    return forecast_against_realised(
        frame, prices, start_ms=start_ms, end_ms=end_ms, offset_ms=offset_ms, version=version
    )


def review_data(
    client: Elasticsearch,
    *,
    start_ms: int,
    end_ms: int,
    prefix: str,
    forecast_dir: Path | None,
    mode: str | None = None,
    symbol: str | None = None,
    forecast_offset_ms: int = 0,
    ratio_band: tuple[Decimal, Decimal] | None = None,
    clock: str | None = None,
    forecast_loader: ForecastLoader = load_forecast,
) -> ReviewData:
    """Fetch ``[start_ms, end_ms)``'s documents (of ``mode`` and ``symbol``; None: all) and the
    forecast, and build the series. ``forecast_dir`` None means the configured one;
    ``ratio_band`` None the settings' band; ``clock`` is stated in the summary;
    ``forecast_loader`` reads the current forecast (the page caches it). Raises
    :class:`ReportError` for a bad range or mode, ``SearchUnavailableError`` when Elasticsearch
    does not answer."""
    from rtcrypto.forecast.publish import resolve_forecast_dir  # pandas and friends: on use

    check_range_and_mode(start_ms, end_ms, mode)
    rows = fetch_report_rows(
        client, start_ms=start_ms, end_ms=end_ms, prefix=prefix, mode=mode, symbol=symbol
    )
    prices = realised_prices(rows.ticker, rows.liquidity)
    comparison = compare_forecast(
        resolve_forecast_dir(forecast_dir),
        prices,
        start_ms=start_ms,
        end_ms=end_ms,
        offset_ms=forecast_offset_ms,
        loader=forecast_loader,
    )
    summary = summarize(
        rows, start_ms=start_ms, end_ms=end_ms, mode=mode, symbol=symbol, forecast=comparison
    )
    if clock:
        summary = dataclasses.replace(summary, clock=clock)
    buys, sells = trade_markers(rows.fills)
    return ReviewData(
        rows=rows,
        prices=prices,
        forecast=comparison,
        pnl=cumulative_pnl(rows.scores),
        buys=buys,
        sells=sells,
        ratios=liquidity_ratio_per_minute(rows.liquidity),
        imbalance=depth_imbalance_per_minute(rows.liquidity),
        equity=equity_series(rows.balances, rows.fills, prices),
        summary=summary,
        ratio_band=configured_ratio_band() if ratio_band is None else ratio_band,
    )
