"""``GET /v1/order/events``: Gemini's private order-events websocket, served by the sandbox.

The handshake is signed like a private REST request (``X-GEMINI-APIKEY``, ``X-GEMINI-PAYLOAD``
= base64 JSON ``{"request": "/v1/order/events", "nonce": N}``, ``X-GEMINI-SIGNATURE``) and
checked by the same code (:func:`rtcrypto.exchange.signing.verify_private_request`, with the
key's last REST nonce: one nonce sequence per key). A refused handshake is answered before the
upgrade with HTTP 400 and Gemini's error body (``InvalidSignature``, ``InvalidNonce``,
``Missing...Header``).

Then, per connection (Gemini's Order Events pages, https://docs.gemini.com/websocket/order-events/):

1. ``subscription_ack`` (``accountId`` int, ``subscriptionId`` str, ``symbolFilter``,
   ``apiSessionFilter``, ``eventTypeFilter`` arrays of str) -- never filtered;
2. one array of ``initial`` events, the key's live orders (unless ``eventTypeFilter`` leaves
   ``initial`` out);
3. arrays of order events as the sandbox books them: ``accepted``, ``fill`` (with ``fill``:
   ``trade_id`` str, ``liquidity`` Taker/Maker, ``price``, ``amount``, ``fee`` str-num,
   ``fee_currency``), ``booked``, ``cancelled`` (``reason``), ``closed``, ``rejected``
   (``reason``); and every ``HEARTBEAT_INTERVAL_S`` a ``heartbeat`` (``timestampms``,
   ``sequence``, ``trace_id``, ``socket_sequence``), never batched with order events.

Order events carry the order-status fields (``order_id`` str, ``symbol``, ``side``,
``order_type``, ``behavior``, ``timestamp`` str s, ``timestampms`` int ms, ``is_live``,
``is_cancelled``, ``is_hidden``, amounts and prices as str-num) and ``socket_sequence`` (int,
from 0 per connection, shared with heartbeats). Query filters: ``symbolFilter``,
``eventTypeFilter`` (repeatable), ``apiSessionFilter`` (the key itself), ``heartbeat=false``.

The sandbox calls :meth:`OrderEventHub.accepted`, :meth:`OrderEventHub.filled`,
:meth:`OrderEventHub.settled`, :meth:`OrderEventHub.cancelled`, :meth:`OrderEventHub.closed`
and :meth:`OrderEventHub.rejected` synchronously on its event loop; each pushes to the key's
connections' queues, drained by one sender task per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, web

from rtcrypto.exchange.signing import SignedRequestError, verify_private_request
from rtcrypto.simulator.wire import upgrade_required_body

if TYPE_CHECKING:
    from rtcrypto.simulator.sandbox import Sandbox, SandboxOrder

log = logging.getLogger("simulator")

ORDER_EVENTS_PATH = "/v1/order/events"
HEARTBEAT_INTERVAL_S = 5.0  # Gemini: a heartbeat every five seconds
EVENT_TYPES = (
    "initial",
    "accepted",
    "rejected",
    "booked",
    "fill",
    "cancelled",
    "cancel_rejected",
    "closed",
)
MAX_QUEUED_MESSAGES = 10_000  # a client this far behind is closed (it reconnects)
FIRST_ACCOUNT_ID = 5000


@dataclass(frozen=True, slots=True)
class EventFilters:
    """The query filters of one subscription (empty = not filtered)."""

    symbols: tuple[str, ...] = ()  # lower case
    event_types: tuple[str, ...] = ()
    api_sessions: tuple[str, ...] = ()
    heartbeat: bool = True

    def wants(self, event_type: str, symbol: str) -> bool:
        if self.event_types and event_type not in self.event_types:
            return False
        return not self.symbols or symbol.lower() in self.symbols


def parse_filters(query: Any) -> EventFilters:
    """``symbolFilter``, ``eventTypeFilter``, ``apiSessionFilter`` (each repeatable) and
    ``heartbeat`` of a request's query (a multidict); raises ``ValueError`` naming the bad one."""
    event_types = tuple(str(value) for value in query.getall("eventTypeFilter", []))
    unknown = [value for value in event_types if value not in EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"eventTypeFilter {unknown[0][:40]!r} is not an order event type: use "
            + ", ".join(EVENT_TYPES)
        )
    heartbeat = str(query.get("heartbeat", "true")).lower()
    if heartbeat not in ("true", "false"):
        raise ValueError(f"heartbeat must be true or false, got {heartbeat[:20]!r}")
    return EventFilters(
        symbols=tuple(str(value).lower() for value in query.getall("symbolFilter", [])),
        event_types=event_types,
        api_sessions=tuple(str(value) for value in query.getall("apiSessionFilter", [])),
        heartbeat=heartbeat == "true",
    )


