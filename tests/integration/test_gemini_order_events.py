"""Gemini's order-events websocket and v2 ``candles_1m``, served by the simulator's sandbox, read
over real websockets on loopback: raw (websocket-client, as any Gemini client would) and through
the ``gemini`` adapter's :class:`OrderEventsStream`, and journaled by the trader.

The simulator runs in-process replaying the real Gemini capture of ../shared/data
(``tests/integration/test_gemini_sandbox.py``'s ``Sandbox``); every message is checked against
Gemini's documented example of its type (``tests/fixtures/gemini/websocket/``: every documented
field, same JSON type).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from rtcrypto.config import Settings
from rtcrypto.exchange.gemini import GeminiAdapter
from rtcrypto.exchange.order_events import (
    OrderEventsStream,
    order_events_url,
    parse_order_events_frame,
)
from rtcrypto.exchange.paper import PaperExchange
from rtcrypto.exchange.signing import NonceSource, signed_headers
from rtcrypto.simulator import SimulatorOptions, start_simulator
from rtcrypto.trader.engine import parse_liquidity
from rtcrypto.trader.journal import read_journal
from rtcrypto.trader.order_events import OrderEventJournaler, build_order_events
from rtcrypto.trader.service import TraderService
from tests.helpers import GEMINI_CAPTURE, free_port
from tests.integration.test_gemini_conformance import assert_same_shape
from tests.integration.test_gemini_sandbox import (
    CENT,
    KEY,
    OTHER_KEY,
    OTHER_SECRET,
    SECRET,
    Sandbox,
    buy,
)
from tests.integration.test_trader_gemini_crash_windows import gemini_trader
from tests.simulator_harness import gemini_capture
from tests.unit.test_trader_engine import record

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gemini" / "websocket"
HEARTBEAT_S = 0.3
NONCE = NonceSource()  # one nonce sequence for every request of the key in this module


def example(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    server = Sandbox()
    server.running.simulator.sandbox.order_events.heartbeat_interval_s = HEARTBEAT_S
    yield server
    server.stop()


def adapter(sandbox: Sandbox) -> GeminiAdapter:
    return sandbox.adapter(nonce_source=NONCE)


def ws_url(sandbox: Sandbox, query: str = "") -> str:
    return f"ws://127.0.0.1:{sandbox.running.port}/v1/order/events{query}"


def connect(
    sandbox: Sandbox, query: str = "", secret: str = SECRET, nonce: int | None = None
) -> websocket.WebSocket:
    headers = signed_headers(KEY, secret, "/v1/order/events", NONCE() if nonce is None else nonce)
    return websocket.create_connection(ws_url(sandbox, query), header=headers, timeout=10)


def receive_until(
    ws: websocket.WebSocket, done: Callable[[list[Any]], bool], limit_s: float = 15
) -> list[Any]:
    messages: list[Any] = []
    deadline = time.monotonic() + limit_s
    while not done(messages):
        assert time.monotonic() < deadline, f"gave up waiting; got {messages}"
        messages.append(json.loads(ws.recv()))
    return messages


def events_of(messages: list[Any], order_id: str | None = None) -> list[dict[str, Any]]:
    """The order events (array elements) of ``messages``, of one order if given."""
    events = [event for message in messages if isinstance(message, list) for event in message]
    return [e for e in events if order_id is None or e["order_id"] == order_id]


def private_post(sandbox: Sandbox, path: str, params: dict[str, Any]) -> Any:
    headers = signed_headers(KEY, SECRET, path, NONCE(), params)
    response = requests.post(sandbox.url + path, headers=headers, timeout=10)
    return response.status_code, response.json()


def test_an_ioc_fill_is_accepted_filled_with_its_fee_and_closed(sandbox: Sandbox) -> None:
    ws = connect(sandbox, "?heartbeat=false")
    ack = json.loads(ws.recv())
    assert_same_shape(ack, example("order_events_subscription_ack.json"))
    assert ack["type"] == "subscription_ack" and ack["eventTypeFilter"] == []

    gemini = adapter(sandbox)
    top = gemini.top_of_book("btcusd")
    status = gemini.place_order(
        buy("rtc-events-ioc", "0.25", (top.ask * Decimal("1.001")).quantize(CENT))
    )
    order_id = status.order_id
    messages = receive_until(ws, lambda got: any(e["type"] == "closed" for e in events_of(got)))
    events = events_of(messages, order_id)
    kinds = [event["type"] for event in events]
    assert kinds[0] == "accepted" and kinds[-1] == "closed"
    assert set(kinds[1:-1]) == {"fill"} and len(kinds) >= 3
    for event in events:
        assert_same_shape([event], example(f"order_events_{event['type']}.json"))
        assert event["client_order_id"] == "rtc-events-ioc"
        assert event["behavior"] == "immediate-or-cancel"
    sequences = [event["socket_sequence"] for event in events_of(messages)]
    assert sequences == list(range(len(sequences))), "socket_sequence from 0, no gap"

    # the fills are the exchange's own trades: ids, prices and fees equal /v1/mytrades'
    _, trades = private_post(sandbox, "/v1/mytrades", {"symbol": "btcusd"})
    mine = {str(t["tid"]): t for t in trades if t["order_id"] == order_id}
    fills = [event["fill"] for event in events if event["type"] == "fill"]
    assert {fill["trade_id"] for fill in fills} == set(mine)
    for fill in fills:
        trade = mine[fill["trade_id"]]
        assert (fill["price"], fill["amount"], fill["fee"]) == (
            trade["price"],
            trade["amount"],
            trade["fee_amount"],
        )
        assert fill["liquidity"] == "Taker" and fill["fee_currency"] == "USD"
    assert sum(Decimal(fill["fee"]) for fill in fills) == status.fee_usd
    closed = events[-1]
    assert Decimal(closed["executed_amount"]) == Decimal("0.25") and closed["is_live"] is False
    # and the adapter's parser takes every frame
    for message in messages:
        parse_order_events_frame(json.dumps(message))
    ws.close()


def test_a_resting_order_is_booked_listed_at_connect_and_cancelled(sandbox: Sandbox) -> None:
    gemini = adapter(sandbox)
    ws = connect(sandbox, "?heartbeat=false")
    assert json.loads(ws.recv())["type"] == "subscription_ack"
    top = gemini.top_of_book("btcusd")
    price = (top.bid * Decimal("0.9")).quantize(CENT)
    code, body = private_post(
        sandbox,
        "/v1/order/new",
        {"client_order_id": "rtc-events-rest", "symbol": "btcusd", "amount": "0.01",
         "price": str(price), "side": "buy", "type": "exchange limit"},
    )  # fmt: skip
    assert code == 200 and body["is_live"] is True
    order_id = body["order_id"]
    messages = receive_until(ws, lambda got: any(e["type"] == "booked" for e in events_of(got)))
    assert [e["type"] for e in events_of(messages, order_id)] == ["accepted", "booked"]
    assert_same_shape(messages[-1], example("order_events_booked.json"))

    # a new subscriber gets the live order as "initial" first
    second = connect(sandbox, "?heartbeat=false")
    ack, initial = json.loads(second.recv()), json.loads(second.recv())
    assert ack["type"] == "subscription_ack"
    assert_same_shape(initial, example("order_events_initial.json"))
    assert [(e["type"], e["order_id"]) for e in initial] == [("initial", order_id)]
    second.close()

    gemini.cancel_order(order_id)
    messages = receive_until(ws, lambda got: any(e["type"] == "closed" for e in events_of(got)))
    cancelled, closed = events_of(messages, order_id)
    assert_same_shape([cancelled], example("order_events_cancelled.json"))
    assert_same_shape([closed], example("order_events_closed.json"))
    assert (cancelled["type"], cancelled["reason"], cancelled["is_cancelled"]) == (
        "cancelled",
        "Requested",
        True,
    )
    assert closed["type"] == "closed" and closed["is_live"] is False
    ws.close()


def test_a_refused_order_is_rejected_with_gemini_reason(sandbox: Sandbox) -> None:
    ws = connect(sandbox, "?heartbeat=false&eventTypeFilter=rejected")
    assert json.loads(ws.recv())["eventTypeFilter"] == ["rejected"]
    code, body = private_post(
        sandbox,
        "/v1/order/new",
        {"client_order_id": "rtc-events-bad", "symbol": "btcusd", "amount": "0.01",
         "price": "100.001", "side": "buy", "type": "exchange limit"},
    )  # fmt: skip
    assert (code, body["reason"]) == (400, "InvalidPrice")
    (rejected,) = json.loads(ws.recv())
    assert_same_shape([rejected], example("order_events_rejected.json"))
    assert (rejected["type"], rejected["reason"], rejected["client_order_id"]) == (
        "rejected",
        "InvalidPrice",
        "rtc-events-bad",
    )
    ws.close()


def test_filters_keep_only_the_asked_event_types_and_symbols(sandbox: Sandbox) -> None:
    closed_only = connect(sandbox, "?heartbeat=false&eventTypeFilter=closed&symbolFilter=btcusd")
    other_symbol = connect(sandbox, "?heartbeat=false&symbolFilter=ethusd")
    other_session = connect(sandbox, "?heartbeat=false&apiSessionFilter=UI")
    for ws in (closed_only, other_symbol, other_session):
        assert json.loads(ws.recv())["type"] == "subscription_ack"
    gemini = adapter(sandbox)
    top = gemini.top_of_book("btcusd")
    gemini.place_order(
        buy("rtc-events-filter", "0.01", (top.ask * Decimal("1.001")).quantize(CENT))
    )
    (closed,) = json.loads(closed_only.recv())
    assert closed["type"] == "closed" and closed["client_order_id"] == "rtc-events-filter"
    for quiet in (other_symbol, other_session):  # not btcusd; not the website's (UI) orders
        quiet.settimeout(HEARTBEAT_S * 3)
        with pytest.raises(websocket.WebSocketTimeoutException):
            quiet.recv()  # and no heartbeats asked
    for ws in (closed_only, other_symbol, other_session):
        ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(sandbox, "?eventTypeFilter=everything")
    assert refused.value.status_code == 400 and b"eventTypeFilter" in refused.value.resp_body


def test_heartbeats_carry_sequence_trace_id_and_socket_sequence(sandbox: Sandbox) -> None:
    ws = connect(sandbox)
    ack = json.loads(ws.recv())
    beats = receive_until(ws, lambda got: len(got) >= 2, limit_s=HEARTBEAT_S * 20)
    for beat in beats:
        assert_same_shape(beat, example("order_events_heartbeat.json"))
        assert beat["type"] == "heartbeat"
        assert ack["subscriptionId"].endswith(beat["trace_id"])
    assert [beat["sequence"] for beat in beats] == [0, 1]
    assert [beat["socket_sequence"] for beat in beats] == [0, 1]
    ws.close()


def test_a_wrong_secret_or_a_reused_nonce_is_refused_at_the_handshake(sandbox: Sandbox) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(sandbox, secret="not-the-secret")
    assert refused.value.status_code == 400
    assert json.loads(refused.value.resp_body)["reason"] == "InvalidSignature"
    used = NONCE()
    connect(sandbox, nonce=used).close()
    with pytest.raises(websocket.WebSocketBadStatusException) as reused:
        connect(sandbox, nonce=used)
    assert json.loads(reused.value.resp_body)["reason"] == "InvalidNonce"
    with pytest.raises(websocket.WebSocketBadStatusException) as unsigned:
        websocket.create_connection(ws_url(sandbox), timeout=10)
    assert json.loads(unsigned.value.resp_body)["reason"] == "MissingApikeyHeader"


def wait_for(condition: Callable[[], bool], limit_s: float = 15) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_the_adapter_stream_connects_parses_and_reconnects(sandbox: Sandbox) -> None:
    gemini = adapter(sandbox)
    stream = OrderEventsStream(
        order_events_url(sandbox.url, ("btcusd",)), KEY, SECRET, gemini.nonce,
        request_lock=gemini._send_lock, heartbeat_interval_s=HEARTBEAT_S, backoff_initial_s=0.1,
    ).start()  # fmt: skip
    try:
        wait_for(lambda: stream.connected)
        top = gemini.top_of_book("btcusd")
        gemini.place_order(
            buy("rtc-events-stream", "0.01", (top.ask * Decimal("1.001")).quantize(CENT))
        )
        events: list[Any] = []
        wait_for(lambda: events.extend(stream.drain()) or any(e.is_final for e in events))
        assert [e.event_type for e in events][0] == "accepted"
        fills = [e.fill for e in events if e.fill is not None]
        assert fills and all(fill.fee > 0 and fill.fee_currency == "USD" for fill in fills)
        assert stream.dead_letter_count == 0

        hub = sandbox.running.simulator.sandbox.order_events
        sandbox.call(hub.close_all())  # the exchange drops the socket
        wait_for(lambda: stream.connects >= 2 and stream.connected)
        assert gemini.balances()["usd"] > 0, "REST nonces still above the handshakes'"
    finally:
        stream.stop()
    assert not stream.connected

    wrong = OrderEventsStream(
        order_events_url(sandbox.url), KEY, "not-the-secret", NonceSource(), backoff_initial_s=0.1
    ).start()
    try:
        wait_for(lambda: wrong.last_error is not None)
        assert not wrong.connected and "InvalidSignature" in str(wrong.last_error)
        assert SECRET not in repr(wrong) and "not-the-secret" not in str(wrong.last_error)
    finally:
        wrong.stop()


class UnusedProducer:
    """The service's Kafka producer, not reached by these calls (no record is consumed)."""

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        raise AssertionError(f"nothing is sent to Kafka here, got a record for {topic}")


