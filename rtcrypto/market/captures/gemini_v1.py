"""The contract of the simulator's Gemini v1 feed, computed from capture messages.

:func:`v2_change_to_v1_event` maps one level change onto a v1 ``change`` event, and
:class:`LevelBook` / :func:`replay_v1_change_events` apply it over a stream, so anyone can
recompute from the capture file what the simulator sends. Pure: no network, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rtcrypto.market.captures.messages import BookUpdate, CaptureMessage, TradePrint, V2Change

ZERO = Decimal(0)

V1ChangeEvent = dict[
    str, str
]  # {"type","side","price","remaining","delta","reason"}, in that order


def decimal_text(number: Decimal) -> str:
    """A decimal as plain text without exponent (``Decimal('1E-8')`` -> ``'0.00000001'``)."""
    return format(number, "f")


def v2_change_to_v1_event(
    side: str, price: str, quantity: str, previous_quantity: Decimal, is_snapshot: bool
) -> V1ChangeEvent:
    """Map one v2 level change ``[side, price, quantity]`` onto a Gemini v1 ``change`` event.

    - ``side``: buy -> ``bid``, sell -> ``ask`` (``bid``/``ask`` are accepted as is);
    - ``price``, ``remaining``: the capture's strings unchanged (``remaining`` = quantity);
    - ``delta``: quantity minus the level's previous quantity (0 for a new level), as a plain
      decimal string, e.g. ``"-0.25000000"``;
    - ``reason``: ``initial`` for the first snapshot, else ``place`` when delta > 0 and ``cancel``
      when delta < 0; a zero delta (a venue re-sending an unchanged level) is ``cancel`` when the
      quantity is 0 and ``place`` otherwise.
    """
    size = Decimal(quantity)
    delta = size - previous_quantity
    if is_snapshot:
        reason = "initial"
    elif delta > 0:
        reason = "place"
    elif delta < 0:
        reason = "cancel"
    else:
        reason = "cancel" if size == 0 else "place"
    return {
        "type": "change",
        "side": "bid" if side in ("buy", "bid") else "ask",
        "price": price,
        "remaining": quantity,
        "delta": decimal_text(delta),
        "reason": reason,
    }


@dataclass(slots=True)
class Level:
    """One price level as the venue wrote it, with the size parsed once."""

    price: str
    quantity: str
    size: Decimal


LevelOp = tuple[bool, Decimal, Level | None]  # (is bid, price, new level or None to remove it)


def level_ops(changes: Iterable[V2Change]) -> tuple[LevelOp, ...]:
    """Changes compiled for :meth:`LevelBook.apply_levels` (prices and sizes parsed once)."""
    ops: list[LevelOp] = []
    for side, price, quantity in changes:
        size = Decimal(quantity)
        level = Level(price, quantity, size) if size != 0 else None
        ops.append((side == "buy", Decimal(price), level))
    return tuple(ops)


@dataclass(slots=True)
class LevelBook:
    """The book of one symbol, keyed by price value, keeping the venue's strings for replay.

    Why this is not :class:`rtcrypto.market.orderbook.OrderBook` (the ingest's book, which holds
    ``{price: size}`` Decimals and serves the depth math):

    - it keeps each level's text as the capture last wrote it (:class:`Level`): the simulator
      sends ``price`` and ``remaining`` byte for byte as recorded, in change events, in the
      snapshot a late joiner gets and in the REST book. A Decimal does not keep the text
      (``"1e-8"``, ``".5"``), and a dict keyed by Decimal keeps the first spelling of an equal
      price (``"100.0"``) where Gemini would send the latest (``"100.00"``);
    - it has a venue's snapshot-plus-delta semantics: the first snapshot maps to ``initial``
      events, and a later snapshot (a loop restart, a venue re-sync) replaces the book, with
      ``cancel`` removals of the levels it does not list; ``OrderBook`` has no snapshot notion;
    - applying a change yields its v1 event (delta from the previous size, reason), and sides
      are v2's ``buy``/``sell``;
    - it is fed only parsed captures (numbers already checked by the venue parsers) or the
      simulator's own model, on the replay's hot path (:meth:`apply_levels`), so it does not
      repeat ``OrderBook.apply``'s per-level bounds check on untrusted network input.

    Serving both from one class would change ``OrderBook``'s value type for the ingest.
    """

    symbol: str
    bids: dict[Decimal, Level] = field(default_factory=dict)
    asks: dict[Decimal, Level] = field(default_factory=dict)
    initialized: bool = False  # a first message was applied (the book may still be empty)

    def is_empty(self) -> bool:
        return not self.bids and not self.asks

    def apply(self, update: BookUpdate) -> list[V1ChangeEvent]:
        """Apply one capture message; return its v1 change events in the capture's order.

        The first snapshot (on a book never applied to) maps with reason ``initial``. A later snapshot (a loop
        restart or a venue re-sync) maps like ordinary changes and is followed by removals (remaining
        ``"0"``, reason ``cancel``) of the levels it does not list, so the book becomes the snapshot.
        """
        first_snapshot = update.is_snapshot and not self.initialized
        events = [self._apply_change(change, first_snapshot) for change in update.changes]
        if update.is_snapshot and not first_snapshot:
            events.extend(self._remove_unlisted(update.changes))
        self.initialized = True
        return events

    def apply_levels(self, ops: Sequence[LevelOp], is_snapshot: bool) -> None:
        """Fast path without events (see :func:`level_ops`): the same resulting book as
        :meth:`apply` of the message the ops were compiled from."""
        if is_snapshot and self.initialized:
            self.bids.clear()
            self.asks.clear()
        bids, asks = self.bids, self.asks
        for is_bid, key, level in ops:
            levels = bids if is_bid else asks
            if level is None:
                levels.pop(key, None)
            else:
                levels[key] = level
        self.initialized = True

    def quantities(self) -> tuple[dict[Decimal, str], dict[Decimal, str]]:
        """Bids and asks as ``{price: quantity text}`` (to compare two books)."""
        return (
            {key: level.quantity for key, level in self.bids.items()},
            {key: level.quantity for key, level in self.asks.items()},
        )

    def _apply_change(self, change: V2Change, is_snapshot: bool) -> V1ChangeEvent:
        side, price, quantity = change
        levels = self.bids if side == "buy" else self.asks
        key = Decimal(price)
        level = levels.get(key)
        previous = level.size if level is not None else ZERO
        event = v2_change_to_v1_event(side, price, quantity, previous, is_snapshot)
        size = Decimal(quantity)
        if size == 0:
            levels.pop(key, None)
        else:
            levels[key] = Level(price, quantity, size)
        return event

    def _remove_unlisted(self, changes: tuple[V2Change, ...]) -> list[V1ChangeEvent]:
        listed = {(side, Decimal(price)) for side, price, _ in changes}
        events: list[V1ChangeEvent] = []
        for side, levels in (("buy", self.bids), ("sell", self.asks)):
            for key in [key for key in levels if (side, key) not in listed]:
                level = levels.pop(key)
                events.append(v2_change_to_v1_event(side, level.price, "0", level.size, False))
        return events

    def snapshot_events(self) -> list[V1ChangeEvent]:
        """All current levels as ``initial`` change events (delta = remaining): bids from the best
        down, then asks from the best up, as Gemini sends its first update."""
        bids = [self.bids[key] for key in sorted(self.bids, reverse=True)]
        asks = [self.asks[key] for key in sorted(self.asks)]
        return [
            {
                "type": "change",
                "side": side,
                "price": level.price,
                "remaining": level.quantity,
                "delta": level.quantity,
                "reason": "initial",
            }
            for side, levels in (("bid", bids), ("ask", asks))
            for level in levels
        ]

    def best_bid(self) -> Level | None:
        return self.bids[max(self.bids)] if self.bids else None

    def best_ask(self) -> Level | None:
        return self.asks[min(self.asks)] if self.asks else None


def trade_to_v1_event(trade: TradePrint) -> dict[str, Any]:
    """A trade as a Gemini v1 ``trade`` event (``makerSide`` is the side opposite the taker)."""
    return {
        "type": "trade",
        "tid": trade.trade_id,
        "price": trade.price,
        "amount": trade.quantity,
        "makerSide": trade.maker_side,
    }


def replay_v1_change_events(
    messages: Iterable[CaptureMessage], symbol: str
) -> Iterator[tuple[int, V1ChangeEvent]]:
    """``(timestampms, change event)`` for every level change of ``symbol``, as the simulator's
    first pass over the capture sends them to a client connected from the start."""
    book = LevelBook(symbol)
    for message in messages:
        if isinstance(message, BookUpdate) and message.symbol == symbol:
            for event in book.apply(message):
                yield message.ts_receive_ms, event
