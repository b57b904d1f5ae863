"""The shared replay: one simulated exchange clock, one book per symbol, fan-out to clients.

Like a real exchange, the replay is shared by every client: it starts when the first
market-data client subscribes (or at launch), and a client that joins later first receives the
current book as ``initial`` changes, then the live stream.

Event ids are deterministic: the message at position ``p`` of the whole replay (``p = loop x
messages per loop + index + 1``) has ``eventId = 2p``; a late joiner's snapshot taken after that
message has ``eventId = 2p + 1``. Loop ``k`` shifts every time by ``k x (capture span + 1 s)``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rtcrypto.market.captures import BookUpdate, Capture, CaptureMessage, TradePrint
from rtcrypto.market.captures.gemini_v1 import (
    LevelBook,
    LevelOp,
    V1ChangeEvent,
    decimal_text,
    level_ops,
    trade_to_v1_event,
)
from rtcrypto.simulator import wire
from rtcrypto.simulator.clock import SimulatedClock
from rtcrypto.simulator.connections import (
    MAX_BACKLOG_FRAMES,
    MarketDataConnection,
    ReplayFrame,
    WireProtocol,
)

log = logging.getLogger("simulator")

DAY_MS = 86_400_000
RECENT_TRADES_KEPT = 20_000  # per symbol: enough for a day of /v1/trades paging at capture rates
YIELD_EVERY_MESSAGES = 32  # speed 0: let the event loop breathe (senders, heartbeats, HTTP)


@dataclass(slots=True)
class TickerState:
    """Last trade price and the trailing 24 h volume of one symbol (simulated time)."""

    last_price: str | None = None
    last_trade_id: int | None = None
    trades: deque[tuple[int, Decimal, Decimal]] = field(default_factory=deque)
    # the newest trades with their replay time, for GET /v1/trades and /v2/ticker
    recent: deque[tuple[int, TradePrint]] = field(
        default_factory=lambda: deque(maxlen=RECENT_TRADES_KEPT)
    )

    def record(self, trade: TradePrint, ts_ms: int) -> None:
        self.last_price = trade.price
        self.last_trade_id = trade.trade_id
        self.recent.append((ts_ms, trade))
        price, quantity = Decimal(trade.price), Decimal(trade.quantity)
        self.trades.append((ts_ms, quantity, price * quantity))

    def remember_history(self, trades: Iterable[TradePrint]) -> None:
        """Trades listed with a snapshot are history: they set the last price, not the volume."""
        newest = max(trades, key=lambda trade: trade.trade_id, default=None)
        if newest is not None and self.last_price is None:
            self.last_price, self.last_trade_id = newest.price, newest.trade_id

    def volume(self, now_ms: int) -> tuple[Decimal, Decimal]:
        """(base volume, quote volume) of the trades in the 24 hours up to ``now_ms``."""
        while self.trades and self.trades[0][0] < now_ms - DAY_MS:
            self.trades.popleft()
        base = sum((quantity for _, quantity, _ in self.trades), Decimal(0))
        quote = sum((notional for _, _, notional in self.trades), Decimal(0))
        return base, quote


@dataclass(frozen=True, slots=True)
class PlannedEvents:
    """The serialized events of one message in one kind of pass (first pass or later loops)."""

    events_json: str  # the v1 "events" array: change events, then trade events
    changes_json: str  # the v2 "changes" array
    change_count: int


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """One capture message, prepared once: book operations and its events, serialized."""

    message: CaptureMessage
    ops: tuple[LevelOp, ...]  # for the live book (late joiners, ticker)
    first: PlannedEvents  # loop 0
    later: PlannedEvents | None  # loops >= 1 (None when the same as the first pass)


@dataclass(slots=True)
class ReplayPlan:
    """Every message mapped to v1/v2 events ahead of time (the replay is deterministic).

    The mapping runs twice, for loop 0 (from an empty book) and loop 1 (from the book the capture
    ends with). When the books after both passes are equal (every symbol starts from a snapshot),
    loops >= 2 repeat loop 1; otherwise ``mapper`` (the books after pass 1) maps them live.
    """

    messages: list[PlannedMessage]
    later_loops_repeat: bool
    mapper: dict[str, LevelBook]


def _compact(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


def planned_events(message: CaptureMessage, events: list[V1ChangeEvent]) -> PlannedEvents:
    """Serialize the events of one message (trades carried by a non-snapshot update included)."""
    trades: tuple[TradePrint, ...]
    if isinstance(message, TradePrint):
        trades = (message,)
    else:
        trades = () if message.is_snapshot else message.trades
    v1_events: list[dict[str, Any]] = [*events, *map(trade_to_v1_event, trades)]
    return PlannedEvents(
        _compact(v1_events), _compact(wire.v1_events_to_v2_changes(events)), len(events)
    )


def _map_pass(messages: list[CaptureMessage], books: dict[str, LevelBook]) -> list[PlannedEvents]:
    planned = []
    for message in messages:
        if isinstance(message, BookUpdate):
            book = books.setdefault(message.symbol, LevelBook(message.symbol))
            planned.append(planned_events(message, book.apply(message)))
        else:
            planned.append(planned_events(message, []))
    return planned


def plan_replay(messages: list[CaptureMessage]) -> ReplayPlan:
    """Map a capture for replay (see :class:`ReplayPlan`)."""
    books: dict[str, LevelBook] = {}
    first = _map_pass(messages, books)
    end_of_first = {symbol: book.quantities() for symbol, book in books.items()}
    later = _map_pass(messages, books)
    repeats = end_of_first == {symbol: book.quantities() for symbol, book in books.items()}
    planned = [
        PlannedMessage(
            message,
            level_ops(message.changes) if isinstance(message, BookUpdate) else (),
            first_events,
            None if later_events == first_events else later_events,
        )
        for message, first_events, later_events in zip(messages, first, later, strict=True)
    ]
    return ReplayPlan(planned, repeats, books)


class StreamEngine:
    """What every replay shares: the simulated clock, one book per symbol, the clients, the REST
    views. Subclasses produce the messages (:class:`ReplayEngine` from a capture,
    :class:`rtcrypto.simulator.history_replay.HistoryReplayEngine` from minute bars)."""

    def __init__(
        self,
        symbols: Iterable[str],
        origin_ms: int,
        speed: float = 1.0,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        self.speed = speed
        self.loop = False
        self.clock = SimulatedClock(origin_ms, speed, wall)
        self.books: dict[str, LevelBook] = {symbol: LevelBook(symbol) for symbol in symbols}
        self.tickers: dict[str, TickerState] = defaultdict(TickerState)
        self.subscribers: dict[str, set[MarketDataConnection]] = defaultdict(set)
        self.lines_replayed = 0
        self.change_events_replayed = 0
        self.done = False
        self._start_requested = asyncio.Event()
        self._has_subscribers = asyncio.Event()
        self._position = 0  # replay position of the last applied message (0: none yet)
        self._pending_ms: int | None = origin_ms  # time of the next message to replay
        self._last_applied_ms = origin_ms - 1

    # --- control -------------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._start_requested.is_set()

    def start(self) -> None:
        """Start the replay (idempotent)."""
        if not self._start_requested.is_set():
            log.info("replay starting %s speed=%s", self.describe(), self.speed)
            self._start_requested.set()

    def describe(self) -> str:
        """What is replayed, for the start log line."""
        return ""

    async def run(self) -> None:
        """Replay to the end, then let the clock run on (subclasses)."""
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        """What ``GET /_sim/status`` reports (subclasses)."""
        raise NotImplementedError

    # --- pacing and fan-out ------------------------------------------------------------
    async def _pace(self, symbol: str, ts_ms: int, index: int) -> None:
        if self.speed > 0:
            delay_s = self.clock.wall_delay_s(ts_ms)
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            elif index % YIELD_EVERY_MESSAGES == 0:
                await asyncio.sleep(0)  # running behind (high speed): still let others run
            return
        # As fast as possible, but only as fast as the clients read, and not for nobody.
        if not self._has_subscribers.is_set():
            await self._has_subscribers.wait()
        for connection in self.subscribers.get(symbol, ()):
            if not connection.drained.is_set():
                await connection.drained.wait()
                break  # the set may have changed while waiting; the next message checks again
        if index % YIELD_EVERY_MESSAGES == 0:
            await asyncio.sleep(0)

    def _publish(self, frame: ReplayFrame) -> None:
        for connection in list(self.subscribers.get(frame.symbol, ())):
            connection.push(frame)
            if self.speed > 0 and connection.backlog > MAX_BACKLOG_FRAMES:
                log.warning(
                    "dropping slow client peer=%s backlog=%d", connection.peer, connection.backlog
                )
                self.unsubscribe(connection)
                asyncio.get_running_loop().create_task(connection.close("slow consumer"))

    # --- clients -------------------------------------------------------------------------------
    def subscribe(self, connection: MarketDataConnection, symbol: str) -> None:
        """Add a client to a symbol's stream, first queueing the current book if there is one."""
        book = self.books.get(symbol)
        if book is not None and book.initialized:
            connection.push(self.snapshot_frame(symbol, connection.protocol))
        self.subscribers[symbol].add(connection)
        connection.symbols.add(symbol)
        self._has_subscribers.set()
        self.start()

    def unsubscribe(self, connection: MarketDataConnection) -> None:
        for symbol in connection.symbols:
            self.subscribers[symbol].discard(connection)
        if not any(self.subscribers.values()):
            self._has_subscribers.clear()

    def connections(self) -> set[MarketDataConnection]:
        return {connection for group in self.subscribers.values() for connection in group}

    def client_counts(self) -> dict[str, int]:
        """Open market-data clients in total and per protocol (for ``/_sim/status``)."""
        connections = self.connections()
        return {
            "total": len(connections),
            "v1": sum(connection.protocol == "v1" for connection in connections),
            "v2": sum(connection.protocol == "v2" for connection in connections),
        }

    def snapshot_frame(self, symbol: str, protocol: WireProtocol) -> ReplayFrame:
        """The current book of ``symbol`` as one ``initial`` update (v1) or full ``l2_updates`` (v2)."""
        ts_ms = self.stream_time_ms()
        events = self.books[symbol].snapshot_events()
        event_id = 2 * self._position + 1
        if protocol == "v1":
            return ReplayFrame(
                symbol,
                event_id,
                ts_ms,
                len(events),
                wire.v1_update_tail(event_id, ts_ms, events),
                None,
            )
        v2_text = wire.v2_l2_updates(symbol, wire.v1_events_to_v2_changes(events))
        return ReplayFrame(symbol, event_id, ts_ms, len(events), None, v2_text)

    # --- time ----------------------------------------------------------------------------------
    def stream_time_ms(self) -> int:
        """Simulated now, but never past a message not yet replayed: every message with an
        earlier time has been queued to every client (heartbeats and snapshots use this)."""
        now_ms = self.clock.now_ms()
        if self._pending_ms is not None:
            now_ms = min(now_ms, self._pending_ms - 1)
        return max(now_ms, self._last_applied_ms)

    def heartbeat_time_ms(self, connection: MarketDataConnection) -> int:
        """A heartbeat time for ``connection``: the stream time, never before what it was sent."""
        stream_ms = self.stream_time_ms()
        if connection.last_pushed_ms is not None and connection.last_pushed_ms > stream_ms:
            return connection.last_pushed_ms
        return stream_ms

    # --- REST views ----------------------------------------------------------------------------
    def pubticker(self, symbol: str) -> dict[str, Any]:
        """Gemini ``GET /v1/pubticker/<symbol>`` from the current book and trades."""
        book = self.books.get(symbol)
        best_bid = book.best_bid() if book else None
        best_ask = book.best_ask() if book else None
        now_ms = self.stream_time_ms()
        ticker = self.tickers[symbol]
        base_volume, quote_volume = ticker.volume(now_ms)
        base, quote = wire.split_symbol(symbol)
        return {
            "bid": best_bid.price if best_bid else None,
            "ask": best_ask.price if best_ask else None,
            "volume": {
                base: decimal_text(base_volume),
                quote: decimal_text(quote_volume),
                "timestamp": now_ms,
            },
            "last": ticker.last_price,
        }


