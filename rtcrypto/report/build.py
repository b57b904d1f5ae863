"""The whole trade review: fetch a range's documents and the forecast, build the series, write
``report.png``, ``report.html`` and ``summary.json`` (each atomically) into a folder.

:func:`build_report` takes a range in epoch milliseconds (UTC); :func:`report_range` is what
``rtc report`` runs: it reads ``--since`` / ``--until`` on the review's clock
(:mod:`rtcrypto.report.clock`) and builds the report of that range. The report states what
happened in the range; it makes no claim about profit to come.
"""

from __future__ import annotations

import json
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from rtcrypto.report.data import ReviewData, review_data
from rtcrypto.report.model import (
    ReportResult,
    default_out_dir,
    iso_minute,
)
from rtcrypto.report.render import render_chart, render_html

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

    forecast_dir = resolve_forecast_dir(forecast_dir)
    data = review_data(
        client,
        start_ms=start_ms,
        end_ms=end_ms,
        prefix=prefix,
        forecast_dir=forecast_dir,
        mode=mode,
        symbol=symbol,
        forecast_offset_ms=forecast_offset_ms,
        ratio_band=ratio_band,
        clock=clock,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = _write_chart(
        out_dir,
        data,
        title=(
            f"{symbol or 'all symbols'}, mode {mode or 'all'}: "
            f"{iso_minute(start_ms)} .. {iso_minute(end_ms)} UTC"
        ),
    )
    page = render_html(data.summary, data.rows, png, prefix=prefix, forecast_dir=forecast_dir)
    html_path = out_dir / REPORT_HTML
    json_path = out_dir / REPORT_JSON
    _write_atomically(html_path, page.encode("utf-8"))
    _write_atomically(json_path, json.dumps(data.summary.as_dict(), indent=2).encode("utf-8"))
    return ReportResult(out_dir, html_path, out_dir / REPORT_PNG, json_path, data.summary)


def _write_chart(out_dir: Path, data: ReviewData, *, title: str) -> bytes:
    """Draw the chart into ``out_dir/report.png`` (staged, then renamed) and return its bytes."""
    staging_png = out_dir / f".{REPORT_PNG}.partial"
    render_chart(
        staging_png,
        start_ms=data.summary.start_ms,
        end_ms=data.summary.end_ms,
        pnl=data.pnl,
        buys=data.buys,
        sells=data.sells,
        prices=data.prices,
        forecast=data.forecast,
        ratios=data.ratios,
        ratio_band=(float(data.ratio_band[0]), float(data.ratio_band[1])),
        equity=data.equity,
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
    from rtcrypto.report.clock import resolve_range
    from rtcrypto.search import search_client

    chosen_symbol = symbol or settings.trader_symbol
    client = search_client(settings)
    try:
        span = resolve_range(
            settings, client, since=since, until=until, symbol=chosen_symbol, durations=durations
        )
        return build_report(
            client,
            start_ms=span.start_ms,
            end_ms=span.end_ms,
            prefix=settings.search_index_prefix,
            forecast_dir=settings.forecast_dir,
            out_dir=out_dir or default_out_dir(settings.home, span.end_ms),
            mode=mode,
            symbol=chosen_symbol,
            forecast_offset_ms=span.clock.forecast_offset_ms,
            clock=span.description,
        )
    finally:
        client.close()
