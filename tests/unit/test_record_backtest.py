"""The record backtest takes the trader's orders: the real ``Trader`` on the paper exchange and
``backtest_records`` fed its records, forecast and quotes give the same orders; ``first_difference``
names the first minute that differs."""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcrypto.exchange.paper import PaperExchange, matched_books_by_client_order_id
from rtcrypto.trader.engine import Trader, parse_liquidity
from rtcrypto.trader.forecasts import ForecastSides, ForecastSource
from rtcrypto.trader.journal import OrderJournal
from rtcrypto.trader.run_inputs import orders_from_journal, quotes_from_run
from rtcrypto.trading.order_types import TopOfBook
from rtcrypto.trading.record_backtest import (
    PlacedOrder,
    RecordBacktestConfig,
    backtest_records,
    first_difference,
)
from rtcrypto.trading.risk import RiskLimits
from rtcrypto.trading.strategy import Side, StrategyParams
from tests.unit.test_trader_engine import ListRecorder, forecast_frame, record

T0 = 1_618_617_600_000  # 2021-04-17 00:00 UTC
MINUTE = 60_000
LIMITS = RiskLimits(Decimal("0.12"), Decimal("100000"), Decimal("1000"), 5)


class MovingBook:
    """A top of book that moves on every read, so the trader's sizing read and the paper
    exchange's matching read see different books (as on a fast replay)."""

    def __init__(self, mids: list[Decimal], ask_size: Decimal) -> None:
        self.mids, self.ask_size, self.reads = mids, ask_size, 0

    def __call__(self, symbol: str) -> TopOfBook:
        mid = self.mids[self.reads % len(self.mids)]
        self.reads += 1
        return TopOfBook(symbol, mid - 5, Decimal("3"), mid + 5, self.ask_size, T0)


def run_trader(
    tmp_path: Path, sides: list[str], ratios: list[float | None], book: MovingBook
) -> tuple[Trader, list[dict[str, Any]]]:
    clock = {"ms": T0}
    exchange = PaperExchange(
        tmp_path / "paper.json", book, usd=Decimal("10000"), clock_ms=lambda: clock["ms"]
    )
    forecasts = ForecastSource(tmp_path / "forecast", 10.0, clock_s=lambda: 0.0)
    forecasts.current = ForecastSides("v1", forecast_frame(sides))
    trader = Trader(
        exchange=exchange,
        journal=OrderJournal(tmp_path / "journal.jsonl"),
        forecasts=forecasts,
        recorder=ListRecorder(),
        params=StrategyParams(),
        limits=LIMITS,
        symbol="BTCUSD",
        mode="paper",
        taker_fee_pct=Decimal("0.25"),
        clock_ms=lambda: clock["ms"],
    )
    trader.start()
    records = []
    for minute, ratio in enumerate(ratios):
        value = record(minute, ratio)
        records.append(value)
        clock["ms"] = value["window_end_ms"]  # the trader's clock is the record's minute
        trader.on_liquidity(parse_liquidity(value))
        if minute % 4 == 3:  # Spark re-emits a window now and then (at least once)
            records.append(value)
            trader.on_liquidity(parse_liquidity(value))
    return trader, records


def replay(trader: Trader, records: list[dict[str, Any]], tmp_path: Path) -> list[PlacedOrder]:
    state = trader.journal.state
    config = RecordBacktestConfig(
        initial_usd=Decimal("10000"),
        initial_btc=Decimal(0),
        taker_fee_pct=Decimal("0.25"),
        strategy=StrategyParams(),
        risk=LIMITS,
    )
    assert trader.forecasts.current is not None
    result = backtest_records(
        [parse_liquidity(value) for value in records],
        trader.forecasts.current.side_at,
        quotes_from_run(state, matched_books_by_client_order_id(tmp_path / "paper.json")),
        config,
    )
    ledger = trader.ledger
    assert ledger is not None
    assert result.final == ledger.balances  # the same fills, to the last digit
    return list(result.orders)


def test_backtest_fed_the_traders_inputs_sends_the_traders_orders(tmp_path: Path) -> None:
    sides = ["buy", "buy", "sell", "buy", "buy", "sell", "sell", "buy", "sell", "buy", "sell"]
    ratios: list[float | None] = [2.5, 1.0, 1.0, None, 0.5, 1.0, 1.0, 1.9, 1.0, 0.05, 1.0]
    mids = [Decimal(m) for m in ("60000", "59990", "60020", "60020", "60100", "59950", "60210")]
    # a small ask size: some buys fill partly; the position limit cuts others
    trader, records = run_trader(tmp_path, sides, ratios, MovingBook(mids, Decimal("0.1")))
    trader_orders = orders_from_journal(trader.journal.state)
    assert {o.side for o in trader_orders} == {Side.buy, Side.sell} and len(trader_orders) >= 5
    assert any(o.executed_quantity < (o.quantity or 0) for o in trader_orders), "a partial fill"
    backtest_orders = replay(trader, records, tmp_path)
    assert first_difference(trader_orders, backtest_orders) is None
    assert backtest_orders == trader_orders


