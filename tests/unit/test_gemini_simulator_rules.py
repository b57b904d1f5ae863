"""The simulator's Gemini rules as pure functions: symbol details and the order checks they imply,
request parameters of the history endpoints, the v2 ticker's hourly prices, fee basis points, and
the flags/settings that configure fees and heartbeat sessions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtcrypto.config import Settings
from rtcrypto.market.captures import TradePrint
from rtcrypto.simulator.flags import SimulateFlags, simulator_options
from rtcrypto.simulator.sandbox_guards import RateWindow
from rtcrypto.simulator.sandbox_public import hourly_prices
from rtcrypto.simulator.sandbox_trades import MAX_LIMIT, fee_bps, limit_of, since_ms
from rtcrypto.simulator.symbol_details import (
    SYMBOL_DETAILS,
    price_problem,
    quantity_problem,
    symbol_details,
)

BTCUSD = SYMBOL_DETAILS["BTCUSD"]
HOUR_MS = 3_600_000


def test_btcusd_carries_gemini_s_published_values() -> None:
    body = BTCUSD.to_json()
    assert (body["tick_size"], body["quote_increment"], body["min_order_size"]) == (
        1e-8,
        0.01,
        "0.00001",
    )
    assert (body["base_currency"], body["quote_currency"], body["status"]) == ("BTC", "USD", "open")
    # a replayed symbol the table does not list still has details (BTCUSD's increments)
    assert symbol_details("btcgbp").to_json()["quote_currency"] == "GBP"


@given(steps=st.integers(min_value=1_000, max_value=10**12))
def test_whole_ticks_at_or_above_the_minimum_are_valid_quantities(steps: int) -> None:
    assert quantity_problem(BTCUSD, BTCUSD.tick_size * steps) is None


@given(
    steps=st.integers(min_value=1_000, max_value=10**12),
    fraction=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("0.99"), places=2),
)
def test_a_quantity_off_the_tick_is_refused(steps: int, fraction: Decimal) -> None:
    problem = quantity_problem(BTCUSD, BTCUSD.tick_size * (steps + fraction))
    assert problem is not None and "tick_size" in problem


@given(steps=st.integers(min_value=1, max_value=999))
def test_a_quantity_below_the_minimum_is_refused(steps: int) -> None:
    problem = quantity_problem(BTCUSD, BTCUSD.tick_size * steps)
    assert problem is not None and "minimum" in problem


@given(cents=st.integers(min_value=1, max_value=10**10), extra=st.integers(1, 9))
def test_prices_must_sit_on_the_cent_grid(cents: int, extra: int) -> None:
    on_grid = Decimal(cents) / 100
    assert price_problem(BTCUSD, on_grid) is None
    off_grid = on_grid + Decimal(extra) / 1000
    assert "quote_increment" in (price_problem(BTCUSD, off_grid) or "")


@given(seconds=st.integers(min_value=0, max_value=99_999_999_999))
def test_a_timestamp_in_seconds_becomes_milliseconds(seconds: int) -> None:
    assert since_ms(seconds) == seconds * 1000
    assert since_ms(str(seconds)) == seconds * 1000


@given(millis=st.integers(min_value=100_000_000_000, max_value=10**15))
def test_a_timestamp_in_milliseconds_is_kept(millis: int) -> None:
    assert since_ms(millis) == millis


@given(value=st.one_of(st.text().filter(lambda t: not t.isdigit()), st.floats(), st.booleans()))
def test_a_timestamp_that_is_not_a_whole_number_is_refused_by_name(value: object) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        since_ms(value)


@given(value=st.one_of(st.integers(), st.text()))
def test_limits_are_1_to_500_or_refused_by_name(value: object) -> None:
    try:
        limit = limit_of(value, "limit_trades")
    except ValueError as error:
        assert "limit_trades" in str(error)
    else:
        assert 1 <= limit <= MAX_LIMIT and limit == int(str(value))
    for unicode_digit in ("\u00b2", "\u0663"):  # str.isdigit() says yes, int() would fail
        with pytest.raises(ValueError, match="limit_trades"):
            limit_of(unicode_digit, "limit_trades")
    assert limit_of(None, "limit_trades") == 50


def _trade(trade_id: int, price: int) -> TradePrint:
    return TradePrint("BTCUSD", 0, trade_id, trade_id, str(price), "0.1", "buy")


@given(
    offsets_ms=st.lists(st.integers(min_value=0, max_value=30 * HOUR_MS), max_size=60),
    fallback=st.integers(min_value=1, max_value=100_000),
)
def test_hourly_prices_are_24_prices_of_the_trades(offsets_ms: list[int], fallback: int) -> None:
    now_ms = 10**12
    trades = [
        (now_ms - offset, _trade(index, 50_000 + index))
        for index, offset in enumerate(sorted(offsets_ms, reverse=True))
    ]  # oldest first
    changes = hourly_prices(trades, now_ms, Decimal(fallback))
    assert len(changes) == 24
    allowed = {trade.price for _, trade in trades} | {str(fallback)}
    assert set(changes) <= allowed
    if trades:
        assert changes[0] == trades[-1][1].price  # the newest hour ends with the last trade


@given(pct=st.decimals(min_value=0, max_value=10, places=3))
def test_fee_bps_is_the_rate_times_10000(pct: Decimal) -> None:
    bps = fee_bps(pct / 100)
    assert Decimal(str(bps)) == pct * 100
    assert isinstance(bps, int) == (pct * 100 == (pct * 100).to_integral_value())


def test_the_sandbox_fee_defaults_to_the_ledger_fee_and_heartbeat_sessions_are_a_flag() -> None:
    settings = Settings(taker_fee_pct=Decimal("0.4"), simulator_heartbeat_timeout_s=12.5)
    options = simulator_options(SimulateFlags(sandbox_account=("k:s",)), settings)
    assert options.sandbox_fee_pct == Decimal("0.4")  # RTC_TAKER_FEE_PCT
    assert options.sandbox_heartbeat_timeout_s == 12.5
    assert [account.requires_heartbeat for account in options.sandbox_accounts] == [False]
    flags = SimulateFlags(
        sandbox_account=("k:s",), sandbox_fee_pct="0.1", sandbox_require_heartbeat=True
    )
    options = simulator_options(flags, settings)
    assert options.sandbox_fee_pct == Decimal("0.1")
    assert [account.requires_heartbeat for account in options.sandbox_accounts] == [True]


@given(
    rate=st.integers(min_value=1, max_value=20),
    gaps_s=st.lists(st.floats(min_value=0, max_value=30, allow_nan=False), max_size=80),
)
def test_the_rate_window_allows_at_most_rate_requests_in_any_minute(
    rate: int, gaps_s: list[float]
) -> None:
    now = [0.0]
    window = RateWindow(rate, wall=lambda: now[0])
    allowed: list[float] = []
    for gap in gaps_s:
        now[0] += gap
        recent = [t for t in allowed if t > now[0] - 60]
        verdict = window.allow("key")
        assert verdict == (len(recent) < rate)  # refused exactly when the minute is full
        if verdict:
            allowed.append(now[0])
    assert RateWindow(0).allow("key")  # 0: no limit
