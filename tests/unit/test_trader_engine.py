"""The trader's loop on the paper exchange: strategy, risk gate, journal, ledger, restart safety."""

from __future__ import annotations

import json
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from rtcrypto.exchange.base import OrderStatus
from rtcrypto.exchange.paper import PaperExchange, matched_books_by_client_order_id
from rtcrypto.trader.engine import (
    MalformedRecordError,
    Trader,
    client_order_id,
    parse_liquidity,
)
from rtcrypto.trader.forecasts import ForecastSides, ForecastSource
from rtcrypto.trader.journal import OrderJournal
from rtcrypto.trader.recorder import TradeContext
from rtcrypto.trading.ledger import Fill, RoundTrip
from rtcrypto.trading.order_types import OrderRequest, TopOfBook
from rtcrypto.trading.orders import ioc_fill
from rtcrypto.trading.risk import RiskLimits
from rtcrypto.trading.strategy import Side, StrategyParams

T0 = 1_618_617_600_000  # 2021-04-17 00:00 UTC
MINUTE = 60_000


class ListRecorder:
    """Keeps what the trader reports, by kind."""

    def __init__(self) -> None:
        self.items: dict[str, list[Any]] = {k: [] for k in ("order", "fill", "score", "balances")}

    def order(self, request: OrderRequest, status: OrderStatus, context: TradeContext) -> None:
        self.items["order"].append((request, status, context))

    def fill(self, fill: Fill, status: OrderStatus, context: TradeContext) -> None:
        self.items["fill"].append(fill)

    def score(self, trip: RoundTrip, status: OrderStatus, context: TradeContext) -> None:
        self.items["score"].append(trip)

    def balances(self, usd: Decimal, btc: Decimal, ts_ms: int, mode: str) -> None:
        self.items["balances"].append((usd, btc))

    def ticker(self, book: TopOfBook) -> None:
        return None

    def liquidity(self, record: dict[str, Any]) -> None:
        return None

    def forecast(self, version: str, frame: pd.DataFrame, offset_ms: int) -> None:
        self.items.setdefault("forecast", []).append((version, frame, offset_ms))

    def close(self) -> None:
        return None


class Book:
    """A top of book the test moves."""

    def __init__(self) -> None:
        self.bid, self.ask, self.size = Decimal("60000"), Decimal("60010"), Decimal("5")

    def __call__(self, symbol: str) -> TopOfBook:
        return TopOfBook(symbol, self.bid, self.size, self.ask, self.size, T0)


def forecast_frame(sides: list[str]) -> pd.DataFrame:
    ds = pd.to_datetime([T0 + i * MINUTE for i in range(len(sides))], unit="ms", utc=True)
    return pd.DataFrame(
        {"ds": ds, "yhat": 0.0, "yhat_lower": 0.0, "yhat_upper": 0.0, "side": sides}
    )


def record(minute: int, ratio: float | None = 1.0, symbol: str = "BTCUSD") -> dict[str, Any]:
    start = T0 + (minute - 1) * MINUTE
    return {
        "symbol": symbol,
        "window_start_ms": start,
        "window_end_ms": start + MINUTE,
        "liquidity_ratio": ratio,
    }


def make_trader(tmp_path: Path, sides: list[str], book: Book, **kwargs: Any) -> Trader:
    exchange = PaperExchange(
        tmp_path / "paper.json", book, usd=Decimal("10000"), clock_ms=lambda: T0
    )
    forecasts = ForecastSource(tmp_path / "forecast", 10.0, clock_s=lambda: 0.0)
    forecasts.current = ForecastSides("v1", forecast_frame(sides))
    trader = Trader(
        exchange=exchange,
        journal=OrderJournal(tmp_path / "journal.jsonl"),
        forecasts=forecasts,
        recorder=kwargs.pop("recorder", ListRecorder()),
        params=StrategyParams(),
        limits=RiskLimits(Decimal("1"), Decimal("100000"), Decimal("1000"), 5),
        symbol="BTCUSD",
        mode="paper",
        taker_fee_pct=Decimal("0.25"),
        clock_ms=lambda: T0,
        **kwargs,
    )
    trader.start()
    return trader


