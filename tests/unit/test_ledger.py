"""The P&L ledger: fees charged on every fill, balances, round trips against the last buy."""

from __future__ import annotations

import decimal
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcrypto.config import Settings
from rtcrypto.trading.account import SimulatedAccount
from rtcrypto.trading.ledger import Ledger, LedgerError, equity_curve, score_round_trip
from rtcrypto.trading.order_types import TopOfBook
from rtcrypto.trading.orders import taker_fee_usd
from rtcrypto.trading.risk import RiskLimits
from rtcrypto.trading.strategy import (
    Balances,
    OrderIntent,
    PriceReference,
    Side,
    StrategyParams,
    TimeInForce,
    decide_order,
)

D = Decimal
T0 = 1_618_617_600_000


def buy_intent(quote: str) -> OrderIntent:
    return OrderIntent(
        Side.buy, PriceReference.ask, TimeInForce.immediate_or_cancel, quote_amount=D(quote)
    )


def sell_intent(quantity: str) -> OrderIntent:
    return OrderIntent(
        Side.sell, PriceReference.bid, TimeInForce.immediate_or_cancel, base_quantity=D(quantity)
    )


def test_buy_pays_the_taker_fee_on_top_within_the_quote_amount() -> None:
    ledger = Ledger(D("1000"))  # 0.25 % taker by default
    fill = ledger.execute(buy_intent("900"), D("20000"), ts_event_ms=1)
    assert fill is not None
    # 900 / (20000 * 1.0025) = 0.044887780... BTC, rounded down to the satoshi
    assert fill.base_quantity == D("0.04488778")
    assert fill.quote_amount == D("897.7556")
    assert fill.fee_usd == D("2.244389")
    assert fill.quote_amount + fill.fee_usd <= D("900")
    assert ledger.balances == Balances(usd=D("100.000011"), btc=D("0.04488778"))
    assert ledger.fees_paid_usd == D("2.244389")


def test_sell_pays_the_fee_out_of_the_proceeds_and_is_scored_against_the_last_buy() -> None:
    ledger = Ledger(D("1000"))
    entry = ledger.execute(buy_intent("900"), D("20000"), ts_event_ms=1)
    exit_fill = ledger.execute(sell_intent("0.04488778"), D("21000"), ts_event_ms=2)
    assert entry is not None and exit_fill is not None
    assert exit_fill.quote_amount == D("942.64338")
    assert exit_fill.fee_usd == D("2.35660845")
    assert ledger.balances.btc == 0
    assert ledger.balances.usd == D("100.000011") + D("942.64338") - D("2.35660845")
    (trip,) = ledger.round_trips
    assert trip.entry is entry and trip.exit is exit_fill
    # proceeds net of the sell fee minus the buy's all-in cost
    assert trip.pnl_usd == D("942.64338") - D("2.35660845") - (D("897.7556") + D("2.244389"))
    assert ledger.realised_pnl_usd == trip.pnl_usd
    assert ledger.balances.usd - D("1000") == trip.pnl_usd  # everything is realised
    assert trip.return_pct == trip.pnl_usd / (D("897.7556") + D("2.244389")) * 100


def test_a_flat_round_trip_loses_both_fees() -> None:
    ledger = Ledger(D("10000"), taker_fee_pct=D("0.25"))
    ledger.execute(buy_intent("10000"), D("100"), 1)
    ledger.execute(sell_intent("1000"), D("100"), 2)
    (trip,) = ledger.round_trips
    assert trip.pnl_usd < 0
    assert -trip.pnl_usd == ledger.fees_paid_usd
    assert trip.return_pct == pytest.approx(D("-0.4987531"), abs=D("1e-7"))


@pytest.mark.parametrize(("fee_pct", "fee_usd"), [("0", "0"), ("0.1", "0.9"), ("1", "9")])
def test_the_fee_is_configurable(fee_pct: str, fee_usd: str) -> None:
    ledger = Ledger(D("0"), D("1"), taker_fee_pct=D(fee_pct))
    fill = ledger.execute(sell_intent("1"), D("900"), 1)
    assert fill is not None and fill.fee_usd == D(fee_usd)
    assert ledger.balances.usd == D("900") - D(fee_usd)


