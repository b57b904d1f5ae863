"""The journal's ``exchange_event`` entries (Gemini order events): kept in order per
``client_order_id`` across a reopen, deduplicated by ``event_id`` in the state, the final one
found, and nothing else of the state changed (pending orders stay pending until a ``result``)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from rtcrypto.trader.journal import OrderJournal, SentOrder, read_journal
from rtcrypto.trading.order_types import OrderRequest
from rtcrypto.trading.strategy import Side

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gemini" / "websocket"


def event(name: str, **changes: object) -> dict[str, object]:
    (body,) = json.loads((FIXTURES / f"order_events_{name}.json").read_text())
    return {**body, **changes}


def test_exchange_events_are_an_audit_trail_that_leaves_the_orders_alone(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = OrderJournal(path, mode="sandbox", venue="127.0.0.1:8765")
    journal.open_account(Decimal(100), Decimal(0), "sandbox", 1)
    request = OrderRequest("rtc-v1-60000-buy", "btcusd", Side.buy, Decimal("0.01"), Decimal(60000))
    journal.record_sent(SentOrder(request, "v1", 60_000, 2))
    cid = request.client_order_id
    journal.record_exchange_event(cid, event("accepted", client_order_id=cid))
    journal.record_exchange_event(cid, event("fill", client_order_id=cid, event_id="109964598"))
    assert journal.state.final_event(cid) is None
    journal.record_exchange_event(cid, event("closed", client_order_id=cid))
    journal.close()

    state = read_journal(path)
    assert [e["type"] for e in state.exchange_events[cid]] == ["accepted", "fill", "closed"]
    assert state.exchange_event_ids == {"109964530", "109964598", "109964532"}
    final = state.final_event(cid)
    assert final is not None and final["type"] == "closed"
    assert [sent.request.client_order_id for sent in state.pending()] == [cid]
    assert state.results == {} and state.abandoned == {}

    reopened = OrderJournal(path, mode="sandbox", venue="127.0.0.1:8765")
    assert reopened.state.exchange_events == state.exchange_events
    reopened.close()
