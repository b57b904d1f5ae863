"""``python -m tests.trader_fault_runner``: the trader service (``python -m streaming.trader``)
with one fault injected from the test side: the process dies (exit 137, as after kill -9) right
after the paper exchange has accepted an order and before the trader's journal records the
answer, the crash window the restart must reconcile (tests/integration/test_trader_service.py)."""

from __future__ import annotations

import logging
import os

from rtcrypto.exchange.base import OrderRequest, OrderStatus
from rtcrypto.exchange.paper import PaperExchange
from rtcrypto.trader.service import main

log = logging.getLogger("tests.trader_fault_runner")
EXIT_CODE = 137  # what a kill -9 leaves


def crash_after_answer() -> None:
    """Wrap ``PaperExchange.place_order``: the order is placed (and the paper account saved),
    then the process exits before the answer reaches the trader's journal."""
    place_order = PaperExchange.place_order

    def place_then_crash(exchange: PaperExchange, order: OrderRequest) -> OrderStatus:
        place_order(exchange, order)
        log.warning("fault injection: exiting between the exchange's answer and the journal")
        os._exit(EXIT_CODE)

    PaperExchange.place_order = place_then_crash  # type: ignore[method-assign]


if __name__ == "__main__":
    crash_after_answer()
    main()