def test_fee_from_settings_is_a_percent() -> None:
    settings = Settings(taker_fee_pct=D("0.4"))
    ledger = Ledger(D("0"), D("2"), taker_fee_pct=settings.taker_fee_pct)
    fill = ledger.execute(sell_intent("2"), D("100"), 1)
    assert fill is not None and fill.fee_usd == D("0.8")


def test_a_sell_without_a_previous_buy_is_not_scored() -> None:
    ledger = Ledger(D("0"), D("1"))
    ledger.execute(sell_intent("1"), D("100"), 1)
    assert ledger.round_trips == [] and ledger.realised_pnl_usd == 0


def test_cannot_sell_more_than_held_or_spend_more_than_there_is() -> None:
    ledger = Ledger(D("100"), D("0.5"))
    fill = ledger.execute(sell_intent("2"), D("100"), 1)  # capped at the balance
    assert fill is not None and fill.base_quantity == D("0.5")
    assert ledger.execute(sell_intent("1"), D("100"), 2) is None  # nothing left
    with pytest.raises(LedgerError, match="does not fit"):
        ledger.record(Side.buy, D("100"), D("10"), D("0"), 3)
    with pytest.raises(LedgerError):
        ledger.execute(buy_intent("10"), D("0"), 4)


def test_a_buy_too_small_for_one_satoshi_does_not_fill() -> None:
    ledger = Ledger(D("0.0001"))
    assert ledger.execute(buy_intent("0.0001"), D("60000"), 1) is None
    assert ledger.fills == []


def test_full_balance_buy_never_overdraws() -> None:
    for price in ("0.3", "3", "33333.33", "98765.43", "7"):
        ledger = Ledger(D("1000"))
        ledger.execute(buy_intent("1000"), D(price), 1)
        assert ledger.balances.usd >= 0


def test_strategy_and_ledger_together() -> None:
    params = StrategyParams(liquidity_gate=False)
    ledger = Ledger(D("1000"))
    intent = decide_order(Side.buy, ledger.balances, None, params)
    assert intent is not None
    ledger.execute(intent, D("100"), 1)
    assert decide_order(Side.buy, ledger.balances, None, params) is None  # already in
    intent = decide_order(Side.sell, ledger.balances, None, params)
    assert intent is not None
    ledger.execute(intent, D("110"), 2)
    assert ledger.balances.btc == 0
    assert decide_order(Side.sell, ledger.balances, None, params) is None


def test_equity_curve_marks_to_market_from_each_fill_on() -> None:
    ledger = Ledger(D("1000"), taker_fee_pct=D("0"))
    ledger.execute(buy_intent("500"), D("100"), 1)  # at minute 1
    ledger.execute(sell_intent("5"), D("120"), 3)  # at minute 3
    prices = np.array([90.0, 100.0, 110.0, 120.0, 130.0])
    curve = equity_curve(ledger.fills, [1, 3], prices, ledger.initial)
    np.testing.assert_allclose(curve, [1000.0, 1000.0, 1050.0, 1100.0, 1100.0])


def test_equity_after_exit_fee() -> None:
    ledger = Ledger(D("0"), D("1"), taker_fee_pct=D("1"))
    assert ledger.equity_usd(D("100")) == D("100")
    assert ledger.equity_usd(D("100"), after_exit_fee=True) == D("99")


def test_score_round_trip_on_partial_exit() -> None:
    ledger = Ledger(D("1000"), taker_fee_pct=D("0"))
    entry = ledger.execute(buy_intent("1000"), D("100"), 1)
    half = ledger.execute(sell_intent("5"), D("110"), 2)
    assert entry is not None and half is not None
    assert score_round_trip(entry, half).pnl_usd == D("50")


def test_negative_fee_is_refused() -> None:
    with pytest.raises(ValueError):
        Ledger(D("1"), taker_fee_pct=D("-0.1"))


# --- properties (issue 10): cash + position value is conserved minus fees ----------------------

PRICES = st.decimals(min_value=D("100.00"), max_value=D("200000.00"), places=2)
QUANTITIES = st.decimals(min_value=D("0.00000001"), max_value=D("5"), places=8)
FEE_PCTS = st.sampled_from([D(0), D("0.1"), D("0.25"), D("0.35"), D("1")])


def equity_at(balances: Balances, price: Decimal) -> Decimal:
    return balances.usd + balances.btc * price


