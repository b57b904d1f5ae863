"""The trader's order journal: an append-only, fsync'ed JSONL file, the trader's memory.

Entries (one JSON object per line, ``type`` first):

- ``opened``: the account's balances when the journal was created (``usd``, ``btc``, ``mode``);
- ``sent``: written and synced *before* an order goes to the exchange (``client_order_id``,
  the request, forecast version, decision minute, send time);
- ``result``: the exchange's final state of that order;
- ``abandoned``: an order that never reached the exchange (found missing after a restart, or
  refused outright), with the reason.

- ``acknowledged``: the exchange answered 2xx but its body could not be read: the order exists,
  so it is never abandoned, only reconciled (``reason`` says what was wrong with the answer).
- ``exchange_event``: one of Gemini's order events for a journaled order (``client_order_id``,
  the ``event`` as received from ``/v1/order/events``): an audit trail, and the first news of
  a pending order's final state (``closed`` / ``rejected``: :meth:`JournalState.final_event`);
  the order's booked state still comes from ``result``.

A ``sent`` without ``result`` or ``abandoned`` is *pending*: the process died between sending and
recording. On start the trader asks the exchange for it by ``client_order_id`` before trading.

A torn last line (crash or full disk mid-write) is cut off on open, with a warning, so the next
entry starts on a line of its own (a line an earlier version appended onto a torn one keeps its
whole entry; the torn prefix is dropped with a warning). The open journal is held under an exclusive ``flock``. Files
are named by mode and exchange host (:func:`journal_file_name`), and the ``opened`` entry records
the mode (and, since issue 10, the ``venue`` host): opening it for another refuses to start.
Journals of earlier versions are read as they are (``journal-paper.jsonl`` keeps its name; the
shared ``journal-gemini.jsonl`` is refused by the service until moved, see
``trader.service.trader_journal``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from rtcrypto.bounded import loads
from rtcrypto.exchange.base import OrderStatus
from rtcrypto.exchange.codec import (
    request_from_json,
    request_to_json,
    status_from_json,
    status_to_json,
)
from rtcrypto.exchange.endpoints import venue_slug
from rtcrypto.trading.order_types import OrderRequest

log = logging.getLogger(__name__)

ENTRY_START = '{"type":'  # every entry is written with its type first, without spaces


@dataclass(frozen=True, slots=True)
class SentOrder:
    """A journaled ``sent`` entry."""

    request: OrderRequest
    forecast_version: str
    minute_ms: int
    sent_ms: int


@dataclass(slots=True)
class JournalState:
    """Everything the journal says, in order."""

    opened: dict[str, Any] | None = None
    sent: dict[str, SentOrder] = field(default_factory=dict)  # by client_order_id, in send order
    results: dict[str, OrderStatus] = field(default_factory=dict)
    abandoned: dict[str, str] = field(default_factory=dict)
    acknowledged: dict[str, str] = field(default_factory=dict)  # 2xx, body unreadable
    # Gemini order events by client_order_id, in arrival order, and the event ids seen
    exchange_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    exchange_event_ids: set[str] = field(default_factory=set)

    def final_event(self, client_order_id: str) -> dict[str, Any] | None:
        """The ``closed`` or ``rejected`` order event journaled for the order, if any."""
        for event in reversed(self.exchange_events.get(client_order_id, [])):
            if event.get("type") in ("closed", "rejected"):
                return event
        return None

    def pending(self) -> list[SentOrder]:
        return [
            sent
            for cid, sent in self.sent.items()
            if cid not in self.results and cid not in self.abandoned
        ]


class JournalError(ValueError):
    """The journal cannot be used as it is; the message says what to do."""


class JournalLockedError(JournalError):
    """Another process holds the journal: a second trader on the same journal must not start."""


class JournalModeError(JournalError):
    """The journal was opened for another trading mode or exchange host."""


def journal_file_name(mode: str, base_url: str | None) -> str:
    """``journal-paper.jsonl``, or ``journal-<mode>-<host>.jsonl`` for Gemini (sandbox and live,
    or two simulators, never share one)."""
    return f"journal-{venue_slug(mode, base_url)}.jsonl"


def read_journal(path: Path) -> JournalState:
    """What the journal at ``path`` says, read without its lock and without changing it (for
    reports and tests while a trader runs): a torn last line is left out."""
    path = Path(path)
    if not path.exists():
        return JournalState()
    data = path.read_bytes()
    return _parse(path, data[: data.rfind(b"\n") + 1])


def _parse(path: Path, data: bytes) -> JournalState:
    state = JournalState()
    lines = data.decode("utf-8", errors="replace").split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = _entry(line, path, number)
            OrderJournal._apply(state, entry)
        except (ValueError, KeyError, TypeError, ArithmeticError) as error:
            raise JournalError(
                f"journal {path} line {number} is corrupt ({error}); move the file "
                "aside only after checking the exchange's orders by hand"
            ) from error
    return state


def _entry(line: str, path: Path, number: int) -> dict[str, Any]:
    """One line's entry. A line an earlier version appended onto a torn one (``<torn>{"type":
    ...}``) keeps its whole entry: the torn prefix is dropped with a warning."""
    try:
        entry = loads(line)
    except ValueError:
        start = line.rfind(ENTRY_START)
        if start <= 0:
            raise
        entry = loads(line[start:])
        log.warning(
            "journal %s line %d: a torn entry of %d characters before a whole one dropped "
            "(written before torn lines were cut on open)",
            path,
            number,
            start,
        )
    if not isinstance(entry, dict):
        raise ValueError("not a JSON object")
    return entry


class OrderJournal:
    """Append-only journal at ``path``, held under an exclusive ``flock`` while open; ``state``
    mirrors the file.

    On open a torn last line (bytes after the last newline: a crash or a full disk mid-write) is
    cut off, with a warning saying how many bytes. With ``mode`` (and ``venue``, the exchange
    host) the journal must have been opened by a trader of that mode and host, else
    :class:`JournalModeError`; a journal of an earlier version has no ``venue`` and is checked
    by its mode only.
    """

    def __init__(self, path: Path, *, mode: str | None = None, venue: str | None = None) -> None:
        self.path = Path(path)
        self.mode = mode
        self.venue = venue
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self._lock()
            self._size = self._cut_torn_tail()
            self.state = _parse(self.path, os.pread(self._fd, self._size, 0))
            self._check_mode()
        except BaseException:
            os.close(self._fd)
            raise

    def _lock(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalLockedError(
                f"journal {self.path} is held by another process: a trader on this journal is "
                "already running (stop it first; two traders would send the same orders)"
            ) from None

    def _cut_torn_tail(self) -> int:
        """Truncate to the last complete line; returns the file's size after."""
        size = os.fstat(self._fd).st_size
        data = os.pread(self._fd, size, 0)
        keep = data.rfind(b"\n") + 1
        if keep < size:
            os.ftruncate(self._fd, keep)
            os.fsync(self._fd)
            log.warning(
                "journal %s: torn last line (crash or full disk mid-write): %d bytes dropped",
                self.path,
                size - keep,
            )
        return keep

    def _check_mode(self) -> None:
        opened = self.state.opened
        if opened is None or self.mode is None:
            return
        if opened.get("mode") != self.mode:
            raise JournalModeError(
                f"journal {self.path} belongs to a {opened.get('mode')} trader, not {self.mode} "
                "(RTC_TRADING_MODE): each mode keeps its own journal; do not rename journals"
            )
        recorded = opened.get("venue")
        if self.venue is not None and recorded is not None and recorded != self.venue:
            raise JournalModeError(
                f"journal {self.path} belongs to the exchange {recorded}, not {self.venue} "
                "(RTC_GEMINI_REST_URL)"
            )

    @staticmethod
    def _apply(state: JournalState, entry: dict[str, Any]) -> None:
        kind = entry["type"]
        if kind == "opened":
            state.opened = entry
        elif kind == "sent":
            request = request_from_json(entry["request"])
            state.sent[request.client_order_id] = SentOrder(
                request=request,
                forecast_version=entry["forecast_version"],
                minute_ms=int(entry["minute_ms"]),
                sent_ms=int(entry["sent_ms"]),
            )
        elif kind == "result":
            status = status_from_json(entry["status"])
            state.results[entry["client_order_id"]] = status
        elif kind == "abandoned":
            state.abandoned[entry["client_order_id"]] = entry["reason"]
        elif kind == "acknowledged":
            state.acknowledged[entry["client_order_id"]] = entry["reason"]
        elif kind == "exchange_event":
            event = entry["event"]
            if not isinstance(event, dict):
                raise ValueError("exchange_event without an event object")
            state.exchange_events.setdefault(entry["client_order_id"], []).append(event)
            if event.get("event_id") is not None:
                state.exchange_event_ids.add(str(event["event_id"]))
        else:
            raise ValueError(f"unknown journal entry type {kind!r}")

    def _append(self, entry: dict[str, Any]) -> None:
        """Write one line and fsync it; on a failed write (disk full) the file is cut back to its
        last complete line, so the next entry never lands on a torn one."""
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8")
        try:
            written = 0
            while written < len(line):
                written += os.write(self._fd, line[written:])
            os.fsync(self._fd)
        except OSError:
            os.ftruncate(self._fd, self._size)
            raise
        self._size += len(line)
        self._apply(self.state, entry)

    # --- writers ---------------------------------------------------------------------------------
    def open_account(self, usd: Decimal, btc: Decimal, mode: str, ts_ms: int) -> None:
        entry = {"type": "opened", "usd": str(usd), "btc": str(btc), "mode": mode, "ts_ms": ts_ms}
        if self.venue is not None:
            entry["venue"] = self.venue
        self._append(entry)
        self._check_mode()

    def record_sent(self, sent: SentOrder) -> None:
        self._append(
            {
                "type": "sent",
                "request": request_to_json(sent.request),
                "forecast_version": sent.forecast_version,
                "minute_ms": sent.minute_ms,
                "sent_ms": sent.sent_ms,
            }
        )

    def record_result(self, status: OrderStatus, client_order_id: str) -> None:
        self._append(
            {
                "type": "result",
                "client_order_id": client_order_id,
                "status": status_to_json(status),
            }
        )

    def record_abandoned(self, client_order_id: str, reason: str) -> None:
        self._append({"type": "abandoned", "client_order_id": client_order_id, "reason": reason})

    def record_acknowledged(self, client_order_id: str, reason: str) -> None:
        self._append({"type": "acknowledged", "client_order_id": client_order_id, "reason": reason})

    def record_exchange_event(self, client_order_id: str, event: dict[str, Any]) -> None:
        self._append({"type": "exchange_event", "client_order_id": client_order_id, "event": event})

    # --- readers ---------------------------------------------------------------------------------
    def knows(self, client_order_id: str) -> bool:
        return client_order_id in self.state.sent

    def send_times_ms(self) -> tuple[int, ...]:
        return tuple(sent.sent_ms for sent in self.state.sent.values())

    def close(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
