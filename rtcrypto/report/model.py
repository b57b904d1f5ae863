"""The trade review's values: its rows, series points, summary and result, its error, and the
formatting and time helpers they use (USD rounded to the cent, exact Decimal text, UTC minutes,
``--since`` / ``--until`` bounds). Pure: no I/O. Times are epoch milliseconds (UTC), money is
USD, quantities BTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

MINUTE_MS = 60_000
CENT = Decimal("0.01")


class ReportError(ValueError):
    """The report cannot be built from these arguments or documents; the message says why."""


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
