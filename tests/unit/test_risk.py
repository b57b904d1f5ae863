"""The pure risk gate: kill switch, order rate, daily loss, position and notional limits."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rtcrypto.trading.order_types import OrderRequest
from rtcrypto.trading.risk import RiskLimits, RiskState, check_order, orders_in_last_minute
from rtcrypto.trading.strategy import Side

LIMITS = RiskLimits(
    max_position_btc=Decimal("1"),
    max_order_notional_usd=Decimal("25000"),
    max_daily_loss_usd=Decimal("500"),
    max_orders_per_minute=2,
)
NOW = 1_700_000_000_000


def order(side: Side, quantity: str, price: str = "20000") -> OrderRequest:
    return OrderRequest("rtc-v1-0-" + side.value, "btcusd", side, Decimal(quantity), Decimal(price))


def state(**overrides: object) -> RiskState:
    values: dict[str, object] = {
        "position_btc": Decimal(0),
        "realised_pnl_today_usd": Decimal(0),
        "recent_order_times_ms": (),
        "kill_switch": False,
    }
    values.update(overrides)
    return RiskState(**values)  # type: ignore[arg-type]


def test_an_order_within_limits_passes_unchanged() -> None:
    wanted = order(Side.buy, "0.5")
    verdict = check_order(wanted, state(), LIMITS, NOW)
    assert verdict.allowed and verdict.order == wanted and verdict.reason == "within limits"


def test_kill_switch_refuses_everything_even_sells() -> None:
    for side in Side:
        verdict = check_order(order(side, "0.1"), state(kill_switch=True), LIMITS, NOW)
        assert verdict.order is None and "kill switch" in verdict.reason


def test_order_rate_counts_only_the_last_sixty_seconds() -> None:
    assert orders_in_last_minute((NOW - 60_000, NOW - 59_999, NOW), NOW) == 2
    busy = state(recent_order_times_ms=(NOW - 10_000, NOW - 5_000))
    assert check_order(order(Side.sell, "0.1"), busy, LIMITS, NOW).order is None
    calm = state(recent_order_times_ms=(NOW - 61_000, NOW - 5_000))
    assert check_order(order(Side.sell, "0.1"), calm, LIMITS, NOW).allowed


def test_daily_loss_stops_buys_but_lets_sells_close_the_position() -> None:
    losing = state(realised_pnl_today_usd=Decimal("-500"), position_btc=Decimal("0.2"))
    buy = check_order(order(Side.buy, "0.1"), losing, LIMITS, NOW)
    assert buy.order is None and "daily loss" in buy.reason
    sell = check_order(order(Side.sell, "0.2"), losing, LIMITS, NOW)
    assert sell.allowed
    almost = state(realised_pnl_today_usd=Decimal("-499.99"))
    assert check_order(order(Side.buy, "0.1"), almost, LIMITS, NOW).allowed


def test_buy_is_cut_to_the_position_limit() -> None:
    verdict = check_order(order(Side.buy, "0.9"), state(position_btc=Decimal("0.3")), LIMITS, NOW)
    assert verdict.order is not None and verdict.order.quantity == Decimal("0.7")
    assert "position limit" in verdict.reason


def test_notional_limit_cuts_buys_and_sells() -> None:
    verdict = check_order(order(Side.sell, "2", price="50000"), state(), LIMITS, NOW)
    assert verdict.order is not None and verdict.order.quantity == Decimal("0.5")
    assert "notional limit" in verdict.reason


def test_an_order_cut_to_nothing_is_refused() -> None:
    verdict = check_order(order(Side.buy, "0.1"), state(position_btc=Decimal("1")), LIMITS, NOW)
    assert verdict.order is None and "cut to nothing" in verdict.reason


@pytest.mark.parametrize(
    "field,value",
    [("max_position_btc", Decimal(0)), ("max_orders_per_minute", 0), ("max_daily_loss_usd", -1)],
)
def test_bad_limits_are_a_clear_error(field: str, value: object) -> None:
    values = {
        "max_position_btc": Decimal("1"),
        "max_order_notional_usd": Decimal("1"),
        "max_daily_loss_usd": Decimal("1"),
        "max_orders_per_minute": 1,
    }
    values[field] = value
    with pytest.raises(ValueError, match=field):
        RiskLimits(**values)  # type: ignore[arg-type]