def test_buy_then_sell_is_scored_after_fees(tmp_path: Path) -> None:
    book = Book()
    recorder = ListRecorder()
    trader = make_trader(tmp_path, ["sell", "buy", "buy", "sell"], book, recorder=recorder)
    bought = trader.on_liquidity(parse_liquidity(record(1)))
    assert bought.action == "order" and bought.status is not None
    assert bought.client_order_id == client_order_id("v1", T0 + MINUTE, Side.buy)
    # 0.9 x 10,000 USD at the ask with the 0.25 % fee on top, rounded down to a satoshi
    quantity = (Decimal(9000) / (Decimal(60010) * Decimal("1.0025"))).quantize(
        Decimal("1e-8"), rounding=ROUND_DOWN
    )
    assert bought.status.executed_quantity == quantity == Decimal("0.14960100")
    assert bought.status.average_execution_price == Decimal("60010")
    held = trader.on_liquidity(parse_liquidity(record(2)))
    assert held.action == "skip" and "no order" in held.reason  # already in
    book.bid = Decimal("61000")
    sold = trader.on_liquidity(parse_liquidity(record(3)))
    assert sold.action == "order" and sold.status is not None
    assert sold.status.executed_quantity == quantity
    assert len(recorder.items["score"]) == 1
    trip = recorder.items["score"][0]

    def fee(notional: Decimal) -> Decimal:
        return (notional * Decimal("0.0025")).quantize(Decimal("1e-8"))

    proceeds = Decimal(61000) * quantity - fee(Decimal(61000) * quantity)
    cost = Decimal(60010) * quantity + fee(Decimal(60010) * quantity)
    expected = proceeds - cost
    assert abs(trip.pnl_usd - expected) < Decimal("0.00001")
    assert trader.ledger is not None and trader.ledger.realised_pnl_usd == trip.pnl_usd
    assert trader.exchange.balances()["btc"] == 0


def test_same_record_twice_sends_one_order(tmp_path: Path) -> None:
    trader = make_trader(tmp_path, ["buy", "buy"], Book())
    first = trader.on_liquidity(parse_liquidity(record(1)))
    # the exchange returns the BTC, so re-processing would be "already in"; sell it to force a retry
    second = trader.on_liquidity(parse_liquidity(record(1)))
    assert first.action == "order" and second.action == "skip"
    assert len(trader.journal.state.sent) == 1


def test_liquidity_gate_blocks_buys_outside_the_ratio_window(tmp_path: Path) -> None:
    trader = make_trader(tmp_path, ["buy", "buy", "buy"], Book())
    assert trader.on_liquidity(parse_liquidity(record(1, ratio=2.5))).action == "skip"
    assert trader.on_liquidity(parse_liquidity(record(1, ratio=None))).action == "skip"
    assert trader.on_liquidity(parse_liquidity(record(1, ratio=1.5))).action == "order"


def test_stale_records_and_uncovered_minutes_are_skipped(tmp_path: Path) -> None:
    trader = make_trader(tmp_path, ["buy"], Book(), max_record_age_ms=5 * MINUTE)
    old = parse_liquidity(record(-10))
    assert "stale" in trader.on_liquidity(old).reason
    late = parse_liquidity(record(3))
    assert "does not cover" in trader.on_liquidity(late).reason


def test_forecast_offset_maps_the_replayed_clock_to_the_forecast(tmp_path: Path) -> None:
    shift = 1000 * MINUTE
    trader = make_trader(tmp_path, ["buy", "buy"], Book(), forecast_offset_ms=shift)
    shifted = record(1)
    shifted["window_start_ms"] += shift
    shifted["window_end_ms"] += shift
    outcome = trader.on_liquidity(parse_liquidity(shifted))
    assert outcome.action == "order"


