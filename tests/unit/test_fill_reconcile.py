"""The pure reconciliation of journaled fills with the exchange's trades
(rtcrypto/trader/fill_reconcile.py): what to book, what to correct, and that doing it twice
books nothing more."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rtcrypto.exchange.base import OrderStatus
from rtcrypto.exchange.gemini_trades import MyTrade, TradeHistory
from rtcrypto.exchange.paper import PaperExchange
from rtcrypto.trader.fill_reconcile import (
    CLOCK_SKEW_ALLOWANCE_MS,
    apply_corrections,
    fill_corrections,
    reconcile_fills,
    trades_since_ms,
)
from rtcrypto.trader.journal import JournalState, OrderJournal, SentOrder, read_journal
from rtcrypto.trading.ledger import Ledger
from rtcrypto.trading.order_types import OrderRequest
from rtcrypto.trading.strategy import Side
from tests.unit.test_trader_engine import Book

T0 = 1_618_677_900_000


def sent(cid: str, side: Side = Side.buy, quantity: str = "1") -> SentOrder:
    request = OrderRequest(cid, "btcusd", side, Decimal(quantity), Decimal("60000"))
    return SentOrder(request, "v1", T0, T0)


def fill(tid: int, order_id: str, cid: str | None, amount: str, price: str, fee: str) -> MyTrade:
    return MyTrade(
        tid,
        order_id,
        cid,
        Side.buy,
        Decimal(price),
        Decimal(amount),
        Decimal(fee),
        "USD",
        False,
        T0 + tid,
    )


def result(cid: str, order_id: str, executed: str, average: str, fee: str) -> OrderStatus:
    return OrderStatus(
        order_id,
        cid,
        "btcusd",
        Side.buy,
        Decimal("60000"),
        Decimal("1"),
        Decimal(executed),
        Decimal(average),
        Decimal(fee),
        False,
        Decimal(executed) < 1,
        T0,
    )


def test_an_agreeing_journal_needs_nothing() -> None:
    trades = [fill(1, "9", "a", "0.4", "100", "0.1"), fill(2, "9", "a", "0.6", "110", "0.165")]
    results = {"a": result("a", "9", "1.0", "106", "0.265")}
    assert fill_corrections({"a": sent("a")}, results, (), trades) == []


def test_a_wrong_fee_is_corrected_with_both_values() -> None:
    trades = [fill(1, "9", "a", "0.5", "100", "0.125")]
    results = {"a": result("a", "9", "0.5", "100", "0.15")}  # estimated at 0.3 %
    (correction,) = fill_corrections({"a": sent("a")}, results, (), trades)
    assert correction.after.fee_usd == Decimal("0.125")
    assert correction.differences == ("fee_usd journal=0.15 exchange=0.125",)
    assert correction.tids == (1,) and correction.before == results["a"]


def test_a_fill_the_journal_lacks_is_booked_from_its_trades() -> None:
    trades = [
        fill(1, "9", "a", "0.25", "100", "0.0625"),
        fill(2, "9", "a", "0.25", "102", "0.06375"),
        fill(3, "77", "someone-else", "5", "100", "1"),  # another client of the key: ignored
    ]
    (correction,) = fill_corrections({"a": sent("a")}, {}, (), trades)
    after = correction.after
    assert (after.order_id, after.executed_quantity) == ("9", Decimal("0.5"))
    assert after.average_execution_price == Decimal("101")
    assert after.fee_usd == Decimal("0.12625")
    assert after.is_cancelled and not after.is_live  # IOC: the rest was cancelled
    assert correction.differences == ("no result in the journal",)


def test_an_abandoned_order_with_trades_is_booked() -> None:
    trades = [fill(1, "9", "a", "1", "100", "0.25")]
    (correction,) = fill_corrections({"a": sent("a")}, {}, {"a"}, trades)
    assert correction.differences == ("abandoned in the journal",)


def test_a_journaled_fill_missing_from_the_trades_is_kept() -> None:
    results = {"a": result("a", "9", "1", "100", "0.25")}
    assert fill_corrections({"a": sent("a")}, results, (), []) == []


def test_an_average_rounded_by_the_exchange_is_not_a_difference() -> None:
    trades = [fill(1, "9", "a", "0.3", "100.01", "0"), fill(2, "9", "a", "0.7", "100", "0")]
    results = {"a": result("a", "9", "1.0", "100.00", "0")}  # exact 100.003
    assert fill_corrections({"a": sent("a")}, results, (), trades) == []


def test_trades_are_read_from_before_the_journal_opened() -> None:
    state = JournalState(opened={"ts_ms": T0, "usd": "1", "btc": "0"})
    assert trades_since_ms(state) == T0 - CLOCK_SKEW_ALLOWANCE_MS
    assert trades_since_ms(JournalState()) == 0


# --- idempotence ---------------------------------------------------------------------------


AMOUNT = st.decimals(min_value="0.00001", max_value="2", places=5)
PRICE = st.decimals(min_value="50000", max_value="70000", places=2)
FEE = st.decimals(min_value="0", max_value="400", places=9)
ORDER = st.tuples(
    st.lists(st.tuples(AMOUNT, PRICE, FEE), max_size=3),  # its trades on the exchange
    st.sampled_from(["agrees", "wrong-fee", "wrong-amount", "pending", "abandoned"]),
)


def ledger_of(results: dict[str, OrderStatus]) -> tuple[Decimal, Decimal, Decimal, int]:
    ledger = Ledger(Decimal(10**7), Decimal(100))
    for status in results.values():
        if status.executed_quantity > 0:
            ledger.record(
                status.side,
                status.average_execution_price,
                status.executed_quantity,
                status.fee_usd,
                status.ts_ms,
            )
    return ledger.balances.usd, ledger.balances.btc, ledger.fees_paid_usd, len(ledger.fills)


@settings(max_examples=200, deadline=None)
@given(st.lists(ORDER, max_size=6))
def test_reconciling_twice_books_the_same_ledger(orders: list[tuple[list[Any], str]]) -> None:
    sent_orders: dict[str, SentOrder] = {}
    results: dict[str, OrderStatus] = {}
    abandoned: set[str] = set()
    trades: list[MyTrade] = []
    tid = 0
    for index, (fills, journal_says) in enumerate(orders):
        cid, order_id = f"c{index}", str(1000 + index)
        if not fills and journal_says.startswith("wrong"):
            journal_says = "agrees"  # a journaled fill the trades lack is kept (tested above)
        side = Side.buy if index % 2 == 0 else Side.sell
        mine = []
        for amount, price, fee in fills:
            tid += 1
            base = fill(tid, order_id, cid, "1", "1", "0")
            mine.append(
                dataclasses.replace(base, side=side, amount=amount, price=price, fee_amount=fee)
            )
        trades += mine
        quantity = sum((t.amount for t in mine), Decimal(0)) + 1
        sent_orders[cid] = sent(cid, side, str(quantity))
        executed = sum((t.amount for t in mine), Decimal(0))
        notional = sum((t.notional for t in mine), Decimal(0))
        fee = sum((t.fee_amount for t in mine), Decimal(0))
        average = notional / executed if executed else Decimal(0)
        status = dataclasses.replace(
            result(cid, order_id, str(executed), str(average), str(fee)),
            side=side,
            original_quantity=quantity,
        )
        if journal_says == "wrong-fee":
            status = dataclasses.replace(status, fee_usd=fee + Decimal("0.01"))
        elif journal_says == "wrong-amount":
            status = dataclasses.replace(status, executed_quantity=executed + Decimal("0.001"))
        if journal_says == "abandoned":
            abandoned.add(cid)
        elif journal_says != "pending":
            results[cid] = status

    first = apply_corrections(results, fill_corrections(sent_orders, results, abandoned, trades))
    assert fill_corrections(sent_orders, first, abandoned, trades) == []  # idempotent
    second = apply_corrections(first, fill_corrections(sent_orders, first, abandoned, trades))
    assert ledger_of(second) == ledger_of(first)
    # every trade of a known order is booked once: the ledger's fee is the trades' sum
    booked = {s.order_id for s in first.values() if s.executed_quantity > 0}
    assert ledger_of(first)[2] == sum((t.fee_amount for t in trades), Decimal(0))
    assert booked == {t.order_id for t in trades}


def test_an_exchange_without_trade_history_changes_nothing(tmp_path: Path) -> None:
    """The paper exchange lists no trades: reconciliation leaves its journal alone."""
    book = Book()
    exchange = PaperExchange(tmp_path / "paper.json", book, usd=Decimal(1000), clock_ms=lambda: T0)
    assert not isinstance(exchange, TradeHistory)
    journal = OrderJournal(tmp_path / "journal.jsonl")
    journal.open_account(Decimal(1000), Decimal(0), "paper", T0)
    journal.record_sent(sent("a"))
    assert reconcile_fills(exchange, journal, "BTCUSD") == []
    assert read_journal(tmp_path / "journal.jsonl").pending() == [sent("a")]
    journal.close()