@settings(max_examples=30, deadline=None)
@given(
    sides=st.lists(st.sampled_from(["buy", "sell"]), min_size=1, max_size=25),
    ratio_choices=st.lists(st.sampled_from([None, 0.05, 0.5, 1.0, 1.99, 2.5]), min_size=25),
    mids=st.lists(st.integers(50_000, 70_000).map(Decimal), min_size=1, max_size=9),
    ask_size=st.sampled_from([Decimal("0.01"), Decimal("0.1"), Decimal("5")]),
)
def test_backtest_equals_the_trader_on_any_inputs(
    sides: list[str],
    ratio_choices: list[float | None],
    mids: list[Decimal],
    ask_size: Decimal,
) -> None:
    """Property: random sides, ratios, moving books and top-of-book sizes."""
    with tempfile.TemporaryDirectory() as folder:
        tmp_path = Path(folder)
        ratios = ratio_choices[: len(sides)]
        trader, records = run_trader(tmp_path, sides, ratios, MovingBook(mids, ask_size))
        trader_orders = orders_from_journal(trader.journal.state)
        assert first_difference(trader_orders, replay(trader, records, tmp_path)) is None
        trader.journal.close()


# --- first_difference --------------------------------------------------------------------


def order(minute: int, side: Side = Side.buy, quantity: str = "0.1") -> PlacedOrder:
    return PlacedOrder(T0 + minute * MINUTE, side, Decimal(quantity), Decimal("60000"))


def test_equal_lists_and_rounding_differences_are_no_difference() -> None:
    orders = [order(1), order(3, Side.sell), order(5)]
    assert first_difference(orders, list(orders)) is None
    assert first_difference([order(1, quantity="0.10000001")], [order(1)]) is None
    assert first_difference([], []) is None


@pytest.mark.parametrize(
    ("trader", "backtest", "minute", "trader_text", "backtest_text"),
    [
        (
            [order(1), order(3, Side.sell)],
            [order(1), order(4, Side.sell)],
            3,
            "sell 0.1",
            "no order",
        ),
        (
            [order(1), order(3, Side.sell)],
            [order(1), order(2, Side.sell)],
            2,
            "no order",
            "sell 0.1",
        ),
        ([order(1)], [order(1, Side.sell)], 1, "buy 0.1", "sell 0.1"),
        ([order(1, quantity="0.1")], [order(1, quantity="0.1001")], 1, "buy 0.1 ", "buy 0.1001"),
        ([order(1), order(2)], [order(1)], 2, "buy 0.1", "no order"),
        (
            [order(1)],
            [order(1), PlacedOrder(T0 + 7 * MINUTE, Side.sell, None)],
            7,
            "no order",
            "sell (no quote",
        ),
    ],
)
def test_the_first_differing_minute_is_named(
    trader: list[PlacedOrder],
    backtest: list[PlacedOrder],
    minute: int,
    trader_text: str,
    backtest_text: str,
) -> None:
    difference = first_difference(trader, backtest)
    assert difference is not None
    assert difference.minute_ms == T0 + minute * MINUTE
    text = str(difference)
    assert f"2021-04-17 00:{minute:02d} UTC" in text
    assert f"trader sent {trader_text}" in text and f"backtest sent {backtest_text}" in text


@given(
    quantities=st.lists(
        st.integers(10_000, 200_000_000).map(lambda sats: Decimal(sats) / 10**8),
        min_size=1,
        max_size=30,
    ),
    data=st.data(),
)
def test_a_changed_order_is_found_at_its_position(quantities: list[Decimal], data: Any) -> None:
    """Property: change one order (or cut the list there): that position is named."""
    orders = [
        PlacedOrder(T0 + i * MINUTE, Side.buy if i % 2 else Side.sell, q, Decimal(1))
        for i, q in enumerate(quantities)
    ]
    assert first_difference(orders, orders) is None
    index = data.draw(st.integers(0, len(orders) - 1))
    changed = list(orders)
    changed[index] = PlacedOrder(
        orders[index].minute_ms, orders[index].side, quantities[index] + Decimal("0.00000002")
    )
    difference = first_difference(orders, changed)
    assert difference is not None and difference.index == index
    assert difference.minute_ms == orders[index].minute_ms
    shorter = first_difference(orders, orders[:index])
    assert shorter is not None and shorter.index == index and shorter.backtest == ()
