"""The simulator's wire formats: Gemini market data v1 and v2 frames and REST bodies (pure).

v1 updates are serialized once per replayed message and shared by every connection; only the
``socket_sequence`` differs per connection, so a frame is ``V1_PREFIX + sequence + "," + tail``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rtcrypto.market.captures import TradePrint
from rtcrypto.market.captures.gemini_v1 import V1ChangeEvent

# Quote currencies, tried in order as symbol suffixes (BTCUSD -> BTC / USD).
QUOTE_CURRENCIES = ("USDT", "USDC", "GUSD", "DAI", "USD", "EUR", "GBP", "SGD", "AUD", "BTC", "ETH")


def _compact(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


def v1_update_tail(event_id: int, ts_ms: int, events: Sequence[dict[str, Any]]) -> str:
    """The part of a v1 ``update`` after ``"socket_sequence":N,`` (see :func:`v1_update`).

    ``timestamp`` is epoch seconds (``timestampms // 1000``), ``timestampms`` epoch milliseconds.
    """
    return (
        f'"eventId":{event_id},"timestamp":{ts_ms // 1000},"timestampms":{ts_ms},'
        f'"events":{_compact(list(events))}}}'
    )


def v1_update_tail_json(event_id: int, ts_ms: int, events_json: str) -> str:
    """As :func:`v1_update_tail` with the ``events`` array already serialized."""
    return (
        f'"eventId":{event_id},"timestamp":{ts_ms // 1000},"timestampms":{ts_ms},'
        f'"events":{events_json}}}'
    )


def v1_update(socket_sequence: int, tail: str) -> str:
    """A complete v1 ``update`` frame for one connection."""
    return f'{{"type":"update","socket_sequence":{socket_sequence},{tail}'


def v1_heartbeat(socket_sequence: int, ts_ms: int) -> str:
    """A v1 heartbeat; ``timestampms`` (the simulated exchange clock) is our extension."""
    return f'{{"type":"heartbeat","socket_sequence":{socket_sequence},"timestampms":{ts_ms}}}'


def v1_events_to_v2_changes(events: Sequence[V1ChangeEvent]) -> list[list[str]]:
    """v1 change events back to v2 ``[side, price, quantity]`` (bid -> buy, ask -> sell)."""
    return [
        ["buy" if event["side"] == "bid" else "sell", event["price"], event["remaining"]]
        for event in events
    ]


def v2_trade_payload(trade: TradePrint, ts_ms: int) -> dict[str, Any]:
    """A trade as Gemini v2 sends it; ``side`` is the taker's side, ``timestamp`` in ms."""
    return {
        "type": "trade",
        "symbol": trade.symbol,
        "event_id": trade.trade_id,
        "timestamp": ts_ms,
        "price": trade.price,
        "quantity": trade.quantity,
        "side": trade.taker_side,
    }


def v2_l2_updates(
    symbol: str, changes: list[list[str]], trades: Sequence[dict[str, Any]] = ()
) -> str:
    """A v2 ``l2_updates`` frame (the first one per subscription is the full book)."""
    return _compact(
        {"type": "l2_updates", "symbol": symbol, "changes": changes, "trades": list(trades)}
    )


def v2_l2_updates_json(symbol: str, changes_json: str, trades_json: str = "[]") -> str:
    """As :func:`v2_l2_updates` with ``changes`` and ``trades`` already serialized."""
    return (
        f'{{"type":"l2_updates","symbol":{_compact(symbol)},"changes":{changes_json},'
        f'"trades":{trades_json}}}'
    )


def v2_trade(trade: TradePrint, ts_ms: int) -> str:
    return _compact(v2_trade_payload(trade, ts_ms))


def v2_heartbeat(ts_ms: int) -> str:
    return f'{{"type":"heartbeat","timestamp":{ts_ms}}}'


def split_symbol(symbol: str) -> tuple[str, str]:
    """Base and quote currency of a Gemini symbol: ``BTCUSD`` -> ``("BTC", "USD")``."""
    upper = symbol.upper()
    for quote in QUOTE_CURRENCIES:
        if upper.endswith(quote) and len(upper) > len(quote):
            return upper[: -len(quote)], quote
    return upper[:3], upper[3:]


def invalid_symbol_body(symbol: str) -> dict[str, str]:
    """Gemini's error body for an unknown symbol (sent with HTTP 400)."""
    return {
        "result": "error",
        "reason": "InvalidSymbol",
        "message": f"Supplied value '{symbol}' is not a valid symbol",
    }


def upgrade_required_body() -> dict[str, str]:
    """The error body for a plain HTTP request to a websocket path (sent with HTTP 400)."""
    return {"result": "error", "reason": "BadRequest", "message": "websocket upgrade required"}
