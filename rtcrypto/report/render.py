"""The trade review's output formats: the PNG chart (four stacked panels on one UTC time axis,
drawn on matplotlib's Agg canvas) and the self-contained HTML page (summary, the chart as
base64, round trips, orders). Pure apart from writing the PNG to the path it is given.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rtcrypto.report.model import (
    EquityPoint,
    ForecastComparison,
    PnlPoint,
    PricePoint,
    ReportRows,
    ReportSummary,
    TradeMarker,
    decimal_of,
    exact_text,
    iso_minute,
    usd_text,
)
from rtcrypto.report.series import score_key


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

    _plot_pnl(pnl_axes, pnl, left, right)
    _plot_prices(price_axes, prices, forecast, buys, sells)
    _plot_ratios(ratio_axes, ratios, ratio_band)
    _plot_equity(equity_axes, equity)
    _time_axis(equity_axes, left, right)
    for axes in (pnl_axes, price_axes, ratio_axes, equity_axes):
        axes.grid(True, alpha=0.3)
    figure.savefig(path, format="png")


def _plot_pnl(axes: Any, pnl: Sequence[PnlPoint], left: datetime, right: datetime) -> None:
    """Cumulative realised P&L as a step line from 0 at ``left`` to the last total at ``right``."""
    axes.set_title("Cumulative realised P&L after fees (USD, closed round trips)", loc="left")
    axes.axhline(0, color="0.6", linewidth=0.8)
    if pnl:
        times = [left] + [_moment(point.ts_ms) for point in pnl] + [right]
        values = [0.0] + [float(point.cumulative_pnl_usd) for point in pnl]
        values.append(values[-1])
        axes.plot(times, values, drawstyle="steps-post", color="tab:blue")
        axes.plot(times[1:-1], values[1:-1], "o", color="tab:blue", markersize=4)
    else:
        _empty_panel(axes, "no round trips in this range")


def _plot_prices(
    axes: Any,
    prices: Sequence[PricePoint],
    forecast: ForecastComparison,
    buys: Sequence[TradeMarker],
    sells: Sequence[TradeMarker],
) -> None:
    """Mid price per minute, the forecast price (dashed) and the fills as buy/sell markers."""
    axes.set_title("Price (USD/BTC): mid, fills, forecast exp(yhat)", loc="left")
    if prices:
        axes.plot(
            [_moment(point.minute_ms) for point in prices],
            [point.value for point in prices],
            color="0.35",
            linewidth=1,
            label="mid price",
        )
    if forecast.points:
        axes.plot(
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
            axes.plot(
                [_moment(marker.ts_ms) for marker in markers],
                [float(marker.price) for marker in markers],
                style,
                color=colour,
                markersize=8,
                linestyle="none",
                label=label,
            )
    if prices or forecast.points or buys or sells:
        axes.legend(loc="best", fontsize="small")
    else:
        _empty_panel(axes, "no prices recorded in this range")


def _plot_ratios(axes: Any, ratios: Sequence[PricePoint], ratio_band: tuple[float, float]) -> None:
    """The liquidity ratio per minute over the shaded buy band ``(low, high)``."""
    low, high = ratio_band
    axes.set_title(f"Liquidity ratio ask/bid per minute (buy band {low:g} .. {high:g})", loc="left")
    axes.axhspan(low, high, color="tab:green", alpha=0.1, label="buy band")
    if ratios:
        axes.plot(
            [_moment(point.minute_ms) for point in ratios],
            [point.value for point in ratios],
            color="tab:orange",
            linewidth=1,
            marker=".",
            markersize=3,
        )
    else:
        _empty_panel(axes, "no liquidity records in this range")


def _plot_equity(axes: Any, equity: Sequence[EquityPoint]) -> None:
    """Equity in USD where a price values the BTC, else the USD balance alone."""
    axes.set_title("Equity (USD + BTC at the mid price, no exit fee)", loc="left")
    valued = [point for point in equity if point.equity_usd is not None]
    if valued:
        axes.plot(
            [_moment(point.ts_ms) for point in valued],
            [point.equity_usd for point in valued],
            drawstyle="steps-post",
            color="tab:cyan",
        )
    elif equity:
        axes.plot(
            [_moment(point.ts_ms) for point in equity],
            [float(point.usd) for point in equity],
            drawstyle="steps-post",
            color="tab:cyan",
            label="USD balance (no price to value BTC)",
        )
        axes.legend(loc="best", fontsize="small")
    else:
        _empty_panel(axes, "no balances recorded in this range")


def _time_axis(axes: Any, left: datetime, right: datetime) -> None:
    """The shared UTC time axis (on the bottom panel): concise dates from ``left`` to ``right``."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
    axes.set_xlim(left, right)
    axes.set_xlabel("time (UTC)")


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
    headline = html.escape(summary.verdict())
    headline_class = "empty" if summary.empty else ""
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
{_mode_warning(summary)}
<h2>Summary</h2>
<table class="summary">
{_summary_table(summary)}
</table>
<h2>Charts</h2>
<img alt="Cumulative P&amp;L, price with trades and forecast, liquidity ratio, equity" src="data:image/png;base64,{encoded}">
<h2>Round trips</h2>
{_table(("entry (UTC)", "exit (UTC)", "entry price", "exit price", "BTC", "entry fee USD", "exit fee USD", "P&L USD", "exit order"), _round_trip_rows(rows.scores), "No round trips in this range.")}
<h2>Orders</h2>
{_table(("time (UTC)", "client order id", "side", "state", "limit price", "BTC", "executed BTC", "average price", "fee USD", "mode", "forecast"), _order_rows(rows.orders), "No orders in this range.")}
</body>
</html>
"""


def _summary_table(summary: ReportSummary) -> str:
    """The summary's ``<tr>`` rows (label, value; values already HTML)."""
    hit = "n/a" if summary.hit_rate is None else f"{summary.hit_rate:.1%}"
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
        ("Forecast against realised price", html.escape(summary.forecast.note)),
        ("Clock", html.escape(summary.clock or "as given (absolute times)")),
    ]
    return "\n".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in summary_rows)


def _round_trip_rows(scores: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """One row per round trip, in the ledger's order: times, exact prices, size, fees, P&L."""
    return [
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
        for row in sorted(scores, key=score_key)
    ]


def _order_rows(orders: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """One row per order document, oldest first (ties by client order id)."""
    return [
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
            orders, key=lambda row: (int(row["ts_ms"]), str(row.get("client_order_id")))
        )
    ]


def _mode_warning(summary: ReportSummary) -> str:
    """A note when the range mixes trading modes (their figures are added up); else empty."""
    if len(summary.modes_seen) <= 1:
        return ""
    return (
        f'<p class="note">This range holds several trading modes '
        f"({html.escape(', '.join(summary.modes_seen))}); their figures are added up here. "
        "Build one report per mode with <code>rtc report --mode</code>.</p>"
    )
