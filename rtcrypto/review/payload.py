"""The Trade review page's JSON: one range's series (the ones ``rtc report`` draws), the orders
table, the forecast line of every version that decided an order, and the platform's state.

Series are ``[[ts_ms, value], ...]`` (the chart library's time axis takes epoch ms); money in the
orders table is the exact decimal text the ledger recorded. Nothing here renders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtcrypto.report.data import ReviewData, review_data
from rtcrypto.report.model import ForecastComparison, PricePoint, TradeMarker, decimal_of
from rtcrypto.report.series import forecast_against_realised
from rtcrypto.review.platform_state import current_forecast, current_health, recent_restarts
from rtcrypto.review.request import ReviewRequest, known_symbols

if TYPE_CHECKING:
    import pandas as pd
    from elasticsearch import Elasticsearch

    from rtcrypto.config import Settings

MAX_FORECAST_LINES = 6  # versions drawn at once: the current one and the newest that traded


def _points(points: Sequence[PricePoint]) -> list[list[float]]:
    return [[point.minute_ms, point.value] for point in points]


def _markers(markers: Sequence[TradeMarker]) -> list[list[Any]]:
    return [[m.ts_ms, float(m.price), float(m.base_quantity)] for m in markers]


def _exact(row: Mapping[str, Any], name: str) -> str | None:
    value = decimal_of(row, name)
    return None if value is None else format(value, "f")


def order_rows(orders: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The orders table: one row per order document, oldest first (the page sorts)."""
    rows = [
        {
            "ts_ms": int(row["ts_ms"]),
            "side": row.get("side"),
            "price": _exact(row, "average_execution_price") or _exact(row, "limit_price"),
            "quantity": _exact(row, "executed_quantity") or _exact(row, "quantity"),
            "fee_usd": _exact(row, "fee_usd"),
            "forecast_version": row.get("forecast_version"),
            "client_order_id": row.get("client_order_id"),
            "status": row.get("state"),
            "mode": row.get("trading_mode"),
        }
        for row in orders
    ]
    return sorted(rows, key=lambda row: (row["ts_ms"], str(row["client_order_id"])))


@lru_cache(maxsize=MAX_FORECAST_LINES * 2)
def _version_frame(forecast_dir: Path, version: str) -> pd.DataFrame:
    """A published version's forecast (versions never change once published)."""
    from rtcrypto.forecast.publish import load_version

    return load_version(version, forecast_dir)[0]


def cached_current_forecast(
    forecast_dir: Path,
) -> tuple[pd.DataFrame | None, str | None, str | None]:
    """:func:`rtcrypto.report.fetch.load_forecast`, with the version's frame read once (the
    pointer ``current`` is read on every call, so a new publish shows at once)."""
    from rtcrypto.forecast.publish import current_version
    from rtcrypto.report.fetch import load_forecast

    version = current_version(forecast_dir)
    if version is None:
        return load_forecast(forecast_dir)  # says why there is none
    try:
        return _version_frame(forecast_dir, version), version, None
    except (OSError, ValueError, KeyError) as error:
        return None, None, f"the current forecast {version} could not be read: {error}"


def _forecast_line(comparison: ForecastComparison) -> dict[str, Any]:
    return {
        "version": comparison.version,
        "note": comparison.note,
        "points": [
            [p.minute_ms, p.forecast_price, p.forecast_lower, p.forecast_upper]
            for p in comparison.points
        ],
    }


def forecast_lines(data: ReviewData, forecast_dir: Path, *, offset_ms: int) -> list[dict[str, Any]]:
    """exp(yhat) of the current version and of every version that decided an order in range
    (newest names first, at most :data:`MAX_FORECAST_LINES`), on the feed's clock."""
    lines = [_forecast_line(data.forecast)] if data.forecast.version else []
    traded = [v for v in data.summary.forecast_versions_seen if v != data.forecast.version]
    for version in sorted(traded, reverse=True)[: MAX_FORECAST_LINES - len(lines)]:
        try:
            frame = _version_frame(forecast_dir, version)
        except (OSError, ValueError, KeyError) as error:
            lines.append({"version": version, "note": f"not readable: {error}", "points": []})
            continue
        comparison = forecast_against_realised(
            frame,
            data.prices,
            start_ms=data.summary.start_ms,
            end_ms=data.summary.end_ms,
            offset_ms=offset_ms,
            version=version,
        )
        lines.append(_forecast_line(comparison))
    return lines


def page_payload(
    settings: Settings, client: Elasticsearch, request: ReviewRequest
) -> dict[str, Any]:
    """Everything the page draws for ``request`` (see the module docstring). Raises
    ``SearchUnavailableError`` when Elasticsearch does not answer."""
    from rtcrypto.forecast.publish import resolve_forecast_dir

    forecast_dir = resolve_forecast_dir(settings.forecast_dir)
    offset_ms = request.span.clock.forecast_offset_ms
    data = review_data(
        client,
        start_ms=request.start_ms,
        end_ms=request.end_ms,
        prefix=settings.search_index_prefix,
        forecast_dir=forecast_dir,
        mode=request.mode,
        symbol=request.symbol,
        forecast_offset_ms=offset_ms,
        clock=request.span.description,
        forecast_loader=cached_current_forecast,
    )
    return {
        "range": {
            "start_ms": request.start_ms,
            "end_ms": request.end_ms,
            "now_ms": request.span.clock.now_ms,
            "live": request.live,
            "clock": request.span.description,
            "forecast_offset_ms": offset_ms,
        },
        "symbol": request.symbol,
        "symbols": known_symbols(settings),
        "mode": request.mode,
        "summary": data.summary.as_dict(),
        "pnl": [[p.ts_ms, float(p.cumulative_pnl_usd)] for p in data.pnl],
        "buys": _markers(data.buys),
        "sells": _markers(data.sells),
        "prices": _points(data.prices),
        "forecasts": forecast_lines(data, forecast_dir, offset_ms=offset_ms),
        "ratios": _points(data.ratios),
        "ratio_band": [float(data.ratio_band[0]), float(data.ratio_band[1])],
        "imbalance": _points(data.imbalance),
        "equity": [[p.ts_ms, p.equity_usd] for p in data.equity if p.equity_usd is not None],
        "orders": order_rows(data.rows.orders),
        "restarts": recent_restarts(client, settings),
        "health": current_health(settings),
        "forecast": current_forecast(settings),
    }
