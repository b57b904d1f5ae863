"""Market data v2 ``candles_1m``: ``candles_1m_updates`` frames from the replayed minutes.

A v2 client that subscribes ``{"type":"subscribe","subscriptions":[{"name":"candles_1m",
"symbols":["BTCUSD"]}]}`` gets, per symbol, one ``candles_1m_updates`` frame with the candles
replayed so far (newest first, at most a day, as ``GET /v2/candles/{symbol}/1m`` answers), then
a frame with each minute as the replay completes it. Frames are ``{"type": "candles_1m_updates",
"symbol": "BTCUSD", "changes": [[time_ms, open, high, low, close, volume], ...]}`` with JSON
numbers (Gemini's websocket market data docs, https://docs.gemini.com/websocket-api).

The candles are the REST candles' own (:class:`rtcrypto.simulator.candles.CandleView`): the same
minutes give the same rows. A minute without trades (capture replay) has no candle and sends
nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from rtcrypto.market.candles import MINUTE_MS, Candle, candle_rows
from rtcrypto.simulator.candles import MAX_CANDLES, CandleView, completed_minutes_end_ms
from rtcrypto.simulator.connections import MarketDataConnection, ReplayFrame

if TYPE_CHECKING:
    from rtcrypto.simulator.server import Simulator

log = logging.getLogger("simulator")

POLL_INTERVAL_S = 0.25  # wall seconds between checks for newly completed minutes
CANDLES_1M = "candles_1m"


def candles_frame(symbol: str, candles: list[Candle]) -> str:
    """A ``candles_1m_updates`` frame of ``candles`` (oldest first in; rows newest first out)."""
    rows = candle_rows(candles, len(candles))
    return json.dumps(
        {"type": "candles_1m_updates", "symbol": symbol, "changes": rows}, separators=(",", ":")
    )


class CandleStream:
    """Every ``candles_1m`` subscription of one simulator and what each has been sent."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self.view = CandleView(simulator)
        # (connection, symbol) -> end (exclusive, ms) of the minutes already sent
        self.sent_until_ms: dict[tuple[MarketDataConnection, str], int] = {}

    def subscribe(self, connection: MarketDataConnection, symbol: str) -> None:
        """Send ``symbol``'s replayed candles now, and each newly completed minute later."""
        key = (connection, symbol)
        if key in self.sent_until_ms:
            return
        self.simulator.engine.start()  # a candles client wants the replay running
        end_ms = self._end_ms()
        start_ms = end_ms - (MAX_CANDLES - 1) * MINUTE_MS  # the REST answer's window
        minutes = self.view.replayed_minutes(self.simulator.engine, symbol, start_ms, end_ms)
        done = [candle for candle in minutes if candle.ts_ms < end_ms]
        self._push(connection, symbol, done[-MAX_CANDLES:], end_ms)
        self.sent_until_ms[key] = end_ms

    def _end_ms(self) -> int:
        return completed_minutes_end_ms(self.simulator.engine.stream_time_ms())

    def _push(
        self, connection: MarketDataConnection, symbol: str, candles: list[Candle], ts_ms: int
    ) -> None:
        text = candles_frame(symbol, candles)
        connection.push(ReplayFrame(symbol, 0, ts_ms, 0, None, text))

    def poll(self) -> int:
        """Send every subscription the minutes completed since its last frame; the count of
        frames sent. Closed connections are forgotten."""
        end_ms = self._end_ms()
        frames = 0
        for key, sent_ms in list(self.sent_until_ms.items()):
            connection, symbol = key
            if connection.closed:
                del self.sent_until_ms[key]
                continue
            if end_ms <= sent_ms:
                continue
            minutes = self.view.replayed_minutes(self.simulator.engine, symbol, sent_ms, end_ms)
            fresh = [candle for candle in minutes if sent_ms <= candle.ts_ms < end_ms]
            if fresh:
                self._push(connection, symbol, fresh, end_ms)
                frames += 1
            self.sent_until_ms[key] = end_ms
        return frames

    async def run(self) -> None:
        """Poll every ``POLL_INTERVAL_S`` until cancelled."""
        while True:
            await asyncio.sleep(POLL_INTERVAL_S)
            try:
                self.poll()
            except Exception:  # one bad poll must not end the stream for everyone
                log.exception("candles_1m poll failed")
