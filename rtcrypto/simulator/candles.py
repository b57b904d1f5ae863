"""``GET /v2/candles/{symbol}/{time_frame}``: Gemini's candles, built from what the simulator replayed.

Only minutes the replay has finished count, newest first, at most ``MAX_CANDLES`` candles (Gemini
also answers a recent window, not the whole history); time frames ``1m`` .. ``1day``
(:data:`rtcrypto.market.candles.TIME_FRAMES_MS`), a larger frame being the roll-up of its
replayed minutes (so the newest one may still grow). Rows are JSON numbers:
``[time_ms, open, high, low, close, volume]``.

- **History replay** (``--history``): a replayed minute's candle is the imported bar itself
  (open, high, low, close, volume), for every bar the replay has fully replayed (or replayed in
  an earlier run it resumed from).
- **Capture replay**: the trades replayed so far (trade prints and the trades carried by book
  updates; a snapshot's recent trades are history and do not count), per minute of their replay
  time, looped captures included; a minute without trades has no candle.

Errors, with Gemini's error body (``result``, ``reason``, ``message``): an unknown symbol is 400
``InvalidSymbol``; an unknown time frame is 404 ``EndpointNotFound`` (no such entry point),
naming the time frames there are.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np
from aiohttp import web

from rtcrypto.market.candles import (
    MINUTE_MS,
    TIME_FRAMES_MS,
    Candle,
    aggregate,
    candle_rows,
)
from rtcrypto.market.captures import TradePrint
from rtcrypto.simulator.history_replay import HistoryReplayEngine
from rtcrypto.simulator.replay import ReplayEngine, StreamEngine
from rtcrypto.simulator.wire import invalid_symbol_body

if TYPE_CHECKING:
    from rtcrypto.simulator.server import Simulator

MAX_CANDLES = 1440  # per answer: a day of 1-minute candles
CANDLES_ROUTE = "/v2/candles/{symbol}/{time_frame}"

TradeTick = tuple[int, float, float]  # (replay time in UTC ms, price, quantity)


def completed_minutes_end_ms(stream_time_ms: int) -> int:
    """The end (exclusive, UTC ms) of the last minute fully replayed at ``stream_time_ms``: every
    message before ``stream_time_ms`` is out, so minute ``m`` is done once it reaches ``m + 59,999``."""
    return (stream_time_ms + 1) // MINUTE_MS * MINUTE_MS


def minute_candles_from_trades(trades: list[TradeTick]) -> list[Candle]:
    """Trades sorted by time as 1-minute candles (minutes without trades have none)."""
    minutes: list[Candle] = []
    for ts_ms, price, quantity in trades:
        minute_ms = ts_ms - ts_ms % MINUTE_MS
        if minutes and minutes[-1].ts_ms == minute_ms:
            last = minutes[-1]
            minutes[-1] = Candle(minute_ms, last.open, max(last.high, price),
                                 min(last.low, price), price, last.volume + quantity)  # fmt: skip
        else:
            minutes.append(Candle(minute_ms, price, price, price, price, quantity))
    return minutes


def capture_trades(engine: ReplayEngine) -> dict[str, list[TradeTick]]:
    """Per symbol, the trades one pass of the capture replays, at their replay time (pass 0)."""
    trades: dict[str, list[TradeTick]] = defaultdict(list)
    for message in engine.capture.messages:
        if isinstance(message, TradePrint):
            prints: tuple[TradePrint, ...] = (message,)
        else:
            prints = () if message.is_snapshot else message.trades
        for trade in prints:
            trades[message.symbol].append(
                (message.ts_receive_ms, float(trade.price), float(trade.quantity))
            )
    for ticks in trades.values():
        ticks.sort(key=lambda tick: tick[0])
    return trades


class CandleView:
    """The candles handler of one simulator (the capture's trades are indexed on first use)."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self._capture_trades: dict[str, list[TradeTick]] | None = None

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get(CANDLES_ROUTE, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"].upper()
        time_frame = request.match_info["time_frame"]
        if symbol not in self.simulator.valid_symbols:
            return web.json_response(invalid_symbol_body(symbol.lower()), status=400)
        frame_ms = TIME_FRAMES_MS.get(time_frame)
        if frame_ms is None:
            return web.json_response(
                {
                    "result": "error",
                    "reason": "EndpointNotFound",
                    "message": f"Unknown time frame '{time_frame[:40]}': use one of "
                    + ", ".join(TIME_FRAMES_MS),
                },
                status=404,
            )
        return web.json_response(self.candles(symbol, frame_ms))

    def candles(self, symbol: str, frame_ms: int) -> list[list[int | float]]:
        """Gemini's body for ``symbol`` and ``frame_ms``: newest first, at most ``MAX_CANDLES``."""
        engine = self.simulator.engine
        end_ms = completed_minutes_end_ms(engine.stream_time_ms())
        start_ms = end_ms - end_ms % frame_ms - (MAX_CANDLES - 1) * frame_ms
        minutes = self.replayed_minutes(engine, symbol, start_ms, end_ms)
        return candle_rows(aggregate(minutes, frame_ms), MAX_CANDLES)

    def replayed_minutes(
        self, engine: StreamEngine, symbol: str, start_ms: int, end_ms: int
    ) -> list[Candle]:
        """1-minute candles of ``symbol`` replayed in ``[start_ms, end_ms)``, oldest first."""
        if isinstance(engine, HistoryReplayEngine):
            return history_minutes(engine, symbol, start_ms)
        if isinstance(engine, ReplayEngine):
            if self._capture_trades is None:
                self._capture_trades = capture_trades(engine)
            trades = self._capture_trades.get(symbol, [])
            return minute_candles_from_trades(looped_trades(engine, trades, start_ms, end_ms))
        return []


def history_minutes(engine: HistoryReplayEngine, symbol: str, start_ms: int) -> list[Candle]:
    """The bars of a history replay's fully replayed minutes from ``start_ms`` on, as candles."""
    if symbol != engine.symbol:
        return []
    bars = engine.bars
    done = engine.minutes_replayed  # bars [0, done) are replayed (a resume counts earlier runs)
    first = int(np.searchsorted(bars.ts_ms[:done], start_ms, side="left"))
    return [
        Candle(int(bars.ts_ms[i]), float(bars.open[i]), float(bars.high[i]), float(bars.low[i]),
               float(bars.close[i]), float(bars.volume[i]))
        for i in range(first, done)
    ]  # fmt: skip


def looped_trades(
    engine: ReplayEngine, trades: list[TradeTick], start_ms: int, end_ms: int
) -> list[TradeTick]:
    """The trades of every replayed pass (pass ``k`` shifted by ``k`` x the loop shift) inside
    ``[start_ms, end_ms)``, sorted by time."""
    if not trades:
        return []
    first_ms, last_ms = trades[0][0], trades[-1][0]
    shift_ms = engine.loop_shift_ms
    selected: list[TradeTick] = []
    for loop in range(engine.loop_index + 1):
        offset_ms = loop * shift_ms
        if last_ms + offset_ms < start_ms or first_ms + offset_ms >= end_ms:
            continue
        selected += [
            (ts_ms + offset_ms, price, quantity)
            for ts_ms, price, quantity in trades
            if start_ms <= ts_ms + offset_ms < end_ms
        ]
    return selected
