"""Kafka record schemas (data contracts of DESIGN.md), version 1.

Every record is a JSON object with ``schema_version``, ``type``, ``symbol``, ``ts_event_ms``
(exchange event time, UTC milliseconds) and ``key`` (the Kafka message key, which makes a replay
idempotent). Prices and sizes travel as decimal strings, exactly as the exchange sent them.

``LiquidityMinute`` is written by the Spark job and read by the trader: both derive what they
write and accept from it through ``record_fields`` (names, types, nullability, units, order) and
``checked_values`` (validation of a decoded record against those fields).
"""

from __future__ import annotations

import typing
from collections.abc import Collection, Mapping
from dataclasses import MISSING, dataclass, field, fields
from functools import cache
from types import NoneType, UnionType
from typing import Any, Literal

import orjson

from rtcrypto.bounded import MAX_SAFE_INT, BoundsError, decimal_text, finite_float, safe_int

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


@dataclass(frozen=True, slots=True, kw_only=True)
class LiquidityMinute:
    """One symbol's one-minute liquidity window (``liquidity.minute.v1``), the Spark job's output.

    The field order is the order of the JSON object the job writes. Times are UTC milliseconds
    (``window_end_ms`` exclusive; ``ts_event_ms`` is the window's last millisecond, so the record
    lies in its window); money is in quote currency (USD), depths in base currency (BTC) within
    ``depth_band_pct`` percent of the mid. The depth fields come from the window's latest
    ``book_depth`` record (all null when it had none). ``emitted_at_ms`` is the time of the
    micro-batch that wrote the record, the only field a replay may change. Kafka key: ``key``.
    """

    schema_version: int = field(default=SCHEMA_VERSION, metadata={"unit": "version"})
    type: Literal["liquidity"] = "liquidity"
    key: str = field(metadata={"unit": "<symbol>:<window_start_ms>"})
    symbol: str
    window_start_ms: int = field(metadata={"unit": "UTC ms"})
    window_end_ms: int = field(metadata={"unit": "UTC ms, exclusive"})
    window_start: str = field(metadata={"unit": "ISO 8601, Z"})
    window_end: str = field(metadata={"unit": "ISO 8601, Z"})
    ts_event_ms: int = field(metadata={"unit": "UTC ms"})
    # sum of price x remaining (USD) over the window's change events, per side
    bid_price_weighted_volume: float = field(metadata={"unit": "USD"})
    ask_price_weighted_volume: float = field(metadata={"unit": "USD"})
    liquidity_ratio: float | None = field(metadata={"unit": "ask / bid, null when bid is 0"})
    event_count: int = field(metadata={"unit": "change events"})
    mid_price: float | None = field(metadata={"unit": "USD"})
    bid_depth: float | None = field(metadata={"unit": "BTC"})
    ask_depth: float | None = field(metadata={"unit": "BTC"})
    depth_imbalance: float | None = field(metadata={"unit": "(bid - ask) / (bid + ask)"})
    depth_band_pct: float | None = field(metadata={"unit": "percent of mid"})
    emitted_at_ms: int = field(metadata={"unit": "UTC ms"})

    def to_bytes(self) -> bytes:
        return _json_bytes(self)


@dataclass(frozen=True, slots=True)
class RecordField:
    """One field of a record contract: its JSON name, value type and unit."""

    name: str
    kind: type  # int, float or str (bool is never an int here)
    nullable: bool
    required: bool  # no default in the contract: a writer must compute it
    default: Any  # the contract's default (None when there is none)
    unit: str = ""
    choices: tuple[str, ...] = ()  # the allowed values of a ``Literal`` field


@cache
def record_fields(contract: type) -> tuple[RecordField, ...]:
    """The fields of a record dataclass, in order (``int``, ``float``, ``str``, ``Literal`` of
    strings, each optionally ``| None``); raises ``TypeError`` on any other annotation."""
    hints = typing.get_type_hints(contract)
    return tuple(_record_field(item, hints[item.name]) for item in fields(contract))


def _record_field(item: Any, hint: Any) -> RecordField:
    members = typing.get_args(hint) if isinstance(hint, UnionType) else (hint,)
    nullable = NoneType in members
    kinds = [member for member in members if member is not NoneType]
    kind = kinds[0] if len(kinds) == 1 else None
    choices: tuple[str, ...] = ()
    if typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        kind = str
    if kind not in (int, float, str) or not all(isinstance(value, str) for value in choices):
        raise TypeError(f"record field {item.name}: unsupported annotation {hint!r}")
    has_default = item.default is not MISSING
    return RecordField(
        name=item.name,
        kind=kind,
        nullable=nullable,
        required=not has_default,
        default=item.default if has_default else None,
        unit=item.metadata.get("unit", ""),
        choices=choices,
    )


def checked_values(
    record: Mapping[str, Any],
    contract: type,
    *,
    skip: Collection[str] = (),
    max_text_chars: int = 256,
) -> dict[str, Any]:
    """The contract's fields present in ``record`` (decoded JSON), each checked against its type:
    ints within ``[0, 2^63-1]`` (not bool, not float), floats finite (a number or a bounded
    decimal string), strings at most ``max_text_chars`` long (and one of a ``Literal``'s values),
    null only where the contract allows it. Absent fields and unknown keys are left to the
    reader, and so are the names in ``skip`` (the reader checks those itself). Raises
    ``BoundsError`` naming the field."""
    values: dict[str, Any] = {}
    for spec in record_fields(contract):
        if spec.name in skip or spec.name not in record:
            continue
        value = record[spec.name]
        if value is None:
            if not spec.nullable:
                raise BoundsError(f"{spec.name} is null")
            values[spec.name] = None
        elif spec.kind is int:
            values[spec.name] = safe_int(value, spec.name, high=MAX_SAFE_INT)
        elif spec.kind is float:
            values[spec.name] = _checked_float(value, spec.name)
        else:
            values[spec.name] = _checked_text(value, spec, max_text_chars)
    return values


def _checked_float(value: Any, name: str) -> float:
    if isinstance(value, str):
        return float(decimal_text(value, name))
    return finite_float(value, name)


def _checked_text(value: Any, spec: RecordField, max_chars: int) -> str:
    if not isinstance(value, str) or len(value) > max_chars:
        raise BoundsError(f"{spec.name} is not a string of at most {max_chars} characters")
    if spec.choices and value not in spec.choices:
        raise BoundsError(f"{spec.name} is {value[:32]!r}, not one of {list(spec.choices)}")
    return value
