"""Gemini's order-events websocket (``/v1/order/events``) for the ``gemini`` adapter.

:func:`parse_order_events_frame` (pure) turns one text frame into a :class:`SubscriptionAck`, a
:class:`EventsHeartbeat` or a tuple of :class:`OrderEvent`, or raises
:class:`OrderEventParseError` saying what is wrong (never anything else, for any input).

:class:`OrderEventsStream` runs in a background thread: it connects with the signed handshake
(:mod:`rtcrypto.exchange.signing`; the nonce comes from the adapter's nonce source, drawn and
sent under the adapter's request lock, so REST and websocket nonces reach Gemini in order),
parses each frame, queues the order events for the consumer (:meth:`OrderEventsStream.drain`),
keeps frames it cannot parse as dead letters (with the reason), and reconnects with exponential
backoff. :attr:`OrderEventsStream.connected` says whether events are flowing now: a
``subscription_ack`` was received and no frame or heartbeat is overdue.

Docs: https://docs.gemini.com/websocket/order-events/ (response, event types). Amounts are
``Decimal``, times epoch milliseconds (UTC).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import websocket
from pydantic import SecretStr

from rtcrypto.bounded import BoundsError, loads
from rtcrypto.exchange.signing import encode_payload, private_payload, sign
from rtcrypto.redact import redact_url

log = logging.getLogger("exchange.order_events")

ORDER_EVENTS_PATH = "/v1/order/events"
MAX_FRAME_BYTES = 1024 * 1024
MAX_DEAD_LETTERS = 100  # the newest kept, for inspection
MAX_QUEUED_EVENTS = 100_000
FINAL_EVENT_TYPES = frozenset({"closed", "rejected"})  # nothing follows for that order
EVENT_TYPES = frozenset(
    {"initial", "accepted", "rejected", "booked", "fill", "cancelled", "cancel_rejected", "closed"}
)
HEARTBEAT_INTERVAL_S = 5.0  # Gemini's
MISSED_HEARTBEATS = 3  # silent this many intervals: not connected


class OrderEventParseError(ValueError):
    """A frame that is not one of Gemini's order-events messages; the message says why."""


@dataclass(frozen=True, slots=True)
class SubscriptionAck:
    """The first message: the account and the filters Gemini parsed."""

    account_id: int
    subscription_id: str
    symbol_filter: tuple[str, ...]
    event_type_filter: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EventsHeartbeat:
    """Gemini's heartbeat of the order-events socket."""

    ts_ms: int
    sequence: int
    trace_id: str
    socket_sequence: int