def test_the_trader_journals_its_events_and_trades_with_the_stream_down(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second account (no BTC yet): the trader buys with the stream up, sells with it down."""
    monkeypatch.setenv("RTC_HOME", str(tmp_path))
    monkeypatch.setenv("RTC_TRADING_MODE", "sandbox")
    monkeypatch.setenv("RTC_GEMINI_REST_URL", sandbox.url)
    monkeypatch.setenv("RTC_GEMINI_API_KEY", OTHER_KEY)
    monkeypatch.setenv("RTC_GEMINI_API_SECRET", OTHER_SECRET)
    settings = Settings()
    gemini = sandbox.adapter(OTHER_KEY, OTHER_SECRET)
    trader = gemini_trader(gemini, tmp_path / "up" / "journal.jsonl")
    stream = build_order_events(settings, gemini)
    assert stream is not None
    stream.heartbeat_interval_s = HEARTBEAT_S
    journaler = OrderEventJournaler(stream, trader).start()
    service = TraderService(settings, trader, UnusedProducer(), order_events=journaler)
    try:
        wait_for(lambda: journaler.connected)
        outcome = trader.on_liquidity(parse_liquidity(record(1)))  # forecast buy
        assert outcome.action == "order", outcome.reason
        assert outcome.client_order_id is not None
        cid = outcome.client_order_id
        # the service's loop pumps the events into the journal between Kafka polls
        wait_for(lambda: service._pump_order_events() or (
            read_journal(tmp_path / "up" / "journal.jsonl").final_event(cid) is not None
        ))  # fmt: skip
    finally:
        journaler.stop()
        trader.journal.close()
    state = read_journal(tmp_path / "up" / "journal.jsonl")
    kinds = [event["type"] for event in state.exchange_events[cid]]
    assert kinds[0] == "accepted" and kinds[-1] == "closed" and "fill" in kinds
    fees = sum(Decimal(e["fill"]["fee"]) for e in state.exchange_events[cid] if e["type"] == "fill")
    assert fees == state.results[cid].fee_usd, "the events' fees are the booked fee"
    assert trader.ledger is not None and trader.ledger.balances.btc > 0

    # the stream down (nothing listens at its URL): the trader trades as before, by REST
    down = OrderEventsStream(
        f"ws://127.0.0.1:{free_port()}/v1/order/events", OTHER_KEY, OTHER_SECRET, gemini.nonce,
        backoff_initial_s=0.1,
    )  # fmt: skip
    trader = gemini_trader(gemini, tmp_path / "down" / "journal.jsonl")
    journaler = OrderEventJournaler(down, trader).start()
    try:
        wait_for(lambda: down.last_error is not None)
        outcome = trader.on_liquidity(parse_liquidity(record(2)))  # forecast sell
        assert outcome.action == "order" and not journaler.connected, outcome.reason
        assert journaler.pump().journaled == 0
    finally:
        journaler.stop()
        trader.journal.close()
    state = read_journal(tmp_path / "down" / "journal.jsonl")
    assert outcome.client_order_id in state.results and state.exchange_events == {}
    assert state.results[outcome.client_order_id].executed_quantity > 0


def test_no_stream_for_paper_or_when_switched_off(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTC_GEMINI_API_KEY", KEY)
    monkeypatch.setenv("RTC_GEMINI_API_SECRET", SECRET)
    gemini = adapter(sandbox)
    stream = build_order_events(Settings(), gemini)
    assert stream is not None and stream.url.startswith(f"ws://127.0.0.1:{sandbox.running.port}/")
    assert "symbolFilter=btcusd" in stream.url
    paper = PaperExchange(tmp_path / "paper.json", gemini.top_of_book, usd=Decimal(1000))
    assert build_order_events(Settings(), paper) is None
    monkeypatch.setenv("RTC_GEMINI_ORDER_EVENTS", "false")
    assert build_order_events(Settings(), gemini) is None


# --- market data v2 candles_1m ---------------------------------------------------------------


def test_candles_1m_updates_match_the_rest_candles() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    options = SimulatorOptions(capture_paths=(GEMINI_CAPTURE,), port=0, speed=100)
    running = asyncio.run_coroutine_threadsafe(
        start_simulator(options, gemini_capture()), loop
    ).result(30)
    base = f"127.0.0.1:{running.port}"
    try:
        ws = websocket.create_connection(f"ws://{base}/v2/marketdata", timeout=10)
        ws.send(json.dumps({"type": "subscribe",
                            "subscriptions": [{"name": "candles_1m", "symbols": ["BTCUSD"]}]}))  # fmt: skip
        frames: list[dict[str, Any]] = []
        rest: list[list[float]] = []
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, f"streamed {frames}, REST {rest}"
            message = json.loads(ws.recv())
            if message.get("type") == "candles_1m_updates":
                assert_same_shape(message, example("candles_1m_updates.json"))
                frames.append(message)
            status = requests.get(f"http://{base}/_sim/status", timeout=10).json()
            if not status["done"]:
                continue
            rest = requests.get(f"http://{base}/v2/candles/BTCUSD/1m", timeout=10).json()
            streamed = [row for frame in frames for row in frame["changes"]]
            if rest and {row[0] for row in rest} == {row[0] for row in streamed}:
                break
        ws.close()
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    streamed = [row for frame in frames for row in frame["changes"]]
    minutes = [row[0] for row in streamed]
    assert len(minutes) == len(set(minutes)), "no minute sent twice"
    assert len(frames) >= 3, "candles came as the replay completed minutes, not at once"
    by_minute = {row[0]: row for row in rest}
    assert streamed and all(by_minute[row[0]] == row for row in streamed)
    assert set(by_minute) == set(minutes), "every REST minute was streamed"
    assert all(frame["symbol"] == "BTCUSD" for frame in frames)


def test_a_silent_socket_is_not_connected_and_is_replaced(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """The exchange keeps the socket open but sends nothing (no heartbeats): after three missed
    heartbeats the stream says it is not connected and opens a new socket."""
    hub = sandbox.running.simulator.sandbox.order_events
    hub.heartbeat_interval_s = 3600.0
    gemini = adapter(sandbox)
    stream = OrderEventsStream(
        order_events_url(sandbox.url), KEY, SECRET, gemini.nonce,
        request_lock=gemini._send_lock, heartbeat_interval_s=0.2, backoff_initial_s=0.1,
    ).start()  # fmt: skip
    try:
        wait_for(lambda: stream.connects >= 1 and stream.connected)
        wait_for(lambda: not stream.connected, limit_s=5)
        wait_for(lambda: stream.connects >= 2, limit_s=5)
        assert any("no heartbeat for" in record.getMessage() for record in caplog.records)
    finally:
        stream.stop()
        hub.heartbeat_interval_s = HEARTBEAT_S
