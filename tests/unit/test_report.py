"""The trade review report's pure parts: series from documents, summary, HTML and chart."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from rtcrypto.report.model import (
    MINUTE_MS,
    ForecastComparison,
    PricePoint,
    ReportError,
    ReportRows,
    decimal_of,
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
from tests.trade_documents import TRADES, trade_price, trade_scenario

START_MS = 1_795_000_000_000 - 1_795_000_000_000 % MINUTE_MS  # a minute boundary in 2026
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def rows_of(kind: str, scenario: Any) -> list[dict[str, Any]]:
    return [action.source for action in scenario.actions if action.index == f"rtc-{kind}"]


def scenario_rows() -> tuple[Any, ReportRows]:
    scenario = trade_scenario(START_MS)
    rows = ReportRows(
        **{
            kind: rows_of(kind, scenario)
            for kind in ("scores", "fills", "orders", "balances", "ticker", "liquidity")
        }
    )
    return scenario, rows


NO_FORECAST = ForecastComparison(None, [], "no forecast loaded")


# --- cumulative P&L ------------------------------------------------------------------------------


def test_cumulative_pnl_is_the_decimal_sum_of_the_ledgers_round_trips() -> None:
    scenario, rows = scenario_rows()
    trips = scenario.ledger.round_trips
    assert len(trips) == 2 and trips[0].pnl_usd > 0 > trips[1].pnl_usd  # one win, one loss

    points = cumulative_pnl(rows.scores)

    assert [point.cumulative_pnl_usd for point in points] == [
        trips[0].pnl_usd,
        trips[0].pnl_usd + trips[1].pnl_usd,
    ]
    assert points[-1].cumulative_pnl_usd == scenario.ledger.realised_pnl_usd  # exact, not float
    assert [point.ts_ms for point in points] == [trip.exit.ts_event_ms for trip in trips]


def test_cumulative_pnl_sums_in_exit_order_whatever_the_input_order() -> None:
    _, rows = scenario_rows()
    shuffled = list(reversed(rows.scores))
    assert cumulative_pnl(shuffled) == cumulative_pnl(rows.scores)


def test_cumulative_pnl_uses_the_exact_string_not_the_float() -> None:
    rows = [
        {"exit_ts_ms": 1, "exit_client_order_id": "a", "pnl_usd": 0.1, "pnl_usd_exact": "0.1"},
        {"exit_ts_ms": 2, "exit_client_order_id": "b", "pnl_usd": 0.2, "pnl_usd_exact": "0.2"},
    ]
    assert cumulative_pnl(rows)[-1].cumulative_pnl_usd == Decimal(
        "0.3"
    )  # floats: 0.30000000000000004


def test_decimal_of_falls_back_to_the_number_only_without_the_exact_string() -> None:
    assert decimal_of({"fee_usd": 1.5, "fee_usd_exact": "1.4999999"}, "fee_usd") == Decimal(
        "1.4999999"
    )
    assert decimal_of({"fee_usd": 1.5}, "fee_usd") == Decimal("1.5")
    assert decimal_of({}, "fee_usd") is None


def test_a_score_without_pnl_is_a_report_error_naming_it() -> None:
    with pytest.raises(ReportError, match="exit-7"):
        cumulative_pnl([{"exit_ts_ms": 1, "exit_client_order_id": "exit-7"}])


# --- markers -------------------------------------------------------------------------------------


def test_markers_are_the_fills_at_their_price_and_time() -> None:
    scenario, rows = scenario_rows()
    buys, sells = trade_markers(list(reversed(rows.fills)))

    ledger_buys = [fill for fill in scenario.ledger.fills if fill.side == "buy"]
    ledger_sells = [fill for fill in scenario.ledger.fills if fill.side == "sell"]
    assert [(m.ts_ms, m.price, m.base_quantity) for m in buys] == [
        (fill.ts_event_ms, fill.price, fill.base_quantity) for fill in ledger_buys
    ]
    assert [(m.ts_ms, m.price) for m in sells] == [(f.ts_event_ms, f.price) for f in ledger_sells]
    assert [m.price for m in buys] == [trade_price(t, side) for t, side in TRADES if side == "buy"]
    assert [m.price for m in sells] == [
        trade_price(t, side) for t, side in TRADES if side == "sell"
    ]
    assert {m.side for m in buys} == {"buy"} and {m.side for m in sells} == {"sell"}


def test_a_fill_with_an_unknown_side_is_refused() -> None:
    with pytest.raises(ReportError, match="side"):
        trade_markers(
            [{"ts_event_ms": 1, "side": "hold", "price_exact": "1", "base_quantity_exact": "1"}]
        )


# --- empty input ---------------------------------------------------------------------------------


def test_empty_input_gives_empty_series_and_a_no_trades_summary(tmp_path: Path) -> None:
    rows = ReportRows()
    assert cumulative_pnl([]) == []
    assert trade_markers([]) == ([], [])
    assert liquidity_ratio_per_minute([]) == []
    assert realised_prices([], []) == []
    assert equity_series([], [], []) == []

    summary = summarize(
        rows,
        start_ms=START_MS,
        end_ms=START_MS + 3_600_000,
        mode=None,
        symbol=None,
        forecast=NO_FORECAST,
    )
    assert summary.empty
    assert summary.trades == summary.round_trips == 0
    assert summary.hit_rate is None
    assert summary.realised_pnl_usd == summary.fees_paid_usd == Decimal(0)
    assert summary.verdict() == "No trades in this range."

    png_path = tmp_path / "empty.png"
    render_chart(
        png_path,
        start_ms=START_MS,
        end_ms=START_MS + 3_600_000,
        pnl=[],
        buys=[],
        sells=[],
        prices=[],
        forecast=NO_FORECAST,
        ratios=[],
        ratio_band=(0.1, 2.0),
        equity=[],
        title="empty",
    )
    png = png_path.read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 1_000

    page = render_html(summary, rows, png, prefix="rtc", forecast_dir="/nowhere")
    assert "No trades in this range." in page
    assert "No orders in this range." in page
    assert "No round trips in this range." in page
    assert "<tr><th>Trades (fills)</th><td>0</td></tr>" in page


# --- liquidity, prices, forecast, equity ---------------------------------------------------------


def test_liquidity_ratio_per_minute_keeps_one_value_per_window_and_skips_null_ratios() -> None:
    rows = [
        {"window_start_ms": START_MS + MINUTE_MS, "liquidity_ratio": 1.5},
        {"window_start_ms": START_MS, "liquidity_ratio": 0.7},
        {"window_start_ms": START_MS + 2 * MINUTE_MS, "liquidity_ratio": None},  # no bids
        {"window_start_ms": START_MS + MINUTE_MS, "liquidity_ratio": 1.5},  # a replayed record
    ]
    assert liquidity_ratio_per_minute(rows) == [
        PricePoint(START_MS, 0.7),
        PricePoint(START_MS + MINUTE_MS, 1.5),
    ]


def test_realised_price_prefers_the_minutes_last_ticker_over_the_liquidity_mid() -> None:
    ticker = [
        {"ts_ms": START_MS + 50_000, "mid_price": 101.0},
        {"ts_ms": START_MS + 10_000, "mid_price": 100.0},
        {"ts_ms": START_MS + 20_000, "mid_price": None},  # one side of the book empty
    ]
    liquidity = [
        {"window_start_ms": START_MS, "mid_price": 99.0},
        {"window_start_ms": START_MS + MINUTE_MS, "mid_price": 102.0},
    ]
    assert realised_prices(ticker, liquidity) == [
        PricePoint(START_MS, 101.0),
        PricePoint(START_MS + MINUTE_MS, 102.0),
    ]


def forecast_frame(first_ms: int, log_prices: list[float], sides: list[str]) -> pd.DataFrame:
    ds = pd.date_range(
        pd.Timestamp(first_ms, unit="ms", tz="UTC"), periods=len(log_prices), freq="min"
    )
    return pd.DataFrame(
        {
            "ds": ds,
            "yhat": log_prices,
            "yhat_lower": [value - 0.01 for value in log_prices],
            "yhat_upper": [value + 0.01 for value in log_prices],
            "side": sides,
        }
    )


def test_forecast_is_exp_yhat_shifted_by_the_offset_and_limited_to_the_range() -> None:
    import math

    offset_ms = 10 * MINUTE_MS  # the feed's clock is 10 minutes ahead of the forecast's
    forecast_start = START_MS - offset_ms - 2 * MINUTE_MS  # two minutes before the range
    prices = [100.0, 100.0, 100.0, 110.0, 99.0, 105.0]  # realised from START_MS on
    frame = forecast_frame(
        forecast_start,
        [math.log(200.0)] * 2 + [math.log(p * 1.01) for p in prices],
        ["sell"] * 2 + ["buy", "buy", "buy", "sell", "sell", "buy"],
    )
    realised = [PricePoint(START_MS + i * MINUTE_MS, price) for i, price in enumerate(prices)]

    comparison = forecast_against_realised(
        frame,
        realised,
        start_ms=START_MS,
        end_ms=START_MS + 5 * MINUTE_MS,
        offset_ms=offset_ms,
        version="v1",
    )

    assert [point.minute_ms for point in comparison.points] == [
        START_MS + i * MINUTE_MS for i in range(5)
    ]
    assert comparison.points[0].forecast_price == pytest.approx(101.0)
    assert comparison.points[3].realised_price == 110.0
    assert comparison.minutes_compared == 5
    assert comparison.mean_abs_error_pct == pytest.approx(1.0)
    # next-minute moves: 0, 0 (skipped), +10 (buy: agreed), -11 (sell: agreed), +6 (sell: not)
    assert (comparison.side_minutes, comparison.side_agreed) == (3, 2)
    assert "5 minute(s) compared" in comparison.note


def test_a_forecast_outside_the_range_says_so() -> None:
    frame = forecast_frame(START_MS - 86_400_000, [4.6] * 10, ["buy"] * 10)
    comparison = forecast_against_realised(
        frame, [], start_ms=START_MS, end_ms=START_MS + MINUTE_MS, version="v0"
    )
    assert comparison.points == []
    assert "does not cover this range" in comparison.note


def test_equity_is_the_balances_marked_at_the_latest_mid_price() -> None:
    balances = [
        {"ts_ms": START_MS + 1_000, "usd_exact": "100", "btc_exact": "2"},
        {"ts_ms": START_MS + 2 * MINUTE_MS + 1_000, "usd_exact": "300", "btc_exact": "0"},
    ]
    prices = [PricePoint(START_MS + i * MINUTE_MS, 50.0 + i) for i in range(4)]

    points = equity_series(balances, [], prices)

    assert [(p.ts_ms, p.equity_usd) for p in points] == [
        (START_MS + 1_000, 200.0),  # 100 + 2 x 50
        (START_MS + MINUTE_MS, 202.0),  # 100 + 2 x 51
        (START_MS + 2 * MINUTE_MS, 204.0),  # still the first balances, price 52
        (START_MS + 2 * MINUTE_MS + 1_000, 300.0),
        (START_MS + 3 * MINUTE_MS, 300.0),
    ]


def test_equity_falls_back_to_the_fills_balances() -> None:
    scenario, rows = scenario_rows()
    points = equity_series([], rows.fills, [])
    assert [(p.usd, p.btc) for p in points] == [
        (fill.balances_after.usd, fill.balances_after.btc) for fill in scenario.ledger.fills
    ]


# --- summary and HTML ----------------------------------------------------------------------------


def test_summary_matches_the_ledger(tmp_path: Path) -> None:
    scenario, rows = scenario_rows()
    ledger = scenario.ledger
    summary = summarize(
        rows,
        start_ms=scenario.start_ms,
        end_ms=scenario.end_ms,
        mode="paper",
        symbol="BTCUSD",
        forecast=NO_FORECAST,
    )
    assert summary.trades == len(ledger.fills) == 4
    assert (summary.buys, summary.sells, summary.orders) == (2, 2, 4)
    assert summary.round_trips == 2 and summary.hit_rate == 0.5
    assert summary.realised_pnl_usd == ledger.realised_pnl_usd
    assert summary.fees_paid_usd == ledger.fees_paid_usd
    assert summary.modes_seen == ("paper",)
    data = summary.as_dict()
    assert data["realised_pnl_usd"] == format(ledger.realised_pnl_usd, "f")

    page = render_html(summary, rows, PNG_SIGNATURE, prefix="rtc", forecast_dir="/nowhere")
    assert format(ledger.realised_pnl_usd, "f") in page
    assert format(ledger.fees_paid_usd, "f") in page
    assert "<tr><th>Trades (fills)</th><td>4</td></tr>" in page
    for action in scenario.actions:
        if action.index == "rtc-orders":
            assert action.id in page  # every order is in the orders table
    assert "profit" not in page.lower()  # states results; never claims a profit


def test_summary_flags_several_trading_modes() -> None:
    paper = trade_scenario(START_MS, mode="paper", order_prefix="p")
    live = trade_scenario(START_MS, mode="live", order_prefix="l")
    rows = ReportRows(
        scores=rows_of("scores", paper) + rows_of("scores", live),
        fills=rows_of("fills", paper) + rows_of("fills", live),
    )
    summary = summarize(
        rows,
        start_ms=START_MS,
        end_ms=START_MS + 3_600_000,
        mode=None,
        symbol=None,
        forecast=NO_FORECAST,
    )
    assert summary.modes_seen == ("live", "paper")
    assert any("--mode" in line for line in summary.lines())


# --- time bounds ---------------------------------------------------------------------------------


NOW_MS = int(datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW_MS - 86_400_000),
        ("90m", NOW_MS - 90 * MINUTE_MS),
        ("7d", NOW_MS - 7 * 86_400_000),
        ("now", NOW_MS),
        ("2026-11-27", int(datetime(2026, 11, 27, tzinfo=UTC).timestamp() * 1000)),
        ("2026-11-27T06:30", int(datetime(2026, 11, 27, 6, 30, tzinfo=UTC).timestamp() * 1000)),
        ("2026-11-27T06:30Z", int(datetime(2026, 11, 27, 6, 30, tzinfo=UTC).timestamp() * 1000)),
        (
            "2026-11-27T07:30+01:00",
            int(datetime(2026, 11, 27, 6, 30, tzinfo=UTC).timestamp() * 1000),
        ),
    ],
)
def test_parse_time_bound(text: str, expected: int) -> None:
    assert parse_time_bound(text, NOW_MS) == expected


def test_durations_scale_by_the_replay_speed_and_dates_do_not() -> None:
    assert parse_time_bound("1h", NOW_MS, 60) == NOW_MS - 60 * 3_600_000
    assert parse_time_bound("90s", NOW_MS, 0.5) == NOW_MS - 45_000
    assert parse_time_bound("2026-11-27", NOW_MS, 60) == parse_time_bound("2026-11-27", NOW_MS)
    assert parse_time_bound("now", NOW_MS, 60) == NOW_MS


def test_parse_time_bound_names_the_accepted_forms() -> None:
    with pytest.raises(ReportError, match="24h"):
        parse_time_bound("yesterday", NOW_MS)


def test_random_order_of_rows_gives_the_same_summary() -> None:
    _, rows = scenario_rows()
    shuffled = ReportRows(
        **{
            kind: random.Random(7).sample(getattr(rows, kind), len(getattr(rows, kind)))
            for kind in ("scores", "fills", "orders", "balances", "ticker", "liquidity")
        }
    )
    arguments: dict[str, Any] = {
        "start_ms": START_MS,
        "end_ms": START_MS + 3_600_000,
        "mode": None,
        "symbol": None,
        "forecast": NO_FORECAST,
    }
    assert summarize(shuffled, **arguments) == summarize(rows, **arguments)
