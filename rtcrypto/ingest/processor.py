"""Gemini market data v1 frames -> Kafka records (pure: no sockets, no Kafka, no clock).

The service feeds every received frame to :class:`FrameProcessor` with its receive time and sends
whatever records come back. The processor keeps the order book (for the depth summary at each
minute's end), checks ``socket_sequence`` and turns bad input into dead letters instead of errors:
frames are parsed with :mod:`rtcrypto.bounded` (size and nesting caps, bounded decimals and
integers), event times must lie within ``event_time_window_ms`` of the reference time (the receive
time, or the feed's clock: :mod:`rtcrypto.ingest.event_window`), and any exception a frame raises
is dead-lettered with its reason: :meth:`FrameProcessor.on_frame` never raises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from rtcrypto import bounded
from rtcrypto.bounded import BoundsError
from rtcrypto.ingest.event_window import EventTimeReference
from rtcrypto.market.liquidity import WINDOW_MS, window_start_ms
from rtcrypto.market.orderbook import OrderBook
from rtcrypto.market.schemas import BookChange, BookDepth, DeadLetter, TimeTick, Trade

MAX_RAW_CHARS = (
    64_000  # dead letters keep the raw frame, cut to this size to stay under Kafka's limit
)
MAX_REASON_CHARS = 1_000  # a reason quotes the bad value: cut it
DEFAULT_EVENT_TIME_WINDOW_MS = 3_600_000  # the default of settings.event_time_window_s


class Route(StrEnum):
    """Which topic a record goes to (names resolved through settings.topics)."""

    orderbook = "orderbook"
    trades = "trades"
    deadletter = "deadletter"


@dataclass(frozen=True, slots=True)
class Outgoing:
    route: Route
    key: str | None
    value: bytes


@dataclass(slots=True)
class FrameResult:
    records: list[Outgoing] = field(default_factory=list)
    sequence_gap: tuple[int, int] | None = None  # (expected, received) when a gap was seen
    changes: int = 0
    trades: int = 0
    dead_letters: int = 0


class MalformedFrame(ValueError):
    """A frame or event that does not follow Gemini's v1 market data format."""


