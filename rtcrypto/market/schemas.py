"""Kafka record schemas (data contracts of DESIGN.md), version 1.

Every record is a JSON object with ``schema_version``, ``type``, ``symbol``, ``ts_event_ms``
(exchange event time, UTC milliseconds) and ``key`` (the Kafka message key, which makes a replay
idempotent). Prices and sizes travel as decimal strings, exactly as the exchange sent them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

SCHEMA_VERSION = 1

Side = Literal["bid", "ask"]
ChangeReason = Literal["initial", "place", "cancel", "trade"]


def _json_bytes(record: Any) -> bytes:
    # orjson serialises dataclass instances natively, ~10x faster than json + asdict: this is the
    # ingest's hot path (one call per order-book change).
    return orjson.dumps(record)


@dataclass(slots=True)
class BookChange:
    """One order-book level change (``gemini.orderbook.v1``, ``type == "change"``).

    ``remaining`` is the level's new total size; ``delta`` the signed change from its previous size.
    """

    symbol: str
    side: Side
    price: str
    remaining: str
    delta: str
    reason: str
    event_id: int
    event_index: int  # position of this change inside the exchange message
    socket_sequence: int
    ts_event_ms: int
    ts_receive_ms: int
    type: Literal["change"] = "change"
    schema_version: int = SCHEMA_VERSION
    key: str = field(default="")

    def __post_init__(self) -> None:
        if not self.key:
            self.key = f"{self.symbol}:{self.event_id}:{self.event_index}"

    def to_bytes(self) -> bytes:
        return _json_bytes(self)


@dataclass(slots=True)
class Trade:
    """One trade (``gemini.trades.v1``). ``maker_side`` is the resting order's side."""

    symbol: str
    trade_id: int
    price: str
    amount: str
    maker_side: str
    event_id: int
    socket_sequence: int
    ts_event_ms: int
    ts_receive_ms: int
    type: Literal["trade"] = "trade"
    schema_version: int = SCHEMA_VERSION
    key: str = field(default="")

    def __post_init__(self) -> None:
        if not self.key:
            self.key = f"{self.symbol}:trade:{self.trade_id}"

    def to_bytes(self) -> bytes:
        return _json_bytes(self)


@dataclass(slots=True)
class TimeTick:
    """Event-time progress for a quiet market (``gemini.orderbook.v1``, ``type == "tick"``).

    Spark's watermark only advances with event time; ticks close windows when no book change
    arrives. They carry no book data and are ignored by every aggregate.
    """

    symbol: str
    ts_event_ms: int
    ts_receive_ms: int
    source: str  # "heartbeat" | "clock"
    type: Literal["tick"] = "tick"
    schema_version: int = SCHEMA_VERSION
    key: str = field(default="")

    def __post_init__(self) -> None:
        if not self.key:
            self.key = f"{self.symbol}:tick:{self.ts_event_ms}"

    def to_bytes(self) -> bytes:
        return _json_bytes(self)


@dataclass(slots=True)
class BookDepth:
    """Depth of the maintained book at the end of a one-minute window (``type == "book_depth"``).

    ``ts_event_ms`` is the last millisecond of the window, so Spark files it in that window.
    Volumes are in base currency (BTC) within ``band_pct`` percent of the mid price.
    """

    symbol: str
    window_start_ms: int
    ts_event_ms: int
    ts_receive_ms: int
    mid_price: float | None
    bid_depth: float
    ask_depth: float
    depth_imbalance: float | None
    band_pct: float
    type: Literal["book_depth"] = "book_depth"
    schema_version: int = SCHEMA_VERSION
    key: str = field(default="")

    def __post_init__(self) -> None:
        if not self.key:
            self.key = f"{self.symbol}:depth:{self.window_start_ms}"

    def to_bytes(self) -> bytes:
        return _json_bytes(self)


@dataclass(slots=True)
class DeadLetter:
    """A message that could not be processed (``deadletter.v1``), kept whole with the reason."""

    service: str
    reason: str
    raw: str
    source: str  # topic or URL the raw message came from
    ts_receive_ms: int
    type: Literal["deadletter"] = "deadletter"
    schema_version: int = SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        return _json_bytes(self)


@dataclass(slots=True)
class Heartbeat:
    """Liveness and progress of a service (``service.heartbeat.v1``), read by Airflow sensors."""

    service: str
    instance: str
    ts_ms: int
    processed: int
    last_event_ms: int | None
    lag_ms: int | None
    reconnects: int = 0
    gaps: int = 0
    dead_letters: int = 0
    last_error: str | None = None
    # conditions a person must act on (search spool full, credentials refused), shown by rtc status
    alerts: list[str] = field(default_factory=list)
    type: Literal["heartbeat"] = "heartbeat"
    schema_version: int = SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        return _json_bytes(self)
