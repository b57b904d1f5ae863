"""The exchange simulator in-process, over real HTTP and websockets, for the Gemini tests.

:class:`InProcessSimulator` replays the real Gemini capture (``../shared/data``) on a free port in
its own event-loop thread and waits until the replay has finished, so the book, trades and
candles are the capture's final ones; sandbox accounts and any other ``SimulatorOptions`` are
the caller's. Used by the sandbox, conformance, third-party client and order-events tests.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from functools import cache
from typing import Any

import pytest
import requests

from rtcrypto.market.captures import Capture, load_capture
from rtcrypto.simulator import RunningSimulator, SimulatorOptions, start_simulator
from rtcrypto.simulator.sandbox import SandboxAccount
from tests.helpers import GEMINI_CAPTURE

REPLAY_DEADLINE_S = 30.0


@cache
def gemini_capture() -> Capture:
    """The real Gemini capture, loaded once per test process (missing: the test fails)."""
    if not GEMINI_CAPTURE.is_file():
        pytest.fail(f"the real Gemini capture is required: {GEMINI_CAPTURE} (../shared/data)")
    return load_capture(GEMINI_CAPTURE)


class InProcessSimulator:
    """A started simulator with ``accounts``; ``url`` is its HTTP base URL. Call :meth:`stop`."""

    def __init__(
        self, accounts: Sequence[SandboxAccount] = (), speed: float = 1000, **options: Any
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        settings = SimulatorOptions(
            capture_paths=(GEMINI_CAPTURE,),
            port=0,
            speed=speed,
            sandbox_accounts=tuple(accounts),
            **options,
        )
        self.running: RunningSimulator = self.call(start_simulator(settings, gemini_capture()))
        self.url = f"http://127.0.0.1:{self.running.port}"
        deadline = time.monotonic() + REPLAY_DEADLINE_S
        while not self.sim_status()["done"]:
            assert time.monotonic() < deadline, (
                f"the replay did not finish in {REPLAY_DEADLINE_S} s"
            )
            time.sleep(0.05)

    def call(self, coroutine: Any) -> Any:
        """Run ``coroutine`` on the simulator's loop and return its result (60 s at most)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def sim_status(self) -> dict[str, Any]:
        """``GET /_sim/status``: replay progress and the request counters per path."""
        return dict(requests.get(f"{self.url}/_sim/status", timeout=10).json())

    def stop(self) -> None:
        self.call(self.running.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
