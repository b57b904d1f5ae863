"""One market-data websocket connection: its outgoing queue, ``socket_sequence`` and faults.

The replay pushes frames synchronously (:meth:`MarketDataConnection.push`), so every client sees
a replayed message at the same point of the shared stream; a sender task per connection drains
the queue onto the socket. ``socket_sequence`` is assigned at send time, which is where the
skip-sequence fault acts.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import WSCloseCode, web

from rtcrypto.simulator import wire

log = logging.getLogger("simulator")

WireProtocol = Literal["v1", "v2"]

# Backlog (frames) above which the replay waits at speed 0 / drops the client at speed > 0.
HIGH_WATER_FRAMES = 256
LOW_WATER_FRAMES = 64
MAX_BACKLOG_FRAMES = 50_000


@dataclass(frozen=True, slots=True)
class ReplayFrame:
    """One replayed message of one symbol, serialized once for each protocol.

    ``v1_tail`` completes a v1 ``update`` (see :func:`wire.v1_update`); ``v2_text`` is the whole
    v2 frame. Either may be None when the message has no form in that protocol.
    """

    symbol: str
    event_id: int
    ts_ms: int
    change_count: int
    v1_tail: str | None
    v2_text: str | None


@dataclass(frozen=True, slots=True)
class HeartbeatItem:
    ts_ms: int


@dataclass(frozen=True, slots=True)
class RawFrame:
    """Sent verbatim (fault injection); it takes no ``socket_sequence``. ``data`` goes out as a
    binary frame (bytes that need not be UTF-8); text that cannot be UTF-8 encoded (a lone
    surrogate) goes out as a binary frame of its raw code units: both are bad input on purpose."""

    text: str = ""
    data: bytes | None = None


QueueItem = ReplayFrame | HeartbeatItem | RawFrame


class MarketDataConnection:
    """The server side of one v1 or v2 market-data websocket."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        protocol: WireProtocol,
        peer: str,
        drop_after: int | None = None,
        skip_sequence_at: int | None = None,
        on_fault_drop: Callable[[MarketDataConnection], None] | None = None,
    ) -> None:
        self.ws = ws
        self.protocol = protocol
        self.peer = peer
        self.symbols: set[str] = set()
        self.heartbeats = protocol == "v2"  # v1 asks with ?heartbeat=true
        self.drop_after = drop_after
        self.skip_sequence_at = skip_sequence_at
        self.messages_sent = 0
        self.change_events_sent = 0
        self.last_pushed_ms: int | None = (
            None  # newest event time queued (heartbeats never go back)
        )
        self.drained = asyncio.Event()
        self.drained.set()
        self._items: deque[QueueItem] = deque()
        self._wakeup = asyncio.Event()
        self._next_sequence = 0
        self._skip_next = False
        self._auto_skip_done = False
        self._on_fault_drop = on_fault_drop
        self.closed = False

    # --- queue ---------------------------------------------------------------------------------
    @property
    def backlog(self) -> int:
        return len(self._items)

    def push(self, item: QueueItem) -> None:
        """Queue an item (never blocks; the replay checks :attr:`backlog` for flow control)."""
        if self.closed:
            return
        self._items.append(item)
        if not isinstance(item, RawFrame) and (
            self.last_pushed_ms is None or item.ts_ms > self.last_pushed_ms
        ):
            self.last_pushed_ms = item.ts_ms
        if len(self._items) >= HIGH_WATER_FRAMES:
            self.drained.clear()
        self._wakeup.set()

    def skip_next_sequence(self) -> None:
        """The next sequenced message skips one ``socket_sequence`` number (fault injection)."""
        self._skip_next = True

    # --- sending -------------------------------------------------------------------------------
    async def run_sender(self) -> None:
        """Send queued items until the connection closes."""
        try:
            while not self.closed:
                if not self._items:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                item = self._items.popleft()
                if len(self._items) <= LOW_WATER_FRAMES:
                    self.drained.set()
                if isinstance(item, RawFrame):
                    await self._send_raw(item)
                    continue
                text = self._render(item)
                if text is None:
                    continue
                await self.ws.send_str(text)
                if isinstance(item, RawFrame):
                    continue
                self.messages_sent += 1
                if isinstance(item, ReplayFrame):
                    self.change_events_sent += item.change_count
                if self.drop_after is not None and self.messages_sent >= self.drop_after:
                    log.info("fault drop-after peer=%s messages=%d", self.peer, self.messages_sent)
                    if self._on_fault_drop is not None:
                        self._on_fault_drop(self)
                    await self.close("fault: drop-after")
        except (ConnectionError, RuntimeError) as error:  # peer gone mid-send
            log.info("connection lost peer=%s error=%s", self.peer, error)
        finally:
            self._mark_closed()

    async def _send_raw(self, item: RawFrame) -> None:
        if item.data is not None:
            await self.ws.send_bytes(item.data)
            return
        try:
            item.text.encode("utf-8")
        except UnicodeEncodeError:
            await self.ws.send_bytes(item.text.encode("utf-8", "surrogatepass"))
            return
        await self.ws.send_str(item.text)

    def _render(self, item: QueueItem) -> str | None:
        if isinstance(item, RawFrame):
            return item.text
        if isinstance(item, HeartbeatItem):
            if self.protocol == "v1":
                return wire.v1_heartbeat(self._take_sequence(), item.ts_ms)
            return wire.v2_heartbeat(item.ts_ms)
        if self.protocol == "v1":
            return (
                None
                if item.v1_tail is None
                else wire.v1_update(self._take_sequence(), item.v1_tail)
            )
        return item.v2_text

    def _take_sequence(self) -> int:
        auto_skip = (
            self.skip_sequence_at is not None
            and not self._auto_skip_done
            and self._next_sequence == self.skip_sequence_at
        )
        if auto_skip or self._skip_next:
            log.info("fault skip-sequence peer=%s skipped=%d", self.peer, self._next_sequence)
            self._auto_skip_done = self._auto_skip_done or auto_skip
            self._skip_next = False
            self._next_sequence += 1
        sequence = self._next_sequence
        self._next_sequence += 1
        return sequence

    # --- closing -------------------------------------------------------------------------------
    def _mark_closed(self) -> None:
        self.closed = True
        self._items.clear()
        self.drained.set()  # never hold the replay back for a dead client
        self._wakeup.set()

    async def close(self, reason: str) -> None:
        """Close the websocket (code 1001, going away) and stop sending."""
        self._mark_closed()
        if not self.ws.closed:
            await self.ws.close(code=WSCloseCode.GOING_AWAY, message=reason.encode()[:120])
