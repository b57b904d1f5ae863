"""The adapter's order-events parser (``rtcrypto.exchange.order_events``): Gemini's documented
examples parse to what they say; any other input is an ``OrderEventParseError`` (property tests),
never another exception; the stream's per-frame handler dead-letters what does not parse."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcrypto.exchange.order_events import (
    EventsHeartbeat,
    OrderEventParseError,
    OrderEventsStream,
    SubscriptionAck,
    handshake_headers,
    order_events_url,
    parse_order_events_frame,
)
from rtcrypto.exchange.signing import decode_payload, sign

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gemini" / "websocket"
EXAMPLES = sorted(p.name for p in FIXTURES.glob("order_events_*.json"))


def example(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_documented_example_parses(name: str) -> None:
    message = parse_order_events_frame((FIXTURES / name).read_text())
    documented = example(name)
    if isinstance(documented, list):
        assert isinstance(message, tuple) and len(message) == len(documented)
        for event, body in zip(message, documented, strict=True):
            assert event.event_type == body["type"] and event.order_id == body["order_id"]
            assert event.symbol == body["symbol"] and event.ts_ms == body["timestampms"]
            assert event.price == Decimal(body["price"])
            assert event.socket_sequence == body["socket_sequence"]
            assert event.raw == body
    elif documented["type"] == "heartbeat":
        assert message == EventsHeartbeat(1547742998508, 31, "b8biknoqppr32kc7gfgg", 37)
    else:
        assert isinstance(message, SubscriptionAck)
        assert (message.account_id, message.event_type_filter) == (5365, ("fill", "closed"))


def test_a_fill_event_carries_its_trade_and_fee() -> None:
    (event,) = parse_order_events_frame(json.dumps(example("order_events_fill.json")))  # type: ignore[misc]
    assert event.fill is not None
    assert (event.fill.trade_id, event.fill.liquidity) == ("109964597", "Maker")
    assert (event.fill.price, event.fill.amount, event.fill.fee) == (
        Decimal("3592.00"),
        Decimal("1"),
        Decimal("8.98"),
    )
    assert event.fill.fee_currency == "USD" and not event.is_final
    (closed,) = parse_order_events_frame(json.dumps(example("order_events_closed.json")))  # type: ignore[misc]
    assert closed.is_final and closed.is_cancelled


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("", "not bounded JSON"),
        ("[]", "empty array"),
        ('{"type":"update"}', "unknown message type"),
        ('{"result":"error","reason":"InvalidSignature"}', "InvalidSignature"),
        ('[{"type":"accepted"}]', "order_id"),
        ('[{"type":"fill"}]', "fill must be an object"),
        ('{"type":"heartbeat","timestampms":NaN}', "not bounded JSON"),
        ("[" * 5000 + "]" * 5000, "not bounded JSON"),
    ],
)
def test_bad_frames_say_what_is_wrong(frame: str, reason: str) -> None:
    with pytest.raises(OrderEventParseError, match=reason):
        parse_order_events_frame(frame)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=20,
)


@given(JSON)
@settings(max_examples=300)
def test_any_json_parses_or_is_a_parse_error(value: Any) -> None:
    with contextlib.suppress(OrderEventParseError):
        parse_order_events_frame(json.dumps(value))


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_a_parse_error(data: bytes) -> None:
    with contextlib.suppress(OrderEventParseError):
        parse_order_events_frame(data)


@given(
    st.sampled_from(EXAMPLES),
    st.sampled_from(["order_id", "timestampms", "price", "is_live", "symbol", "fill", "type"]),
    JSON,
)
@settings(max_examples=300)
def test_a_documented_event_with_one_field_replaced_parses_or_is_refused(
    name: str, field: str, value: Any
) -> None:
    body = example(name)
    if not isinstance(body, list):
        return
    body[0][field] = value
    try:
        message = parse_order_events_frame(json.dumps(body))
    except OrderEventParseError:
        return
    assert isinstance(message, tuple) and message[0].raw[field] == value


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_the_stream_dead_letters_every_frame_it_cannot_parse(data: bytes) -> None:
    stream = OrderEventsStream("ws://127.0.0.1:9/v1/order/events", "key", "secret", int)
    stream._handle(data)
    try:
        message = parse_order_events_frame(data)
    except OrderEventParseError as error:
        assert stream.dead_letter_count == 1 and stream.dead_letters[0].reason == str(error)
        return
    assert stream.dead_letter_count == 0
    if isinstance(message, tuple):
        assert stream.drain() == list(message)


def test_the_handshake_is_signed_like_a_private_request() -> None:
    headers = dict(line.split(": ", 1) for line in handshake_headers("k", "s3cret", 1234))
    assert decode_payload(headers["X-GEMINI-PAYLOAD"]) == {
        "request": "/v1/order/events",
        "nonce": 1234,
    }
    assert headers["X-GEMINI-SIGNATURE"] == sign(headers["X-GEMINI-PAYLOAD"], "s3cret")
    assert order_events_url("https://api.gemini.com", ("BTCUSD",)) == (
        "wss://api.gemini.com/v1/order/events?symbolFilter=btcusd&heartbeat=true"
    )
    assert order_events_url("http://127.0.0.1:8765/").startswith("ws://127.0.0.1:8765/v1/order/")