class ReplayEngine(StreamEngine):
    """Replays a :class:`Capture` on a shared simulated clock to subscribed connections."""

    def __init__(
        self,
        capture: Capture,
        speed: float = 1.0,
        loop: bool = False,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(capture.symbols, capture.first_ms, speed, wall)
        self.capture = capture
        self.plan = plan_replay(capture.messages)
        self.loop = loop
        self.loop_shift_ms = capture.span_ms + 1000
        self.loop_index = 0
        self.loops_completed = 0

    def describe(self) -> str:
        return f"messages={len(self.plan.messages)}"

    async def run(self) -> None:
        """Replay until the capture ends (forever with ``loop``), then let the clock run on."""
        await self._start_requested.wait()
        self.clock.start()
        while self.plan.messages:
            await self._replay_pass()
            self.loops_completed += 1
            log.log(
                logging.DEBUG if self.speed == 0 else logging.INFO,
                "replay pass done loop=%d lines=%d",
                self.loop_index,
                self.lines_replayed,
            )
            if not self.loop:
                break
            self.loop_index += 1
        self.done = True
        self._pending_ms = None
        self.clock.run_free()

    async def _replay_pass(self) -> None:
        shift_ms = self.loop_index * self.loop_shift_ms
        base_position = self.loop_index * len(self.plan.messages)
        for index, planned in enumerate(self.plan.messages):
            ts_ms = planned.message.ts_receive_ms + shift_ms
            self._pending_ms = ts_ms
            await self._pace(planned.message.symbol, ts_ms, index)
            frame = self._apply(planned, base_position + index + 1, ts_ms)
            if frame is not None:
                self._publish(frame)

    # --- applying one message ------------------------------------------------------------------
    def _events_for(self, planned: PlannedMessage) -> PlannedEvents:
        if self.loop_index == 0:
            return planned.first
        if self.loop_index == 1 or self.plan.later_loops_repeat:
            return planned.later or planned.first
        message = planned.message  # loops >= 2 of a capture whose passes differ: map live
        if isinstance(message, BookUpdate):
            book = self.plan.mapper.setdefault(message.symbol, LevelBook(message.symbol))
            return planned_events(message, book.apply(message))
        return planned.first

    def _apply(self, planned: PlannedMessage, position: int, ts_ms: int) -> ReplayFrame | None:
        message = planned.message
        events = self._events_for(planned)
        ticker = self.tickers[message.symbol]
        trades: tuple[TradePrint, ...] = ()
        if isinstance(message, TradePrint):
            trades = (message,)
        else:
            self.books.setdefault(message.symbol, LevelBook(message.symbol)).apply_levels(
                planned.ops, message.is_snapshot
            )
            if message.is_snapshot:
                ticker.remember_history(message.trades)
            else:
                trades = message.trades
        for trade in trades:
            ticker.record(trade, ts_ms)
        self._position = position
        self._last_applied_ms = ts_ms
        self.clock.advance_to(ts_ms)
        self.lines_replayed += 1
        self.change_events_replayed += events.change_count
        return self._frame(message, events, trades, 2 * position, ts_ms)

    def _frame(
        self,
        message: CaptureMessage,
        events: PlannedEvents,
        trades: tuple[TradePrint, ...],
        event_id: int,
        ts_ms: int,
    ) -> ReplayFrame | None:
        protocols = {connection.protocol for connection in self.subscribers.get(message.symbol, ())}
        if not protocols:
            return None  # nobody listens: skip serialization (late joiners get the book)
        v1_tail = v2_text = None
        if "v1" in protocols:
            v1_tail = wire.v1_update_tail_json(event_id, ts_ms, events.events_json)
        if "v2" in protocols:
            if isinstance(message, TradePrint):
                v2_text = wire.v2_trade(message, ts_ms)
            else:
                v2_trades = _compact([wire.v2_trade_payload(trade, ts_ms) for trade in trades])
                v2_text = wire.v2_l2_updates_json(message.symbol, events.changes_json, v2_trades)
        return ReplayFrame(message.symbol, event_id, ts_ms, events.change_count, v1_tail, v2_text)

    def status(self) -> dict[str, Any]:
        """What ``GET /_sim/status`` reports."""
        return {
            "mode": "capture",
            "started": self.started,
            "done": self.done,
            "speed": self.speed,
            "loop": self.loop,
            "loops": self.loops_completed,
            "loop_index": self.loop_index,
            "lines_replayed": self.lines_replayed,
            "change_events_replayed": self.change_events_replayed,
            "messages_per_loop": len(self.plan.messages),
            "later_loops_repeat": self.plan.later_loops_repeat,
            "simulated_time_ms": self.stream_time_ms(),
            "clients": self.client_counts(),
            "capture": {
                "venue": self.capture.venue,
                "sources": list(self.capture.sources),
                "lines_read": self.capture.lines_read,
                "lines_skipped": self.capture.lines_skipped,
                "lines_ignored": self.capture.lines_ignored,
                "first_ms": self.capture.first_ms,
                "last_ms": self.capture.last_ms,
                "span_ms": self.capture.span_ms,
                "symbols": self.capture.symbols,
            },
        }
