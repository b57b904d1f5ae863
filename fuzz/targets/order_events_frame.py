"""Fuzz target: one frame of Gemini's order-events websocket, through the adapter's parser
(:func:`rtcrypto.exchange.order_events.parse_order_events_frame`) and the stream's per-frame
handler (``OrderEventsStream._handle``, no network).

The parser may only return a message or raise ``OrderEventParseError``; the handler may raise
nothing: a bad frame becomes a dead letter with its reason, a good one queues its events. Seeds:
Gemini's documented examples (``tests/fixtures/gemini/websocket/``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from functools import cache

from fuzz.seeds import REPO
from rtcrypto.exchange.order_events import (
    OrderEventParseError,
    OrderEventsStream,
    parse_order_events_frame,
)

FIXTURES = REPO / "tests" / "fixtures" / "gemini" / "websocket"
logging.getLogger("exchange.order_events").setLevel(logging.CRITICAL)  # a warning per dead letter


@cache
def _stream() -> OrderEventsStream:
    return OrderEventsStream("ws://127.0.0.1:9/v1/order/events", "fuzz-key", "fuzz-secret", int)


def test_one_input(data: bytes) -> None:
    with contextlib.suppress(OrderEventParseError):
        parse_order_events_frame(data)
    stream = _stream()
    before = stream.dead_letter_count
    stream._handle(data)
    if stream.dead_letter_count == before and stream.events.empty() and not _control(data):
        raise AssertionError(f"frame neither queued nor dead-lettered: {data[:200]!r}")
    stream.drain()


def _control(data: bytes) -> bool:
    """A subscription ack or a heartbeat: handled without an event."""
    try:
        message = parse_order_events_frame(data)
    except OrderEventParseError:
        return False
    return not isinstance(message, tuple)


def seed_corpus() -> list[bytes]:
    """Every documented order-events example, compact and as stored."""
    seeds: list[bytes] = []
    for path in sorted(FIXTURES.glob("order_events_*.json")):
        text = path.read_text()
        seeds += [text.encode(), json.dumps(json.loads(text), separators=(",", ":")).encode()]
    return seeds