def order_event(
    order: SandboxOrder, event_type: str, event_id: int | None, **extra: Any
) -> dict[str, Any]:
    """One order event for ``order`` in its current state (Gemini's order-status fields);
    ``socket_sequence`` is added when it is sent."""
    body = order.to_json()
    event: dict[str, Any] = {
        "type": event_type,
        "order_id": body["order_id"],
        "api_session": order.api_key,
        "symbol": body["symbol"],
        "side": body["side"],
        "order_type": body["type"],
        "timestamp": body["timestamp"],
        "timestampms": body["timestampms"],
        "is_live": body["is_live"],
        "is_cancelled": body["is_cancelled"],
        "is_hidden": body["is_hidden"],
        "avg_execution_price": body["avg_execution_price"],
        "executed_amount": body["executed_amount"],
        "remaining_amount": body["remaining_amount"],
        "original_amount": body["original_amount"],
        "price": body["price"],
    }
    if event_id is not None:
        event["event_id"] = str(event_id)
    if order.client_order_id is not None:
        event["client_order_id"] = order.client_order_id
    if order.options:
        event["behavior"] = order.options[0]
    event.update(extra)
    return event


@dataclass(eq=False)
class OrderEventConnection:
    """One subscriber: its key, filters, queue of messages and ``socket_sequence``."""

    ws: web.WebSocketResponse
    api_key: str
    filters: EventFilters
    subscription_id: str
    queue: asyncio.Queue[dict[str, Any] | list[dict[str, Any]]] = field(
        default_factory=asyncio.Queue
    )
    next_sequence: int = 0
    heartbeats_sent: int = 0
    closed: bool = False

    def push(self, message: dict[str, Any] | list[dict[str, Any]]) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= MAX_QUEUED_MESSAGES:
            log.warning("order events client too slow: closing api_session connection")
            self.closed = True
            return
        self.queue.put_nowait(message)

    def sequenced(self, message: dict[str, Any] | list[dict[str, Any]]) -> str:
        """``message`` with its ``socket_sequence`` (each event of a batch, or the heartbeat)."""
        events = message if isinstance(message, list) else [message]
        for event in events:
            if event.get("type") != "subscription_ack":
                event["socket_sequence"] = self.next_sequence
                self.next_sequence += 1
        return json.dumps(message, separators=(",", ":"))


