"""``python -m tests.trader_gemini_runner URL WORKDIR FIRST LAST [--hang-at MINUTE]``: the sandbox
trader (the ``gemini`` adapter, its journal and a persistent nonce in ``WORKDIR``) deciding the
liquidity minutes FIRST..LAST of ``tests.unit.test_trader_engine.record`` against the simulator's
sandbox at ``URL``, then writing ``WORKDIR/summary.json`` (the ledger's fees and balances).

``--hang-at MINUTE``: when that minute's order has filled on the exchange, and before the trader
journals the answer, the runner writes ``WORKDIR/filled-not-journaled`` (the client_order_id) and
waits: the test kills it there with SIGKILL (a real kill -9 in the crash window)
(tests/integration/test_trader_gemini_fees.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from decimal import Decimal
from pathlib import Path

from rtcrypto.exchange.base import OrderStatus
from rtcrypto.exchange.gemini import GeminiAdapter
from rtcrypto.exchange.nonce_store import PersistentNonceSource
from rtcrypto.trader.engine import Trader, parse_liquidity
from rtcrypto.trader.forecasts import ForecastSides, ForecastSource
from rtcrypto.trader.journal import OrderJournal
from rtcrypto.trading.risk import RiskLimits
from rtcrypto.trading.strategy import StrategyParams
from tests.integration.test_gemini_sandbox import KEY, SECRET
from tests.unit.test_trader_engine import MINUTE, T0, ListRecorder, forecast_frame, record

log = logging.getLogger("tests.trader_gemini_runner")
SIDES = ["sell", "buy", "sell", "buy", "sell", "buy", "sell", "buy", "sell"]  # minute 1: buy
HANG_MARKER = "filled-not-journaled"
SUMMARY = "summary.json"


def sandbox_trader(url: str, workdir: Path, clock_ms: dict[str, int], **options: object) -> Trader:
    """The trader on the sandbox at ``url``: journal and nonce file in ``workdir``, the clock
    read from ``clock_ms["now"]`` (the decision minute, so the per-minute order limit applies
    per minute)."""
    adapter = GeminiAdapter(
        url, KEY, SECRET, nonce_source=PersistentNonceSource(workdir / "nonce.txt")
    )
    forecasts = ForecastSource(workdir / "forecast", 10.0, clock_s=lambda: 0.0)
    forecasts.current = ForecastSides("v1", forecast_frame(SIDES))
    return Trader(
        exchange=adapter,
        journal=OrderJournal(workdir / "journal.jsonl", mode="sandbox", venue="sandbox"),
        forecasts=forecasts,
        recorder=ListRecorder(),
        params=StrategyParams(trade_pct=Decimal("0.01")),
        limits=RiskLimits(Decimal("10"), Decimal("100000"), Decimal("100000"), 5),
        symbol="BTCUSD",
        mode="sandbox",
        taker_fee_pct=Decimal("0.25"),
        clock_ms=lambda: clock_ms["now"],
        **options,  # type: ignore[arg-type]
    )


def run(url: str, workdir: Path, first: int, last: int, hang_at: int | None) -> None:
    clock = {"now": T0}

    def hang_after_fill(status: OrderStatus) -> None:
        if clock["now"] == T0 + hang_at * MINUTE and status.executed_quantity > 0:  # type: ignore[operator]
            (workdir / HANG_MARKER).write_text(status.client_order_id or "")
            log.warning("fault injection: filled, not journaled; waiting for SIGKILL")
            time.sleep(600)

    options = {"after_send": hang_after_fill} if hang_at is not None else {}
    trader = sandbox_trader(url, workdir, clock, **options)
    trader.start()
    for minute in range(first, last + 1):
        clock["now"] = T0 + minute * MINUTE
        outcome = trader.on_liquidity(parse_liquidity(record(minute)))
        log.info("minute %d: %s %s", minute, outcome.action, outcome.reason)
    assert trader.ledger is not None
    summary = {
        "fees_usd": str(trader.ledger.fees_paid_usd),
        "fills": len(trader.ledger.fills),
        "usd": str(trader.ledger.balances.usd),
        "btc": str(trader.ledger.balances.btc),
    }
    (workdir / SUMMARY).write_text(json.dumps(summary))
    trader.journal.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("workdir", type=Path)
    parser.add_argument("first", type=int)
    parser.add_argument("last", type=int)
    parser.add_argument("--hang-at", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    run(args.url, args.workdir, args.first, args.last, args.hang_at)


if __name__ == "__main__":
    main()