@dataclass(slots=True)
class FrameProcessor:
    """State of one v1 market data connection for one symbol."""

    symbol: str
    band_pct: float
    service: str = "ingest"
    source: str = ""
    event_time_window_ms: int = DEFAULT_EVENT_TIME_WINDOW_MS
    reference: EventTimeReference | None = None  # None: event times are checked against receive
    max_frame_bytes: int = bounded.MAX_FRAME_BYTES
    max_depth: int = bounded.MAX_DEPTH
    book: OrderBook = field(init=False)
    expected_sequence: int | None = None
    last_event_ms: int | None = None  # newest exchange time seen (events or heartbeats)
    last_receive_ms: int | None = None
    last_tick_ms: int | None = None
    depth_window_ms: int | None = None  # window whose end-of-window depth is still owed
    snapshot_pending: bool = True

    def __post_init__(self) -> None:
        self.book = OrderBook(self.symbol)

    # ----------------------------------------------------------------------------- connection
    def reset_connection(self) -> None:
        """A new connection starts at sequence 0 and sends a fresh snapshot of the book."""
        self.expected_sequence = None
        self.snapshot_pending = True

    # ----------------------------------------------------------------------------- frames
    def on_frame(self, raw: str | bytes, receive_ms: int) -> FrameResult:
        """Process one websocket text frame received at ``receive_ms`` (local UTC ms).

        Never raises: a frame that cannot be processed becomes a dead letter with the reason.
        """
        result = FrameResult()
        try:
            message = _parse_json_object(raw, self.max_frame_bytes, self.max_depth)
            sequence = message.get("socket_sequence")
            if sequence is not None:
                sequence = bounded.safe_int(sequence, "socket_sequence")
                self._check_sequence(sequence, result)
            kind = message.get("type")
            if kind == "update":
                self._on_update(message, receive_ms, result)
            elif kind == "heartbeat":
                self._on_heartbeat(message, receive_ms, result)
            else:
                raise MalformedFrame(f"unsupported message type {kind!r}")
        except (MalformedFrame, BoundsError) as error:
            self._dead_letter(result, str(error), raw, receive_ms)
        except Exception as error:  # noqa: BLE001 - a frame must never stop or loop the ingest
            reason = f"frame failed ({type(error).__name__}: {error})"
            self._dead_letter(result, reason, raw, receive_ms)
        self.last_receive_ms = receive_ms
        return result

    def clock_tick(self, now_ms: int) -> FrameResult:
        """Advance event time in a quiet market from the local clock.

        The exchange time is estimated as the newest exchange time plus the local time elapsed
        since it was received; nothing is emitted before the first exchange time is known.
        """
        result = FrameResult()
        if self.last_event_ms is None or self.last_receive_ms is None:
            return result
        estimate = self.last_event_ms + max(0, now_ms - self.last_receive_ms)
        self._emit_tick(estimate, now_ms, "clock", result)
        return result

    # ----------------------------------------------------------------------------- internals
    def _check_sequence(self, sequence: int, result: FrameResult) -> None:
        if self.expected_sequence is not None and sequence != self.expected_sequence:
            result.sequence_gap = (self.expected_sequence, sequence)
        self.expected_sequence = sequence + 1

    def _check_event_time(self, event_ms: object, receive_ms: int) -> int:
        """``timestampms`` as an int within the window of the reference time, else BoundsError."""
        ts_ms = bounded.safe_int(event_ms, "timestampms")
        if self.reference is None:
            return bounded.check_event_time(ts_ms, receive_ms, self.event_time_window_ms)
        for refresh in (False, True):  # a miss re-reads the feed's clock once, then it counts
            reference_ms = self.reference(receive_ms, refresh)
            if reference_ms is None:
                return ts_ms  # the feed's clock cannot be read: nothing to check against
            if ts_ms <= reference_ms and not self.reference.checks_past:
                return ts_ms  # late: the feed's clock is ahead of what this ingest has read
            try:
                return bounded.check_event_time(ts_ms, reference_ms, self.event_time_window_ms)
            except BoundsError:
                if refresh:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _on_heartbeat(self, message: dict[str, Any], receive_ms: int, result: FrameResult) -> None:
        exchange_ms = message.get("timestampms")
        if isinstance(exchange_ms, int) and not isinstance(exchange_ms, bool):
            exchange_ms = self._check_event_time(exchange_ms, receive_ms)
            self._emit_tick(exchange_ms, receive_ms, "heartbeat", result)

    def _on_update(self, message: dict[str, Any], receive_ms: int, result: FrameResult) -> None:
        event_id = message.get("eventId")
        if not isinstance(event_id, int) or isinstance(event_id, bool):
            raise MalformedFrame(f"update without an integer eventId: {event_id!r}")
        event_id = bounded.safe_int(event_id, "eventId")
        events = message.get("events")
        if not isinstance(events, list):
            raise MalformedFrame("update without an events list")
        stamped = message.get("timestampms")  # Gemini's initial snapshot carries none
        event_ms = receive_ms if stamped is None else self._check_event_time(stamped, receive_ms)
        sequence = message.get("socket_sequence", -1)
        self._close_depth_windows_before(event_ms, receive_ms, result)
        if any(isinstance(e, dict) and e.get("reason") == "initial" for e in events):
            self.book.clear()  # a snapshot replaces whatever the book held
            self.snapshot_pending = False
        for index, event in enumerate(events):
            try:
                self._on_event(event, index, event_id, sequence, event_ms, receive_ms, result)
            except (MalformedFrame, BoundsError) as error:
                raw_event = json.dumps(
                    {"eventId": event_id, "index": index, "event": event}, default=str
                )
                self._dead_letter(result, str(error), raw_event, receive_ms)
        self._advance_event_time(event_ms)
        if self.depth_window_ms is None:
            self.depth_window_ms = window_start_ms(event_ms)

    def _on_event(
        self,
        event: object,
        index: int,
        event_id: int,
        sequence: int,
        event_ms: int,
        receive_ms: int,
        result: FrameResult,
    ) -> None:
        if not isinstance(event, dict):
            raise MalformedFrame(f"event is not an object: {event!r}")
        kind = event.get("type")
        if kind == "change":
            side = event.get("side")
            if side not in ("bid", "ask"):
                raise MalformedFrame(f"change with unknown side {side!r}")
            price_text, price = _decimal_field(event, "price", positive=True)
            remaining_text, remaining = _decimal_field(event, "remaining")
            delta_text, _ = _decimal_field(event, "delta", signed=True)
            reason = event.get("reason")
            if not isinstance(reason, str):
                raise MalformedFrame("change without a reason")
            self.book.apply(side, price, remaining)
            change = BookChange(
                symbol=self.symbol,
                side=side,
                price=price_text,
                remaining=remaining_text,
                delta=delta_text,
                reason=reason,
                event_id=event_id,
                event_index=index,
                socket_sequence=sequence,
                ts_event_ms=event_ms,
                ts_receive_ms=receive_ms,
            )
            result.records.append(Outgoing(Route.orderbook, change.key, change.to_bytes()))
            result.changes += 1
        elif kind == "trade":
            trade_id = event.get("tid")
            if not isinstance(trade_id, int) or isinstance(trade_id, bool):
                raise MalformedFrame(f"trade without an integer tid: {trade_id!r}")
            trade_id = bounded.safe_int(trade_id, "tid")
            price_text, _ = _decimal_field(event, "price", positive=True)
            amount_text, _ = _decimal_field(event, "amount", positive=True)
            maker_side = event.get("makerSide")
            if not isinstance(maker_side, str):
                raise MalformedFrame("trade without makerSide")
            trade = Trade(
                symbol=self.symbol,
                trade_id=trade_id,
                price=price_text,
                amount=amount_text,
                maker_side=maker_side,
                event_id=event_id,
                socket_sequence=sequence,
                ts_event_ms=event_ms,
                ts_receive_ms=receive_ms,
            )
            result.records.append(Outgoing(Route.trades, trade.key, trade.to_bytes()))
            result.trades += 1
        else:
            raise MalformedFrame(f"unsupported event type {kind!r}")

    def _emit_tick(
        self, exchange_ms: int, receive_ms: int, source: str, result: FrameResult
    ) -> None:
        if self.last_tick_ms is not None and exchange_ms <= self.last_tick_ms:
            return
        if self.last_event_ms is not None and exchange_ms < self.last_event_ms:
            return  # never move event time backwards
        self._close_depth_windows_before(exchange_ms, receive_ms, result)
        self._advance_event_time(exchange_ms)
        self.last_tick_ms = exchange_ms
        tick = TimeTick(self.symbol, exchange_ms, receive_ms, source)
        result.records.append(Outgoing(Route.orderbook, tick.key, tick.to_bytes()))

    def _advance_event_time(self, event_ms: int) -> None:
        if self.last_event_ms is None or event_ms > self.last_event_ms:
            self.last_event_ms = event_ms

    def _close_depth_windows_before(
        self, event_ms: int, receive_ms: int, result: FrameResult
    ) -> None:
        """Emit the book depth at the end of the owed window once event time leaves it."""
        owed = self.depth_window_ms
        if owed is None or event_ms < owed + WINDOW_MS:
            return
        depth = self.book.depth(self.band_pct)
        record = BookDepth(
            symbol=self.symbol,
            window_start_ms=owed,
            ts_event_ms=owed + WINDOW_MS - 1,
            ts_receive_ms=receive_ms,
            mid_price=depth.mid_price,
            bid_depth=depth.bid_depth,
            ask_depth=depth.ask_depth,
            depth_imbalance=depth.depth_imbalance,
            band_pct=self.band_pct,
        )
        result.records.append(Outgoing(Route.orderbook, record.key, record.to_bytes()))
        # A minute without book events owes no depth record: quiet minutes emit no window.
        self.depth_window_ms = None

    def _dead_letter(
        self, result: FrameResult, reason: str, raw: str | bytes, receive_ms: int
    ) -> None:
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
        letter = DeadLetter(
            service=self.service,
            reason=reason[:MAX_REASON_CHARS],
            raw=text[:MAX_RAW_CHARS],
            source=self.source,
            ts_receive_ms=receive_ms,
        )
        result.records.append(Outgoing(Route.deadletter, None, letter.to_bytes()))
        result.dead_letters += 1


def _parse_json_object(raw: str | bytes, max_bytes: int, max_depth: int) -> dict[str, Any]:
    message = bounded.loads(raw, max_bytes=max_bytes, max_depth=max_depth)  # BoundsError
    if not isinstance(message, dict):
        raise MalformedFrame(f"frame is not a JSON object but {type(message).__name__}")
    return message


def _decimal_field(
    event: dict[str, Any], name: str, *, positive: bool = False, signed: bool = False
) -> tuple[str, Decimal]:
    """Read a decimal string field; reject missing, non-numeric, non-finite, out-of-range
    (:func:`rtcrypto.bounded.decimal_text`) or negative values."""
    text = event.get(name)
    if not isinstance(text, str):
        raise MalformedFrame(f"{name} is not a decimal string: {text!r}")
    value = bounded.decimal_text(text, name)  # BoundsError: too long, not finite, huge exponent
    if positive and value <= 0:
        raise MalformedFrame(f"{name} must be > 0: {text!r}")
    if not signed and value < 0:
        raise MalformedFrame(f"{name} must be >= 0: {text!r}")
    return text, value