@settings(max_examples=200, deadline=None)
@given(
    usd=st.decimals(min_value=D(0), max_value=D("10000000"), places=2),
    btc=st.decimals(min_value=D(0), max_value=D("10"), places=8),
    fee_pct=FEE_PCTS,
    fills=st.lists(st.tuples(st.sampled_from(Side), QUANTITIES, PRICES), max_size=25),
    mark=PRICES,
)
def test_any_fill_sequence_conserves_cash_plus_position_value_minus_fees(
    usd: Decimal,
    btc: Decimal,
    fee_pct: Decimal,
    fills: list[tuple[Side, Decimal, Decimal]],
    mark: Decimal,
) -> None:
    """Each booked fill moves equity at its own price by exactly minus its fee; over the whole
    sequence, equity at any mark price = start - fees + what the fills gained against the mark;
    balances never go negative (a fill that does not fit is refused and changes nothing)."""
    ledger = Ledger(usd, btc, taker_fee_pct=fee_pct)
    drift = D(0)  # sum over fills of signed quantity x (mark - fill price)
    for side, quantity, price in fills:
        before = ledger.balances
        fee = (price * quantity * ledger.fee_rate).quantize(D("0.00000001"))
        try:
            fill = ledger.record(side, price, quantity, fee, T0)
        except LedgerError:
            assert ledger.balances == before
            continue
        after = fill.balances_after
        assert after.usd >= 0 and after.btc >= 0
        assert equity_at(after, price) == equity_at(before, price) - fee
        signed = quantity if side is Side.buy else -quantity
        drift += signed * (mark - price)
    start = equity_at(Balances(usd=usd, btc=btc), mark)
    assert equity_at(ledger.balances, mark) == start - ledger.fees_paid_usd + drift
    assert ledger.fees_paid_usd == sum((f.fee_usd for f in ledger.fills), D(0))


@settings(max_examples=100, deadline=None)
@given(
    usd=st.decimals(min_value=D(0), max_value=D("1000000"), places=2),
    fee_pct=FEE_PCTS,
    steps=st.lists(
        st.tuples(st.sampled_from([Side.buy, Side.sell]), PRICES, QUANTITIES, PRICES),
        max_size=20,
    ),
)
def test_the_simulated_account_conserves_equity_minus_fees_on_any_book_sequence(
    usd: Decimal, fee_pct: Decimal, steps: list[tuple[Side, Decimal, Decimal, Decimal]]
) -> None:
    """The backtests' account (sizing, risk gate, IOC fill, paper fee) over random books."""
    limits = RiskLimits(D("1000"), D("100000000"), D("100000000"), 1000)
    account = SimulatedAccount(
        usd, params=StrategyParams(liquidity_gate=False), limits=limits, taker_fee_pct=fee_pct
    )
    for minute, (side, bid, size, spread) in enumerate(steps):
        book = TopOfBook("btcusd", bid, size, bid + spread / 100, size, T0 + minute * 60_000)
        intent = account.decide(side, None)
        if intent is None:
            continue
        before = account.ledger.balances
        execution = account.execute(
            intent, book, client_order_id=f"c{minute}", now_ms=T0 + minute * 60_000
        )
        after = account.ledger.balances
        assert after.usd >= 0 and after.btc >= 0
        if execution.fill is None:
            assert after == before
            continue
        fill = execution.fill
        assert equity_at(after, fill.price) == equity_at(before, fill.price) - fill.fee_usd
        assert fill.fee_usd == taker_fee_usd(fill.price, fill.base_quantity, account.fee_rate)


def test_the_fee_rounds_half_even_whatever_the_threads_decimal_context() -> None:
    """A library may change the thread's decimal context (ccxt sets ROUND_HALF_UP): the fee of
    the paper exchange and of the backtests still rounds a tie to even, so both agree."""
    tie = (Decimal(1), Decimal("0.00000001"), Decimal("0.5"))  # 0.000000005 USD
    plain = taker_fee_usd(*tie)
    with decimal.localcontext(rounding=decimal.ROUND_HALF_UP):
        assert taker_fee_usd(*tie) == plain == Decimal("0E-8")
    assert taker_fee_usd(Decimal(1), Decimal("0.00000003"), Decimal("0.5")) == Decimal("2E-8")
