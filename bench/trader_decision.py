"""Trader decision latency: a liquidity record's bytes in -> the order handed to the exchange.

    .venv/bin/python -m bench.trader_decision [--records 2000] [--book memory|simulator]

Runs the real ``Trader`` (strategy, risk gate, journal with fsync, ledger) on the paper exchange
with a forecast whose side flips every minute, so every record leads to an order. Timed per
record: bounded JSON decode + ``parse_liquidity_bytes`` + ``Trader.on_liquidity`` up to the moment
``place_order`` is entered (the paper fill and what follows it are not part of the decision).
``--book memory`` reads a fixed top of book (the decision path alone); ``--book simulator`` reads
it over HTTP from a local exchange simulator replaying the real Gemini capture, as the service
does in paper mode. The order-rate limit is raised for the run (every record orders). Goal: p99
<= 20 ms. Not a test: figures vary with machine load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from bench.common import machine, save
from rtcrypto.exchange.base import OrderStatus
from rtcrypto.exchange.paper import PaperExchange
from rtcrypto.trader.engine import Trader, parse_liquidity_bytes
from rtcrypto.trader.forecasts import ForecastSides, ForecastSource
from rtcrypto.trader.journal import OrderJournal
from rtcrypto.trader.recorder import NullRecorder
from rtcrypto.trading.order_types import OrderRequest, TopOfBook
from rtcrypto.trading.risk import RiskLimits
from rtcrypto.trading.strategy import StrategyParams

T0 = 1_618_677_900_000
MINUTE = 60_000
REPO = Path(__file__).resolve().parents[1]


class TimedPaper(PaperExchange):
    """The paper exchange that notes when an order reaches it."""

    entered_ns: int = 0

    def place_order(self, order: OrderRequest) -> OrderStatus:
        self.entered_ns = time.perf_counter_ns()
        return super().place_order(order)


def run(records: int, book_source: str, workdir: Path) -> dict[str, Any]:
    simulator: subprocess.Popen[bytes] | None = None
    if book_source == "simulator":
        from rtcrypto.exchange.factory import public_top_of_book
        from tests.helpers import GEMINI_CAPTURE, free_port, sim_status, wait_until

        port = free_port()
        simulator = subprocess.Popen(
            [sys.executable, "-m", "streaming.simulator", "--capture", str(GEMINI_CAPTURE)]
            + ["--port", str(port), "--loop", "--start-immediately"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def up() -> bool:
            try:
                return bool(sim_status(port))
            except OSError:
                return False

        wait_until(up, 30, "simulator")
        time.sleep(2)  # the replay builds its book
        top = public_top_of_book(f"http://127.0.0.1:{port}")
    else:

        def top(symbol: str) -> TopOfBook:
            return TopOfBook(
                symbol, Decimal("60000"), Decimal("5"), Decimal("60010"), Decimal("5"), T0
            )

    try:
        exchange = TimedPaper(workdir / "paper.json", top, usd=Decimal("100000"))
        sides = ["buy" if i % 2 else "sell" for i in range(records + 2)]
        ds = pd.to_datetime([T0 + i * MINUTE for i in range(len(sides))], unit="ms", utc=True)
        forecasts = ForecastSource(workdir / "forecast", 3600.0, clock_s=time.monotonic)
        forecasts.current = ForecastSides(
            "bench",
            pd.DataFrame(
                {"ds": ds, "yhat": 0.0, "yhat_lower": 0.0, "yhat_upper": 0.0, "side": sides}
            ),
        )
        trader = Trader(
            exchange=exchange,
            journal=OrderJournal(workdir / "journal.jsonl"),
            forecasts=forecasts,
            recorder=NullRecorder(),
            params=StrategyParams(),
            limits=RiskLimits(Decimal("1000"), Decimal("1e9"), Decimal("1e9"), 10**9),
            symbol="BTCUSD",
            mode="paper",
            taker_fee_pct=Decimal("0.25"),
            clock_ms=lambda: T0,
        )
        trader.start()
        latencies_ms: list[float] = []
        for minute in range(1, records + 1):
            start = T0 + (minute - 1) * MINUTE
            payload = json.dumps(
                {
                    "symbol": "BTCUSD",
                    "window_start_ms": start,
                    "window_end_ms": start + MINUTE,
                    "liquidity_ratio": 1.0,
                }
            ).encode()
            began = time.perf_counter_ns()
            outcome = trader.on_liquidity(parse_liquidity_bytes(payload))
            if outcome.action == "order":
                latencies_ms.append((exchange.entered_ns - began) / 1e6)
    finally:
        if simulator is not None:
            simulator.terminate()
            simulator.wait(10)
    latencies_ms.sort()

    def pct(q: float) -> float:
        return latencies_ms[min(len(latencies_ms) - 1, int(q * len(latencies_ms)))]

    return {
        "book": book_source,
        "records": records,
        "orders": len(latencies_ms),
        "p50_ms": round(pct(0.50), 3),
        "p99_ms": round(pct(0.99), 3),
        "max_ms": round(latencies_ms[-1], 3),
        "mean_ms": round(statistics.fmean(latencies_ms), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--book", choices=["memory", "simulator", "both"], default="both")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    results = []
    for book in ["memory", "simulator"] if args.book == "both" else [args.book]:
        with tempfile.TemporaryDirectory() as workdir:
            result = run(args.records, book, Path(workdir))
        results.append(result)
        print(
            f"decision latency ({book} book): {result['orders']} orders, p50 {result['p50_ms']} ms, "
            f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms (goal p99 <= 20 ms)"
        )
    if not args.no_save:
        print("saved", save("trader_decision", {"machine": machine(), "results": results}))


if __name__ == "__main__":
    main()
