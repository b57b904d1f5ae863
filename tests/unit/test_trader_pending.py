"""An order whose outcome is unknown stays pending and is reconciled, never abandoned (issue 10:
a 2xx to ``order/new`` with a body the parser rejected was marked abandoned and its fill lost)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from rtcrypto.exchange.base import (
    ExchangeError,
    InsufficientFundsError,
    OrderStateUnknownError,
    OrderStatus,
)
from rtcrypto.exchange.paper import PaperExchange
from rtcrypto.trader.engine import order_refused, parse_liquidity
from rtcrypto.trader.journal import OrderJournal, read_journal
from rtcrypto.trading.order_types import OrderRequest
from tests.unit.test_trader_engine import Book, ListRecorder, make_trader, record


class GarbledAnswers(PaperExchange):
    """The paper exchange fills the order, then its first answer is lost on the way back."""

    error: ExchangeError | None = None

    def place_order(self, order: OrderRequest) -> OrderStatus:
        status = super().place_order(order)
        error, self.error = self.error, None
        if error is not None:
            raise error
        return status


@pytest.mark.parametrize(
    "error",
    [
        ExchangeError("gemini: unexpected order object (KeyError)", status=200),
        ExchangeError("gemini /v1/order/new: HTTP 200 answer is not JSON", status=200),
        OrderStateUnknownError("2xx with an unreadable body", reason="UnreadableAnswer"),
        ExchangeError("no status at all"),
    ],
)
def test_an_order_with_an_unreadable_answer_stays_pending_and_its_fill_is_reconciled(
    tmp_path: Path, error: ExchangeError
) -> None:
    recorder = ListRecorder()
    trader = make_trader(tmp_path, ["sell", "buy", "sell"], Book(), recorder=recorder)
    garbled = GarbledAnswers(tmp_path / "paper.json", Book(), usd=Decimal(0), clock_ms=lambda: 0)
    garbled.error = error
    trader.exchange = garbled
    outcome = trader.on_liquidity(parse_liquidity(record(1)))
    assert outcome.action == "skip" and outcome.client_order_id is not None
    state = trader.journal.state
    assert state.abandoned == {} and len(state.pending()) == 1
    assert trader.ledger is not None and trader.ledger.balances.btc == 0

    trader.on_liquidity(parse_liquidity(record(2)))  # the next minute reconciles first
    assert state.pending() == [] and state.abandoned == {}
    bought = state.results[outcome.client_order_id]
    assert bought.executed_quantity > 0, "the fill is found"
    (sold,) = [s for cid, s in state.results.items() if cid != outcome.client_order_id]
    assert sold.executed_quantity == bought.executed_quantity, "the ledger knew what to sell"
    assert len(garbled._orders) == 2, "the sell of minute 2 followed; the buy was not re-sent"
    assert len(recorder.items["order"]) == len(recorder.items["fill"]) == 2, "both are indexed"


def test_refusals_are_still_abandoned(tmp_path: Path) -> None:
    trader = make_trader(tmp_path, ["sell", "buy"], Book())

    class Refusing(PaperExchange):
        def place_order(self, order: OrderRequest) -> OrderStatus:
            raise InsufficientFundsError("no", reason="InsufficientFunds", status=406)

    trader.exchange = Refusing(tmp_path / "p2.json", Book(), usd=Decimal(10000))
    outcome = trader.on_liquidity(parse_liquidity(record(1)))
    assert "refused" in outcome.reason
    assert len(trader.journal.state.abandoned) == 1 and trader.journal.state.pending() == []


def test_which_errors_count_as_refusals() -> None:
    assert order_refused(ExchangeError("bad", reason="Whatever", status=400))
    assert order_refused(InsufficientFundsError("paper: no"))
    assert not order_refused(ExchangeError("body", status=200))
    assert not order_refused(ExchangeError("unknown"))
    assert not order_refused(OrderStateUnknownError("x", status=200))


class Invisible(GarbledAnswers):
    """Gemini acknowledged the order (2xx) but does not list it yet (eventual consistency)."""

    hidden = True

    def order_status(self, client_order_id: str) -> OrderStatus | None:
        return None if self.hidden else super().order_status(client_order_id)


def test_an_acknowledged_order_the_exchange_does_not_list_yet_is_never_abandoned(
    tmp_path: Path,
) -> None:
    trader = make_trader(tmp_path, ["sell", "buy", "buy", "buy"], Book())
    exchange = Invisible(tmp_path / "paper.json", Book(), usd=Decimal(0), clock_ms=lambda: 0)
    exchange.error = OrderStateUnknownError("2xx, body cut", reason="UnreadableAnswer", status=200)
    trader.exchange = exchange
    cid = trader.on_liquidity(parse_liquidity(record(1))).client_order_id
    assert cid is not None and cid in trader.journal.state.acknowledged
    trader.on_liquidity(parse_liquidity(record(2)))  # reconciles first: not listed yet
    state = trader.journal.state
    assert state.abandoned == {}, "acknowledged: never abandoned"
    assert [s.request.client_order_id for s in state.pending()] == [cid]
    trader.journal.close()
    reread = read_journal(tmp_path / "journal.jsonl")
    assert reread.acknowledged == state.acknowledged and reread.abandoned == {}
    trader.journal = OrderJournal(tmp_path / "journal.jsonl")
    exchange.hidden = False
    trader.resolve_pending()
    assert trader.journal.state.pending() == []
    assert trader.journal.state.results[cid].executed_quantity > 0
