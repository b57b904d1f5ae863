"""Gemini's order events into the trader's journal, with REST polling as the fallback.

:func:`build_order_events` makes the stream for the ``gemini`` adapter only (paper has none; off
with ``RTC_GEMINI_ORDER_EVENTS=false``). The trader service calls :meth:`OrderEventJournaler.pump`
from its loop (the journal's one thread): every event received for an order the journal knows
(by ``client_order_id``) is appended as an ``exchange_event`` entry, once per ``event_id``. A
final event (``closed`` / ``rejected``) of a *pending* order (sent, no result: a timeout, an
unreadable answer) resolves it at once (:meth:`Trader.resolve_pending`), instead of at the next
liquidity record.

While the stream is down (:attr:`OrderEventJournaler.connected` False: refused, unreachable,
silent) nothing changes for the trader: ``place_order`` returns the order's final state from
REST and pending orders are polled on every record, as without a stream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rtcrypto.config import Settings
from rtcrypto.exchange.base import ExchangeAdapter, ExchangeError
from rtcrypto.exchange.order_events import OrderEvent, OrderEventsStream, order_events_url
from rtcrypto.trader.engine import Trader

log = logging.getLogger("trader")


def build_order_events(settings: Settings, exchange: ExchangeAdapter) -> OrderEventsStream | None:
    """The order-events stream of a ``gemini`` adapter (not started), else None."""
    from rtcrypto.exchange.gemini import GeminiAdapter

    if not settings.gemini_order_events or not isinstance(exchange, GeminiAdapter):
        return None
    if settings.gemini_api_key is None or settings.gemini_api_secret is None:
        return None
    return OrderEventsStream(
        order_events_url(exchange.base_url, (settings.trader_symbol,)),
        settings.gemini_api_key,
        settings.gemini_api_secret,
        exchange.nonce,
        # REST requests draw and send their nonce under this lock: the handshake's joins them
        request_lock=exchange.request_lock,
    )


@dataclass(frozen=True, slots=True)
class PumpResult:
    """What one :meth:`OrderEventJournaler.pump` did."""

    journaled: int = 0
    ignored: int = 0  # not the trader's orders (another client's), or already journaled
    resolved: int = 0  # pending orders resolved because their final event arrived


class OrderEventJournaler:
    """Moves the stream's events into ``trader``'s journal (see the module docstring)."""

    def __init__(self, stream: OrderEventsStream, trader: Trader) -> None:
        self.stream = stream
        self.trader = trader

    @property
    def connected(self) -> bool:
        return self.stream.connected

    def start(self) -> OrderEventJournaler:
        self.stream.start()
        return self

    def stop(self) -> None:
        self.stream.stop()

    def pump(self) -> PumpResult:
        """Journal every event received so far; resolve pending orders that are final."""
        journal = self.trader.journal
        journaled = ignored = 0
        pending = {sent.request.client_order_id for sent in journal.state.pending()}
        finished: list[str] = []
        for event in self.stream.drain():
            cid = event.client_order_id
            if cid is None or not journal.knows(cid) or self._seen(event):
                ignored += 1
                continue
            journal.record_exchange_event(cid, event.raw)
            journaled += 1
            if event.is_final and cid in pending:
                finished.append(cid)
        resolved = 0
        if finished:
            log.info("order events: final state of pending %s: resolving", ", ".join(finished))
            try:
                self.trader.resolve_pending(record=True)
                still = {sent.request.client_order_id for sent in journal.state.pending()}
                resolved = sum(cid not in still for cid in finished)
            except ExchangeError as error:  # polled again on the next record
                log.warning("order events: pending orders not resolved yet: %s", error)
        return PumpResult(journaled, ignored, resolved)

    def _seen(self, event: OrderEvent) -> bool:
        return event.event_id is not None and (
            event.event_id in self.trader.journal.state.exchange_event_ids
        )