def test_the_indexed_forecast_follows_the_feed_clock(tmp_path: Path) -> None:
    """A fast replay passes the indexed day in minutes: the next day is indexed on the way."""
    clock = {"ms": T0}
    recorder = ListRecorder()
    trader = make_trader(tmp_path, ["buy"] * 3 * 1440, Book(), recorder=recorder)
    trader.clock_ms = lambda: clock["ms"]
    trader._record_forecast()  # what a (re)load does
    first = recorder.items["forecast"][-1][1]
    assert pd.Timestamp(first["ds"].max()).value // 1_000_000 == T0 + 1440 * MINUTE - MINUTE
    clock["ms"] = T0 + 11 * 60 * MINUTE
    trader.on_liquidity(parse_liquidity(record(11 * 60)))
    assert len(recorder.items["forecast"]) == 1, "not due before half the day"
    clock["ms"] = T0 + 12 * 60 * MINUTE
    trader.on_liquidity(parse_liquidity(record(12 * 60)))
    assert len(recorder.items["forecast"]) == 2
    second = recorder.items["forecast"][-1][1]
    assert pd.Timestamp(second["ds"].max()).value // 1_000_000 == T0 + 36 * 60 * MINUTE - MINUTE


def test_the_daily_loss_counts_the_feed_clocks_day_only(tmp_path: Path) -> None:
    """Round trips of another day on the feed clock (a replay started again) do not count."""
    book = Book()
    clock = {"ms": T0 + 2 * MINUTE}
    trader = make_trader(tmp_path, ["buy", "buy", "sell"], book)
    trader.clock_ms = lambda: clock["ms"]
    assert trader.on_liquidity(parse_liquidity(record(1))).action == "order"
    book.bid = Decimal("50000")  # a loss of about 1,500 USD
    assert trader.on_liquidity(parse_liquidity(record(2))).action == "order"
    assert trader.ledger is not None and trader.ledger.realised_pnl_usd < -1000
    balances = trader.exchange.balances()
    from rtcrypto.trading.strategy import Balances

    holding = Balances(usd=balances["usd"], btc=balances["btc"])
    today = trader._risk_state(holding, T0 + 3 * MINUTE)
    assert today.realised_pnl_today_usd == trader.ledger.realised_pnl_usd
    day_before = trader._risk_state(holding, T0 - 60 * MINUTE)
    assert day_before.realised_pnl_today_usd == 0, "a later day's loss is not this day's"
    next_day = trader._risk_state(holding, T0 + 1440 * MINUTE)
    assert next_day.realised_pnl_today_usd == 0


class Crash(BaseException):
    """Stands for kill -9 between the exchange's answer and the journal's record."""


def test_crash_between_send_and_record_never_sends_twice(tmp_path: Path) -> None:
    book = Book()

    def crash(status: OrderStatus) -> None:
        raise Crash

    trader = make_trader(tmp_path, ["buy", "buy"], book, after_send=crash)
    with pytest.raises(Crash):
        trader.on_liquidity(parse_liquidity(record(1)))
    trader.journal.close()
    assert len(trader.journal.state.pending()) == 1

    recorder = ListRecorder()
    restarted = make_trader(tmp_path, ["buy", "buy"], book, recorder=recorder)
    assert restarted.journal.state.pending() == []
    assert restarted.ledger is not None and restarted.ledger.balances.btc > 0
    assert len(recorder.items["order"]) == 1 and len(recorder.items["fill"]) == 1
    again = restarted.on_liquidity(parse_liquidity(record(1)))
    assert again.action == "skip"
    paper = restarted.exchange
    assert isinstance(paper, PaperExchange)
    assert len(paper._orders) == 1  # the exchange saw exactly one order


