"""Gemini adapter round trips against the simulator's sandbox, over loopback HTTP.

    .venv/bin/python -m bench.gemini_sandbox_latency [--rounds 200]

Starts the simulator in-process (the real Gemini capture, replayed at speed 1000 so the book is
the capture's final one) with one sandbox account, then times per call: ``balances``,
``top_of_book``, ``place_order`` (an IOC buy that fills: ``order/new`` + ``order/status`` with its
trades for the fee) and ``order_status``. The client-side rate limit is lifted for the run (the
real one, 600/min, would dominate). Not a test: figures vary with machine load.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bench.common import save
from rtcrypto.exchange.gemini import GeminiAdapter
from rtcrypto.market.captures import load_capture
from rtcrypto.simulator import SimulatorOptions, start_simulator
from rtcrypto.simulator.sandbox import SandboxAccount
from rtcrypto.trading.order_types import OrderRequest
from rtcrypto.trading.strategy import Side
from tests.helpers import GEMINI_CAPTURE

KEY, SECRET = "account-bench", "bench-secret"


def timed_ms(call: Callable[[], Any], rounds: int) -> dict[str, float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / 1e6)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2),
        "max_ms": round(samples[-1], 2),
    }


def run(rounds: int) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    options = SimulatorOptions(
        capture_paths=(GEMINI_CAPTURE,),
        port=0,
        speed=1000,
        sandbox_accounts=(SandboxAccount(KEY, SECRET, (("usd", Decimal(10**9)), ("btc", 0))),),
    )
    running = asyncio.run_coroutine_threadsafe(
        start_simulator(options, load_capture(GEMINI_CAPTURE)), loop
    ).result(60)
    try:
        adapter = GeminiAdapter(
            f"http://127.0.0.1:{running.port}", KEY, SECRET, private_rate_per_min=10**9
        )
        while not running.simulator.engine.done:
            time.sleep(0.05)
        top = adapter.top_of_book("btcusd")
        limit = (top.ask * Decimal("1.01")).quantize(Decimal("0.01"))
        counter = iter(range(10**9))

        def place() -> None:
            status = adapter.place_order(
                OrderRequest(f"bench-{next(counter)}", "btcusd", Side.buy, Decimal("0.001"), limit)
            )
            assert status.executed_quantity > 0 and status.fee_usd > 0

        return {
            "rounds": rounds,
            "balances": timed_ms(adapter.balances, rounds),
            "top_of_book": timed_ms(lambda: adapter.top_of_book("btcusd"), rounds),
            "place_order_ioc_fill": timed_ms(place, rounds),
            "order_status": timed_ms(lambda: adapter.order_status("bench-0"), rounds),
        }
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    result = run(parser.parse_args().rounds)
    for name, figures in result.items():
        print(name, figures)
    print("saved", save("gemini_sandbox_latency", result))


if __name__ == "__main__":
    main()
