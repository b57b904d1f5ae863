"""The whole trade review: fetch a range's documents and the forecast, build the series, write
``report.png``, ``report.html`` and ``summary.json`` (each atomically) into a folder.

:func:`build_report` takes a range in epoch milliseconds (UTC); :func:`report_range` is what
``rtc report`` runs: it reads ``--since`` / ``--until`` on the review's clock
(:mod:`rtcrypto.report.clock`) and builds the report of that range. The report states what
happened in the range; it makes no claim about profit to come.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from rtcrypto.report.fetch import fetch_report_rows, load_forecast
from rtcrypto.report.model import (
    ForecastComparison,
    PricePoint,
    ReportError,
    ReportResult,
    ReportRows,
    default_out_dir,
    iso_minute,
    parse_time_bound,
)
from rtcrypto.report.render import render_chart, render_html
from rtcrypto.report.series import (
    cumulative_pnl,
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

    from rtcrypto.config import Settings

REPORT_HTML = "report.html"
REPORT_PNG = "report.png"
REPORT_JSON = "summary.json"


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

    _check_range_and_mode(start_ms, end_ms, mode)
    if ratio_band is None:
        ratio_band = _configured_ratio_band()
    rows = fetch_report_rows(
        client, start_ms=start_ms, end_ms=end_ms, prefix=prefix, mode=mode, symbol=symbol
    )
    prices = realised_prices(rows.ticker, rows.liquidity)
    forecast_dir = resolve_forecast_dir(forecast_dir)
    comparison = _compare_forecast(
        forecast_dir, prices, start_ms=start_ms, end_ms=end_ms, offset_ms=forecast_offset_ms
    )
    summary = summarize(
        rows, start_ms=start_ms, end_ms=end_ms, mode=mode, symbol=symbol, forecast=comparison
    )
    if clock:
        summary = dataclasses.replace(summary, clock=clock)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png_path = out_dir / REPORT_PNG
    html_path = out_dir / REPORT_HTML
    json_path = out_dir / REPORT_JSON
    png = _write_chart(
        out_dir,
        rows,
        prices,
        comparison,
        start_ms=start_ms,
        end_ms=end_ms,
        ratio_band=ratio_band,
        title=(
            f"{symbol or 'all symbols'}, mode {mode or 'all'}: "
            f"{iso_minute(start_ms)} .. {iso_minute(end_ms)} UTC"
        ),
    )
    page = render_html(summary, rows, png, prefix=prefix, forecast_dir=forecast_dir)
    _write_atomically(html_path, page.encode("utf-8"))
    _write_atomically(json_path, json.dumps(summary.as_dict(), indent=2).encode("utf-8"))
    return ReportResult(out_dir, html_path, png_path, json_path, summary)


def _check_range_and_mode(start_ms: int, end_ms: int, mode: str | None) -> None:
    """Raise :class:`ReportError` for an empty range or an unknown trading mode."""
    if end_ms <= start_ms:
        raise ReportError(
            f"the range is empty: end {iso_minute(end_ms)} is not after start {iso_minute(start_ms)}"
        )
    if mode is not None and mode not in TRADING_MODES:
        raise ReportError(f"mode must be one of {sorted(TRADING_MODES)} or none, got {mode!r}")


def _configured_ratio_band() -> tuple[Decimal, Decimal]:
    """The strategy's buy band of the liquidity ratio, from the settings."""
    from rtcrypto.config import get_settings

    settings = get_settings()
    return settings.liquidity_ratio_low, settings.liquidity_ratio_high


def _compare_forecast(
    forecast_dir: Path,
    prices: list[PricePoint],
    *,
    start_ms: int,
    end_ms: int,
    offset_ms: int,
) -> ForecastComparison:
    """The current forecast of ``forecast_dir`` against the realised prices, or why there is none."""
    frame, version, why_not = load_forecast(forecast_dir)
    if frame is None:
        return ForecastComparison(None, [], why_not or "no forecast")
    return forecast_against_realised(
        frame, prices, start_ms=start_ms, end_ms=end_ms, offset_ms=offset_ms, version=version
    )


def _write_chart(
    out_dir: Path,
    rows: ReportRows,
    prices: list[PricePoint],
    comparison: ForecastComparison,
    *,
    start_ms: int,
    end_ms: int,
    ratio_band: tuple[Decimal, Decimal],
    title: str,
) -> bytes:
    """Draw the chart into ``out_dir/report.png`` (staged, then renamed) and return its bytes."""
    buys, sells = trade_markers(rows.fills)
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
        title=title,
    )
    png = staging_png.read_bytes()
    os.replace(staging_png, out_dir / REPORT_PNG)
    return png


def report_range(
    settings: Settings,
    *,
    since: str,
    until: str,
    out_dir: Path | None = None,
    mode: str | None = None,
    symbol: str | None = None,
    durations: str | None = None,
) -> ReportResult:
    """``rtc report``: the report of ``since`` .. ``until`` counted on the review's clock.

    ``until`` is ``now`` (the feed clock's), a duration before it or an ISO time; a duration in
    ``since`` counts back from ``until``. ``durations`` ``wall`` (default
    ``settings.report_durations``) multiplies durations by the replay's speed. ``symbol`` None
    means ``settings.trader_symbol``; ``out_dir`` None means
    ``<home>/reports/<UTC date of the end>``. Raises :class:`ReportError` or ``SearchError``.
    """
    from rtcrypto.report.clock import review_clock
    from rtcrypto.search import search_client

    chosen_symbol = symbol or settings.trader_symbol
    in_wall_time = (durations or settings.report_durations) == "wall"
    client = search_client(settings)
    try:
        clock = review_clock(settings, client, symbol=chosen_symbol)
        scale = clock.speed if in_wall_time else 1.0
        end_ms = parse_time_bound(until, clock.now_ms, scale)
        # A duration in --since counts back from --until, so "--since 24h --until X" is a day.
        start_ms = parse_time_bound(since, end_ms, scale)
        return build_report(
            client,
            start_ms=start_ms,
            end_ms=end_ms,
            prefix=settings.search_index_prefix,
            forecast_dir=settings.forecast_dir,
            out_dir=out_dir or default_out_dir(settings.home, end_ms),
            mode=mode,
            symbol=chosen_symbol,
            forecast_offset_ms=clock.forecast_offset_ms,
            clock=clock.description
            + (f"; durations in wall time x{scale:g}" if in_wall_time else ""),
        )
    finally:
        client.close()
