"""The trader's order journal: an append-only, fsync'ed JSONL file, the trader's memory.

Entries (one JSON object per line, ``type`` first):

- ``opened``: the account's balances when the journal was created (``usd``, ``btc``, ``mode``);
- ``sent``: written and synced *before* an order goes to the exchange (``client_order_id``,
  the request, forecast version, decision minute, send time);
- ``result``: the exchange's final state of that order;
- ``abandoned``: an order that never reached the exchange (found missing after a restart, or
  refused outright), with the reason.

A ``sent`` without ``result`` or ``abandoned`` is *pending*: the process died between sending and
recording. On start the trader asks the exchange for it by ``client_order_id`` before trading.
A torn last line (crash mid-write) is ignored with a warning.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from rtcrypto.exchange.base import OrderRequest, OrderStatus
from rtcrypto.exchange.codec import (
    request_from_json,
    request_to_json,
    status_from_json,
    status_to_json,
)

log = logging.getLogger(__name__)


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

    def pending(self) -> list[SentOrder]:
        return [
            sent
            for cid, sent in self.sent.items()
            if cid not in self.results and cid not in self.abandoned
        ]


class OrderJournal:
    """Append-only journal at ``path``; ``state`` mirrors the file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.state = self._read()
        self._handle = self.path.open("a", encoding="utf-8")

    def _read(self) -> JournalState:
        state = JournalState()
        if not self.path.exists():
            return state
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                self._apply(state, entry)
            except (ValueError, KeyError, TypeError) as error:
                if number == len(lines):  # a crash mid-write leaves at most the last line torn
                    log.warning("journal %s: torn last line ignored (%s)", self.path, error)
                    continue
                raise ValueError(
                    f"journal {self.path} line {number} is corrupt ({error}); move the file "
                    "aside only after checking the exchange's orders by hand"
                ) from error
        return state

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
        else:
            raise ValueError(f"unknown journal entry type {kind!r}")

    def _append(self, entry: dict[str, Any]) -> None:
        self._apply(self.state, entry)
        self._handle.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    # --- writers ---------------------------------------------------------------------------------
    def open_account(self, usd: Decimal, btc: Decimal, mode: str, ts_ms: int) -> None:
        self._append(
            {"type": "opened", "usd": str(usd), "btc": str(btc), "mode": mode, "ts_ms": ts_ms}
        )

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

    # --- readers ---------------------------------------------------------------------------------
    def knows(self, client_order_id: str) -> bool:
        return client_order_id in self.state.sent

    def send_times_ms(self) -> tuple[int, ...]:
        return tuple(sent.sent_ms for sent in self.state.sent.values())

    def close(self) -> None:
        self._handle.close()