class OrderEventHub:
    """The sandbox's order-events websocket: handshake, subscribers and event publishing."""

    def __init__(
        self, sandbox: Sandbox, heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S
    ) -> None:
        self.sandbox = sandbox
        self.heartbeat_interval_s = heartbeat_interval_s
        self.connections: set[OrderEventConnection] = set()
        self._event_ids = itertools.count(sandbox.next_order_id + 900_000_000)
        self._account_ids = {
            key: FIRST_ACCOUNT_ID + index for index, key in enumerate(sorted(sandbox.secrets))
        }

    # --- publishing (called by the sandbox) -----------------------------------------------------
    def _publish(self, order: SandboxOrder, events: list[dict[str, Any]]) -> None:
        for connection in list(self.connections):
            sessions = connection.filters.api_sessions
            if connection.api_key != order.api_key or (sessions and order.api_key not in sessions):
                continue
            wanted = [e for e in events if connection.filters.wants(e["type"], order.symbol)]
            if wanted:
                # each connection numbers its own copy
                connection.push([dict(event) for event in wanted])

    def _event(self, order: SandboxOrder, event_type: str, **extra: Any) -> dict[str, Any]:
        return order_event(order, event_type, next(self._event_ids), **extra)

    def accepted(self, order: SandboxOrder) -> None:
        """The order reached the book's matching: ``accepted`` (live for processing)."""
        self._publish(order, [self._event(order, "accepted", is_live=True)])

    def filled(self, order: SandboxOrder, trade: dict[str, Any]) -> None:
        """One fill of ``order`` (its state after the fill), ``trade`` as in ``mytrades``."""
        fill = {
            "trade_id": str(trade["tid"]),
            "liquidity": "Taker" if trade["aggressor"] else "Maker",
            "price": trade["price"],
            "amount": trade["amount"],
            "fee": trade["fee_amount"],
            "fee_currency": trade["fee_currency"],
        }
        self._publish(order, [self._event(order, "fill", fill=fill)])

    def settled(self, order: SandboxOrder) -> None:
        """After a new order's matching: ``booked`` when it rests, else ``cancelled`` (the
        remainder of an IOC / FOK / MOC order) and ``closed``."""
        if order.is_live:
            self._publish(order, [self._event(order, "booked")])
            return
        events = []
        if order.is_cancelled:
            reason = "MakerOrCancelWouldTake" if "maker-or-cancel" in order.options else (
                "FillOrKillWouldNotFill" if "fill-or-kill" in order.options
                else "ImmediateOrCancelWouldPost"
            )  # fmt: skip
            events.append(self._event(order, "cancelled", reason=reason))
        events.append(self._event(order, "closed"))
        self._publish(order, events)

    def cancelled(self, order: SandboxOrder, reason: str = "Requested") -> None:
        """A live order cancelled (by request, cancel-all or an expired heartbeat session)."""
        command_id = str(next(self._event_ids))  # the cancel request's own id
        cancelled = self._event(order, "cancelled", reason=reason, cancel_command_id=command_id)
        self._publish(order, [cancelled, self._event(order, "closed")])

    def closed(self, order: SandboxOrder) -> None:
        """A resting order completely filled."""
        self._publish(order, [self._event(order, "closed")])

    def refused(self, path: str, api_key: str, payload: dict[str, Any], reason: str) -> None:
        """A private request refused with ``reason``: an ``order/new`` one is ``rejected``."""
        if path == "/v1/order/new":
            self.rejected(api_key, payload, reason)

    def rejected(self, api_key: str, payload: dict[str, Any], reason: str) -> None:
        """An ``order/new`` refused with ``reason`` (no order exists: a fresh order id)."""
        from rtcrypto.simulator.sandbox import SandboxOrder  # import cycle

        symbol = str(payload.get("symbol", "")).lower()
        side = str(payload.get("side", ""))
        client_order_id = payload.get("client_order_id")
        order = SandboxOrder(
            order_id=self.sandbox.next_order_id,
            api_key=api_key,
            client_order_id=client_order_id if isinstance(client_order_id, str) else None,
            symbol=symbol,
            side=side,
            price=_decimal_or_zero(payload.get("price")),
            original_amount=_decimal_or_zero(payload.get("amount")),
            options=[],
            ts_ms=self.sandbox.engine.stream_time_ms(),
        )
        self.sandbox.next_order_id += 1
        self._publish(order, [self._event(order, "rejected", reason=reason)])

    # --- the websocket --------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/order/events``: verify the signed handshake, then stream."""
        sandbox = self.sandbox
        try:
            verified = verify_private_request(
                request.headers, ORDER_EVENTS_PATH, sandbox.secrets.get, sandbox.last_nonce.get
            )
            filters = parse_filters(request.query)
        except SignedRequestError as error:
            sandbox.rejections[error.reason] += 1
            log.info("order events handshake refused reason=%s", error.reason)
            return web.json_response(
                {"result": "error", "reason": error.reason, "message": error.message}, status=400
            )
        except ValueError as error:
            return web.json_response(
                {"result": "error", "reason": "InvalidParameter", "message": str(error)},
                status=400,
            )
        sandbox.last_nonce[verified.api_key] = verified.nonce
        sandbox.last_message_wall[verified.api_key] = sandbox.wall()
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=1 << 16)
        if not ws.can_prepare(request).ok:
            return web.json_response(upgrade_required_body(), status=400)
        await ws.prepare(request)
        trace_id = secrets.token_hex(16)
        connection = OrderEventConnection(
            ws, verified.api_key, filters, f"orderevents-websocket-{trace_id}"
        )
        self._greet(connection, trace_id)
        self.connections.add(connection)
        log.info("order events client connected peer=%s", request.remote)
        await self._serve(connection, trace_id)
        return ws

    def _greet(self, connection: OrderEventConnection, trace_id: str) -> None:
        filters = connection.filters
        connection.push(
            {
                "type": "subscription_ack",
                "accountId": self._account_ids.get(connection.api_key, FIRST_ACCOUNT_ID),
                "subscriptionId": connection.subscription_id,
                "symbolFilter": list(filters.symbols),
                "apiSessionFilter": list(filters.api_sessions),
                "eventTypeFilter": list(filters.event_types),
            }
        )
        live = sorted(
            (o for o in self.sandbox.orders.values() if o.api_key == connection.api_key),
            key=lambda order: order.order_id,
        )
        initial = [
            order_event(order, "initial", None)
            for order in live
            if order.is_live
            and filters.wants("initial", order.symbol)
            and (not filters.api_sessions or order.api_key in filters.api_sessions)
        ]
        if initial:
            connection.push(initial)

    async def _serve(self, connection: OrderEventConnection, trace_id: str) -> None:
        loop = asyncio.get_running_loop()
        sender = loop.create_task(self._send(connection))
        beats = loop.create_task(self._heartbeats(connection, trace_id))
        try:
            async for _message in connection.ws:  # the client sends nothing we need
                if connection.closed:
                    break
        finally:
            connection.closed = True
            self.connections.discard(connection)
            for task in (sender, beats):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(sender, beats, return_exceptions=True)
            if not connection.ws.closed:
                await connection.ws.close(code=WSCloseCode.GOING_AWAY)
            log.info("order events client disconnected")

    async def _send(self, connection: OrderEventConnection) -> None:
        try:
            while not connection.closed:
                message = await connection.queue.get()
                await connection.ws.send_str(connection.sequenced(message))
        except (ConnectionError, RuntimeError) as error:
            log.info("order events client lost: %s", error)
        connection.closed = True
        if not connection.ws.closed:
            await connection.ws.close(code=WSCloseCode.GOING_AWAY)

    async def _heartbeats(self, connection: OrderEventConnection, trace_id: str) -> None:
        while not connection.closed:
            await asyncio.sleep(self.heartbeat_interval_s)
            if connection.filters.heartbeat and not connection.closed:
                connection.push(
                    {
                        "type": "heartbeat",
                        "timestampms": self.sandbox.engine.stream_time_ms(),
                        "sequence": connection.heartbeats_sent,
                        "trace_id": trace_id,
                    }
                )
                connection.heartbeats_sent += 1

    async def close_all(self, app: web.Application | None = None) -> None:
        """Close every order-events socket (the server's shutdown)."""
        connections = list(self.connections)
        for connection in connections:
            connection.closed = True
        await asyncio.gather(
            *(c.ws.close(code=WSCloseCode.GOING_AWAY) for c in connections if not c.ws.closed),
            return_exceptions=True,
        )


def _decimal_or_zero(value: Any) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return number if number.is_finite() else Decimal(0)
