"""The book's strategy rules (DESIGN.md, parity mode), one case per rule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rtcrypto.config import Settings
from rtcrypto.trading.strategy import (
    Balances,
    OrderIntent,
    PriceReference,
    Side,
    StrategyParams,
    TimeInForce,
    decide_order,
    liquidity_ok,
)

GATED = StrategyParams()
UNGATED = StrategyParams(liquidity_gate=False)
FLAT = Balances(usd=Decimal("1000"), btc=Decimal("0"))
IN = Balances(usd=Decimal("100"), btc=Decimal("0.015"))


def buy(quote: str) -> OrderIntent:
    return OrderIntent(
        side=Side.buy,
        limit_reference=PriceReference.ask,
        time_in_force=TimeInForce.immediate_or_cancel,
        quote_amount=Decimal(quote),
        reason="forecast buy: open a position",
    )


def sell(quantity: str) -> OrderIntent:
    return OrderIntent(
        side=Side.sell,
        limit_reference=PriceReference.bid,
        time_in_force=TimeInForce.immediate_or_cancel,
        base_quantity=Decimal(quantity),
        reason="forecast sell: close the position",
    )


@pytest.mark.parametrize(
    ("side", "balances", "ratio", "params", "expected"),
    [
        # sell: all of the BTC, IOC at the bid, whatever the liquidity
        (Side.sell, IN, None, GATED, sell("0.015")),
        (Side.sell, IN, Decimal("50"), GATED, sell("0.015")),
        (Side.sell, FLAT, Decimal("1"), GATED, None),  # nothing to sell
        # buy: trade_pct of the USD, IOC at the ask, only when flat and the ratio is inside
        (Side.buy, FLAT, Decimal("1"), GATED, buy("900.0")),
        (Side.buy, FLAT, 1.5, GATED, buy("900.0")),  # a float ratio from JSON
        (Side.buy, FLAT, Decimal("0.1000001"), GATED, buy("900.0")),
        (Side.buy, FLAT, Decimal("1.9999"), GATED, buy("900.0")),
        (Side.buy, FLAT, Decimal("0.1"), GATED, None),  # the bounds are exclusive
        (Side.buy, FLAT, Decimal("2"), GATED, None),
        (Side.buy, FLAT, Decimal("0.05"), GATED, None),
        (Side.buy, FLAT, Decimal("3"), GATED, None),
        (Side.buy, FLAT, None, GATED, None),  # no liquidity reading yet: stay out
        (Side.buy, FLAT, float("nan"), GATED, None),
        (Side.buy, IN, Decimal("1"), GATED, None),  # already in
        (Side.buy, Balances(Decimal("0"), Decimal("0")), Decimal("1"), GATED, None),  # no USD
        # the gate switched off (backtests): the ratio is ignored
        (Side.buy, FLAT, None, UNGATED, buy("900.0")),
        (Side.buy, FLAT, Decimal("5"), UNGATED, buy("900.0")),
        (Side.buy, IN, None, UNGATED, None),
        # no forecast for this minute
        (None, FLAT, Decimal("1"), GATED, None),
        (None, IN, Decimal("1"), GATED, None),
    ],
)
def test_decide_order(
    side: Side | None,
    balances: Balances,
    ratio: Decimal | float | None,
    params: StrategyParams,
    expected: OrderIntent | None,
) -> None:
    assert decide_order(side, balances, ratio, params) == expected


@pytest.mark.parametrize(
    ("trade_pct", "quote"), [("0.9", "900.0"), ("1", "1000"), ("0.25", "250.00")]
)
def test_buy_spends_trade_pct_of_the_usd_balance(trade_pct: str, quote: str) -> None:
    params = StrategyParams(trade_pct=Decimal(trade_pct))
    intent = decide_order(Side.buy, FLAT, Decimal("1"), params)
    assert intent is not None and intent.quote_amount == Decimal(quote)
    assert intent.base_quantity is None


def test_custom_ratio_bounds() -> None:
    params = StrategyParams(ratio_low=Decimal("0.5"), ratio_high=Decimal("1.5"))
    assert liquidity_ok(Decimal("1"), params)
    assert not liquidity_ok(Decimal("0.4"), params)
    assert not liquidity_ok(Decimal("1.5"), params)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"trade_pct": Decimal("0")},
        {"trade_pct": Decimal("1.01")},
        {"trade_pct": Decimal("-0.5")},
        {"ratio_low": Decimal("2"), "ratio_high": Decimal("2")},
        {"ratio_low": Decimal("-1")},
    ],
)
def test_invalid_params_are_refused(kwargs: dict[str, Decimal]) -> None:
    with pytest.raises(ValueError):
        StrategyParams(**kwargs)


def test_negative_balances_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Balances(usd=Decimal("-1"), btc=Decimal("0"))


def test_params_from_settings() -> None:
    settings = Settings(
        trade_pct=Decimal("0.5"),
        liquidity_ratio_low=Decimal("0.2"),
        liquidity_ratio_high=Decimal("3"),
    )
    params = StrategyParams.from_settings(settings, liquidity_gate=False)
    assert params == StrategyParams(
        trade_pct=Decimal("0.5"),
        ratio_low=Decimal("0.2"),
        ratio_high=Decimal("3"),
        liquidity_gate=False,
    )


def test_the_book_defaults() -> None:
    assert StrategyParams() == StrategyParams.from_settings(Settings())
    assert (GATED.trade_pct, GATED.ratio_low, GATED.ratio_high, GATED.liquidity_gate) == (
        Decimal("0.9"),
        Decimal("0.1"),
        Decimal("2"),
        True,
    )