def test_an_order_that_never_reached_the_exchange_is_abandoned_on_restart(tmp_path: Path) -> None:
    trader = make_trader(tmp_path, ["buy"], Book())
    from rtcrypto.trader.journal import SentOrder

    ghost = OrderRequest("rtc-v1-1-buy", "btcusd", Side.buy, Decimal("0.1"), Decimal("60010"))
    trader.journal.record_sent(SentOrder(ghost, "v1", T0, T0))
    trader.journal.close()
    restarted = make_trader(tmp_path, ["buy"], Book())
    assert "rtc-v1-1-buy" in restarted.journal.state.abandoned


def test_kill_switch_stops_orders(tmp_path: Path) -> None:
    trader = make_trader(tmp_path, ["buy", "buy"], Book(), kill_switch=lambda: True)
    outcome = trader.on_liquidity(parse_liquidity(record(1)))
    assert outcome.action == "skip" and "kill switch" in outcome.reason


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"symbol": "BTCUSD"},
        {**record(1), "window_end_ms": T0 - MINUTE},
        {**record(1), "liquidity_ratio": "x"},
    ],
)
def test_malformed_records_raise_a_clear_error(bad: Any) -> None:
    with pytest.raises(MalformedRecordError):
        parse_liquidity(bad)


def test_paper_fills_partially_at_the_top_of_the_book() -> None:
    book = TopOfBook("btcusd", Decimal("100"), Decimal("0.5"), Decimal("101"), Decimal("0.2"), T0)
    buy = OrderRequest("a", "btcusd", Side.buy, Decimal("1"), Decimal("101"))
    assert ioc_fill(buy, book) == (Decimal("0.2"), Decimal("101"))
    too_low = OrderRequest("b", "btcusd", Side.buy, Decimal("1"), Decimal("100.5"))
    assert ioc_fill(too_low, book) == (Decimal(0), Decimal(0))
    sell = OrderRequest("c", "btcusd", Side.sell, Decimal("1"), Decimal("100"))
    assert ioc_fill(sell, book) == (Decimal("0.5"), Decimal("100"))


def test_paper_account_survives_a_restart(tmp_path: Path) -> None:
    book = Book()
    first = PaperExchange(tmp_path / "p.json", book, usd=Decimal("1000"))
    first.place_order(OrderRequest("x", "btcusd", Side.buy, Decimal("0.01"), Decimal("60010")))
    second = PaperExchange(tmp_path / "p.json", book, usd=Decimal("999999"))
    assert second.balances() == first.balances()
    assert second.order_status("x") == first.order_status("x")
    # the book the order was matched against is kept, for the record backtest
    assert matched_books_by_client_order_id(tmp_path / "p.json") == {"x": book("btcusd")}


def test_a_newer_published_version_is_hot_reloaded_between_decisions(tmp_path: Path) -> None:
    """The trader reads the ``current`` pointer; a new version is used without a restart, and a
    broken one is refused while the old one keeps trading."""
    forecast_dir = tmp_path / "forecast"
    clock = {"s": 0.0}

    def publish(version: str, sides: list[str], broken: bool = False) -> None:
        folder = forecast_dir / "versions" / version
        folder.mkdir(parents=True)
        if broken:
            (folder / "forecast.parquet").write_text("not parquet")
        else:
            forecast_frame(sides).to_parquet(folder / "forecast.parquet")
        (folder / "metadata.json").write_text(json.dumps({"version": version}))
        (forecast_dir / "current").write_text(version + "\n")

    publish("v1", ["sell", "sell", "sell"])
    source = ForecastSource(forecast_dir, reload_interval_s=10.0, clock_s=lambda: clock["s"])
    assert source.refresh(force=True) and source.version == "v1"
    assert source.side_at(T0 + MINUTE) is Side.sell

    publish("v2", ["buy", "buy", "buy"])
    clock["s"] = 5.0
    assert not source.refresh() and source.version == "v1"  # not due yet
    clock["s"] = 11.0
    assert source.refresh() and source.version == "v2"
    assert source.side_at(T0 + MINUTE + 30_000) is Side.buy

    publish("v3", ["sell"], broken=True)
    clock["s"] = 30.0
    assert not source.refresh() and source.version == "v2", "a broken version is not loaded"