@dataclass(frozen=True, slots=True)
class Fill:
    """The trade of a ``fill`` event: price (quote per base), amount (base), fee (``fee_currency``)."""

    trade_id: str
    liquidity: str  # Taker | Maker
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_currency: str


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One order event (the order's state after it); amounts ``Decimal``, ``None`` when absent."""

    event_type: str
    order_id: str
    event_id: str | None
    client_order_id: str | None
    symbol: str  # lower case
    side: str
    order_type: str
    behavior: str | None
    ts_ms: int  # when the order was submitted
    is_live: bool
    is_cancelled: bool
    original_amount: Decimal | None
    executed_amount: Decimal | None
    remaining_amount: Decimal | None
    price: Decimal | None
    avg_execution_price: Decimal | None
    reason: str | None
    fill: Fill | None
    socket_sequence: int
    raw: dict[str, Any]

    @property
    def is_final(self) -> bool:
        """No further event follows for this order (``closed`` or ``rejected``)."""
        return self.event_type in FINAL_EVENT_TYPES


OrderEventsMessage = SubscriptionAck | EventsHeartbeat | tuple[OrderEvent, ...]


# --- parsing (pure) ----------------------------------------------------------------------------


def _string(body: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 200:
        raise OrderEventParseError(f"field {name} must be a non-empty string, got {value!r:.60}")
    return value


def _int(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise OrderEventParseError(f"field {name} must be a whole number, got {value!r:.60}")
    return value


def _bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise OrderEventParseError(f"field {name} must be true or false, got {value!r:.60}")
    return value


def _decimal(body: dict[str, Any], name: str, required: bool = False) -> Decimal | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise OrderEventParseError(f"field {name} must be a decimal string, got {value!r:.60}")
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise OrderEventParseError(f"field {name} is not a number: {value!r:.60}") from None
    if not number.is_finite() or number < 0 or number.adjusted() > 30:
        raise OrderEventParseError(f"field {name} is out of range: {value!r:.60}")
    return number


def _strings(body: dict[str, Any], name: str) -> tuple[str, ...]:
    values = body.get(name, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise OrderEventParseError(f"field {name} must be an array of strings")
    return tuple(values)


def parse_fill(body: Any) -> Fill:
    """The ``fill`` object of a ``fill`` event."""
    if not isinstance(body, dict):
        raise OrderEventParseError("field fill must be an object")
    return Fill(
        trade_id=str(_int(body, "trade_id")),
        liquidity=str(_string(body, "liquidity")),
        price=_decimal(body, "price", required=True),  # type: ignore[arg-type]
        amount=_decimal(body, "amount", required=True),  # type: ignore[arg-type]
        fee=_decimal(body, "fee", required=True),  # type: ignore[arg-type]
        fee_currency=str(_string(body, "fee_currency")),
    )


def parse_order_event(body: Any) -> OrderEvent:
    """One element of an order-events array."""
    if not isinstance(body, dict):
        raise OrderEventParseError("an order event must be a JSON object")
    event_type = _string(body, "type")
    if event_type not in EVENT_TYPES:
        raise OrderEventParseError(f"unknown order event type {event_type!r:.40}")
    fill = parse_fill(body.get("fill")) if event_type == "fill" else None
    event_id = body.get("event_id")
    return OrderEvent(
        event_type=str(event_type),
        order_id=str(_int(body, "order_id")),
        event_id=None if event_id is None else str(_int(body, "event_id")),
        client_order_id=_string(body, "client_order_id", required=False),
        symbol=str(_string(body, "symbol")).lower(),
        side=str(_string(body, "side")),
        order_type=str(_string(body, "order_type")),
        behavior=_string(body, "behavior", required=False),
        ts_ms=_int(body, "timestampms"),
        is_live=_bool(body, "is_live"),
        is_cancelled=_bool(body, "is_cancelled"),
        original_amount=_decimal(body, "original_amount"),
        executed_amount=_decimal(body, "executed_amount"),
        remaining_amount=_decimal(body, "remaining_amount"),
        price=_decimal(body, "price"),
        avg_execution_price=_decimal(body, "avg_execution_price"),
        reason=_string(body, "reason", required=False),
        fill=fill,
        socket_sequence=_int(body, "socket_sequence"),
        raw=body,
    )


def parse_order_events_frame(text: str | bytes) -> OrderEventsMessage:
    """One text frame of the order-events socket; :class:`OrderEventParseError` if it is not
    a subscription ack, a heartbeat or a non-empty array of order events."""
    try:
        body = loads(text, max_bytes=MAX_FRAME_BYTES)
    except (BoundsError, ValueError, UnicodeDecodeError) as error:
        raise OrderEventParseError(f"not bounded JSON: {error}") from None
    if isinstance(body, list):
        if not body:
            raise OrderEventParseError("an empty array of order events")
        return tuple(parse_order_event(item) for item in body)
    if not isinstance(body, dict):
        raise OrderEventParseError("a frame must be a JSON object or an array of order events")
    kind = body.get("type")
    if kind == "subscription_ack":
        return SubscriptionAck(
            account_id=_int(body, "accountId"),
            subscription_id=str(_string(body, "subscriptionId")),
            symbol_filter=_strings(body, "symbolFilter"),
            event_type_filter=_strings(body, "eventTypeFilter"),
        )
    if kind == "heartbeat":
        return EventsHeartbeat(
            ts_ms=_int(body, "timestampms"),
            sequence=_int(body, "sequence"),
            trace_id=str(_string(body, "trace_id")),
            socket_sequence=_int(body, "socket_sequence"),
        )
    if body.get("result") == "error":
        raise OrderEventParseError(f"error from Gemini: {str(body.get('reason'))[:60]}")
    raise OrderEventParseError(f"unknown message type {str(kind)[:40]!r}")


def order_events_url(rest_base_url: str, symbol_filter: tuple[str, ...] = ()) -> str:
    """The websocket URL of the exchange behind ``rest_base_url`` (``https`` -> ``wss``,
    ``http`` -> ``ws``), with ``symbolFilter`` and ``heartbeat=true``."""
    parts = urlsplit(rest_base_url.strip())
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme.lower(), parts.scheme)
    query = urlencode(
        [("symbolFilter", s.lower()) for s in symbol_filter] + [("heartbeat", "true")]
    )
    return urlunsplit((scheme, parts.netloc, ORDER_EVENTS_PATH, query, ""))


def handshake_headers(api_key: str, api_secret: str, nonce: int) -> list[str]:
    """The signed headers of the websocket handshake (payload ``request`` + ``nonce``)."""
    payload_b64 = encode_payload(private_payload(ORDER_EVENTS_PATH, nonce))
    return [
        f"X-GEMINI-APIKEY: {api_key}",
        f"X-GEMINI-PAYLOAD: {payload_b64}",
        f"X-GEMINI-SIGNATURE: {sign(payload_b64, api_secret)}",
    ]


# --- the stream (I/O) ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A frame that could not be parsed, with the reason, when it arrived (wall ms)."""

    reason: str
    raw: str
    ts_ms: int


class OrderEventsStream:
    """A background thread reading Gemini's order events; see the module docstring."""

    def __init__(
        self,
        url: str,
        api_key: SecretStr | str,
        api_secret: SecretStr | str,
        nonce: Callable[[], int],
        *,
        request_lock: AbstractContextManager[Any] | None = None,
        connect_timeout_s: float = 5.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
    ) -> None:
        self.url = url
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self._api_secret = (
            api_secret if isinstance(api_secret, SecretStr) else SecretStr(api_secret)
        )
        self._nonce = nonce
        self._request_lock = request_lock or nullcontext()
        self.connect_timeout_s = connect_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.events: queue.Queue[OrderEvent] = queue.Queue(MAX_QUEUED_EVENTS)
        self.dead_letters: deque[DeadLetter] = deque(maxlen=MAX_DEAD_LETTERS)
        self.dead_letter_count = 0
        self.connects = 0
        self.last_error: str | None = None
        self.last_sequence: int | None = None
        self._subscribed = False
        self._last_frame_s = 0.0
        self._stop = threading.Event()
        self._ws: websocket.WebSocket | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"OrderEventsStream(url={redact_url(self.url)!r}, connected={self.connected})"

    @property
    def connected(self) -> bool:
        """Subscribed, and a frame (an event or a heartbeat) arrived within the last
        ``MISSED_HEARTBEATS`` heartbeat intervals."""
        silent_s = time.monotonic() - self._last_frame_s
        return self._subscribed and silent_s < MISSED_HEARTBEATS * self.heartbeat_interval_s

    def start(self) -> OrderEventsStream:
        """Start the reader thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="order-events", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the socket and end the thread."""
        self._stop.set()
        ws = self._ws
        if ws is not None:
            with suppress(OSError, websocket.WebSocketException):
                ws.close(timeout=1)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def drain(self) -> list[OrderEvent]:
        """Every order event received since the last call, in order."""
        drained: list[OrderEvent] = []
        while True:
            try:
                drained.append(self.events.get_nowait())
            except queue.Empty:
                return drained

    # --- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        delay_s = self.backoff_initial_s
        while not self._stop.is_set():
            try:
                self._connect()
                delay_s = self.backoff_initial_s
                self._read()
            except websocket.WebSocketBadStatusException as error:
                self.last_error = f"handshake refused: HTTP {error.status_code} {_body(error)}"
            except (OSError, websocket.WebSocketException) as error:
                self.last_error = f"{type(error).__name__}: {error}"
            finally:
                self._subscribed = False
                self._close_socket()
            if self._stop.is_set():
                break
            log.warning(
                "order events %s: %s; polling covers it, reconnecting in %.1f s",
                redact_url(self.url),
                self.last_error,
                delay_s,
            )
            self._stop.wait(delay_s)
            delay_s = min(self.backoff_max_s, delay_s * 2)

    def _connect(self) -> None:
        with self._request_lock:  # the nonce goes out before any later REST nonce
            headers = handshake_headers(
                self._api_key.get_secret_value(),
                self._api_secret.get_secret_value(),
                self._nonce(),
            )
            self._ws = websocket.create_connection(
                self.url, header=headers, timeout=self.connect_timeout_s
            )
        self._ws.settimeout(self.heartbeat_interval_s)
        self._last_frame_s = time.monotonic()  # the ack is due now: silence counts from here
        self.connects += 1

    def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        while not self._stop.is_set():
            try:
                frame = ws.recv()
            except websocket.WebSocketTimeoutException:
                silent_s = time.monotonic() - self._last_frame_s
                if silent_s > MISSED_HEARTBEATS * self.heartbeat_interval_s:  # a dead peer
                    raise websocket.WebSocketTimeoutException(
                        f"no heartbeat for {silent_s:.0f} s"
                    ) from None
                continue
            if not frame:
                raise websocket.WebSocketConnectionClosedException("closed by the exchange")
            self._handle(frame)

    def _handle(self, frame: str | bytes) -> None:
        now_ms = time.time_ns() // 1_000_000
        try:
            message = parse_order_events_frame(frame)
        except OrderEventParseError as error:
            self.dead_letter_count += 1
            text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
            self.dead_letters.append(DeadLetter(str(error), text[:2000], now_ms))
            log.warning("order events frame dead-lettered: %s", error)
            return
        self._last_frame_s = time.monotonic()
        if isinstance(message, SubscriptionAck):
            self._subscribed = True
            self.last_error = None
            log.info("order events subscribed account_id=%d", message.account_id)
            return
        if isinstance(message, EventsHeartbeat):
            self._check_sequence(message.socket_sequence)
            return
        for event in message:
            self._check_sequence(event.socket_sequence)
            try:
                self.events.put_nowait(event)
            except queue.Full:
                log.error("order events queue full: event of order_id=%s dropped", event.order_id)

    def _check_sequence(self, sequence: int) -> None:
        expected = None if self.last_sequence is None else self.last_sequence + 1
        if expected is not None and sequence != expected:
            log.warning("order events socket_sequence gap: expected %d, got %d", expected, sequence)
        self.last_sequence = sequence

    def _close_socket(self) -> None:
        ws, self._ws = self._ws, None
        self.last_sequence = None
        if ws is not None:
            with suppress(OSError, websocket.WebSocketException):
                ws.close(timeout=1)


def _body(error: websocket.WebSocketBadStatusException) -> str:
    resp_body = getattr(error, "resp_body", None)
    if isinstance(resp_body, bytes):
        return resp_body.decode("utf-8", "replace")[:300]
    return str(resp_body or "")[:300]
