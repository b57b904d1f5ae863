"""The exchange simulator's aiohttp server: websockets, REST and the admin API on one port.

Routes:

- ``GET /v1/marketdata/{symbol}`` (websocket; ``?heartbeat=true`` for heartbeats): Gemini v1
- ``GET /v2/marketdata`` (websocket; send ``{"type":"subscribe","subscriptions":[{"name":"l2",
  "symbols":[...]}]}``): Gemini v2 ``l2_updates``, ``trade``, ``heartbeat``
- ``GET /v1/pubticker/{symbol}``, ``GET /v1/symbols``, ``GET /v1/book/{symbol}``: Gemini REST
- ``POST /v1/balances``, ``/v1/order/new``, ``/v1/order/status``, ``/v1/order/cancel``,
  ``/v1/orders``: the Gemini sandbox (authenticated; see :mod:`rtcrypto.simulator.sandbox`)
- ``GET /v1/symbols/details/{symbol}``, ``/v2/ticker/{symbol}``, ``/v1/trades/{symbol}``
  (:mod:`rtcrypto.simulator.sandbox_public`) and ``POST /v1/mytrades``, ``/v1/orders/history``,
  ``/v1/order/cancel/all``, ``/v1/order/cancel/session``, ``/v1/notionalvolume``,
  ``/v1/heartbeat`` (:mod:`rtcrypto.simulator.sandbox_trades`); docs/gemini-conformance.md
- ``GET /v1/order/events`` (websocket, signed handshake): Gemini order events of the sandbox's
  orders (:mod:`rtcrypto.simulator.order_events`); ``candles_1m`` in ``/v2/marketdata``:
  :mod:`rtcrypto.simulator.candle_stream`
- ``GET /_sim/status``: state (read-only; the feed clock and ``rtc status`` read it), always on
- ``POST /_sim/drop``, ``POST /_sim/skip-sequence``, ``POST /_sim/inject``,
  ``POST /_sim/maintenance`` (503 ``Maintenance`` everywhere): fault injection, for tests;
  only with ``--fault-endpoints`` (``RTC_SIMULATOR_FAULT_ENDPOINTS``), else 404
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from rtcrypto.market.captures import (
    Capture,
    load_capture,
    load_rest_symbols,
    shift_capture,
    whole_minutes_until,
)
from rtcrypto.simulator.calibration import load_calibration
from rtcrypto.simulator.candle_stream import CANDLES_1M, CandleStream
from rtcrypto.simulator.candles import CandleView
from rtcrypto.simulator.connections import (
    HeartbeatItem,
    MarketDataConnection,
    RawFrame,
    WireProtocol,
)
from rtcrypto.simulator.history_replay import (
    HistoryReplay,
    HistoryReplayEngine,
    iso_utc,
    load_replay_bars,
)
from rtcrypto.simulator.replay import ReplayEngine, StreamEngine
from rtcrypto.simulator.sandbox import (
    DEFAULT_FEE_PCT,
    DEFAULT_HEARTBEAT_TIMEOUT_S,
    Sandbox,
    SandboxAccount,
    request_counter,
)
from rtcrypto.simulator.sandbox_guards import MaintenanceSwitch, maintenance_gate
from rtcrypto.simulator.wire import invalid_symbol_body, upgrade_required_body

log = logging.getLogger("simulator")

WS_CLOSE_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class SimulatorOptions:
    """Everything ``rtc simulate`` can set. ``speed`` 0 replays as fast as clients read."""

    capture_paths: tuple[Path, ...]
    host: str = "127.0.0.1"
    port: int = 8765
    speed: float = 1.0
    loop: bool = False
    heartbeat_interval_s: float = 1.0
    drop_after: int | None = None
    skip_sequence_at: int | None = None
    start_immediately: bool = False
    symbols_file: Path | None = None
    shift_to_now: bool = False  # move the capture's times to now, by whole minutes
    sandbox_accounts: tuple[SandboxAccount, ...] = ()  # API keys of the private endpoints
    sandbox_fee_pct: Decimal = DEFAULT_FEE_PCT  # taker fee of sandbox fills, percent
    # a "Requires Heartbeat" account's orders are cancelled after this silence
    sandbox_heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S
    sandbox_private_rate_per_min: int = 0  # 429 RateLimit above it per key; 0 = no limit
    history: HistoryReplay | None = None  # replay minute bars instead of a capture
    fault_endpoints: bool = False  # serve POST /_sim/drop, /_sim/skip-sequence, /_sim/inject

    def __post_init__(self) -> None:
        if self.history is not None:
            if self.capture_paths:
                raise ValueError("--capture and --history are mutually exclusive: choose one")
            if self.loop:
                raise ValueError("--loop replays a capture again; a --history replay ends at --end")
            if self.shift_to_now:
                raise ValueError(
                    "--shift-to-now applies to --capture; a --history replay keeps the bars' time"
                )
        if self.speed < 0:
            raise ValueError(f"--speed must be >= 0 (0 = as fast as possible), got {self.speed}")
        if self.heartbeat_interval_s <= 0:
            raise ValueError(f"--heartbeat-interval must be > 0, got {self.heartbeat_interval_s}")
        if self.drop_after is not None and self.drop_after < 1:
            raise ValueError(f"--drop-after must be >= 1, got {self.drop_after}")
        if self.skip_sequence_at is not None and self.skip_sequence_at < 0:
            raise ValueError(f"--skip-sequence-at must be >= 0, got {self.skip_sequence_at}")
        if self.sandbox_fee_pct < 0:
            raise ValueError(f"--sandbox-fee-pct must be >= 0, got {self.sandbox_fee_pct}")
        if self.sandbox_heartbeat_timeout_s <= 0:
            raise ValueError(
                "RTC_SIMULATOR_HEARTBEAT_TIMEOUT_S must be > 0, got "
                f"{self.sandbox_heartbeat_timeout_s}"
            )


class Simulator:
    """One simulated exchange: the replay engine, its clients and the fault switches."""

    def __init__(self, options: SimulatorOptions, capture: Capture | None = None) -> None:
        self.options = options
        self.shift_ms = 0  # how far the replay's clock is ahead of the capture's (whole minutes)
        self.capture: Capture | None = None
        self.engine: StreamEngine
        if options.history is not None:
            self.engine = self._history_engine(options.history)
            symbols = [options.history.symbol]
        else:
            capture_engine = self._capture_engine(capture)
            symbols = capture_engine.capture.symbols
            self.engine = capture_engine
        self.rest_symbols = self._rest_symbols(symbols)
        self.valid_symbols = {symbol.upper() for symbol in self.rest_symbols} | set(symbols)
        self.drop_armed = options.drop_after is not None  # --drop-after fires once, then disarms
        self.connections: set[MarketDataConnection] = set()  # every open market-data socket
        self._replay_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.sandbox = Sandbox(
            self.engine,
            options.sandbox_accounts,
            self.valid_symbols,
            options.sandbox_fee_pct,
            heartbeat_timeout_s=options.sandbox_heartbeat_timeout_s,
            private_rate_per_min=options.sandbox_private_rate_per_min,
        )
        self.maintenance = MaintenanceSwitch()  # POST /_sim/maintenance (fault endpoint)
        self._sandbox_task: asyncio.Task[None] | None = None
        self.request_counts: Counter[str] = Counter()  # per route, for /_sim/status
        self.candles_1m = CandleStream(self)  # v2 candles_1m subscriptions
        self._candles_task: asyncio.Task[None] | None = None

    def _capture_engine(self, capture: Capture | None) -> ReplayEngine:
        options = self.options
        self.capture = capture if capture is not None else load_capture(*options.capture_paths)
        if options.shift_to_now and self.capture.messages:
            shift_ms = whole_minutes_until(self.capture.first_ms, time.time_ns() // 1_000_000)
            self.capture = shift_capture(self.capture, shift_ms)
            self.shift_ms = shift_ms
            log.info("capture times shifted to now by %d whole minutes", shift_ms // 60_000)
        log.info(
            "capture loaded venue=%s messages=%d symbols=%s skipped_lines=%d span_s=%.1f",
            self.capture.venue,
            len(self.capture.messages),
            ",".join(self.capture.symbols),
            self.capture.lines_skipped,
            self.capture.span_ms / 1000,
        )
        return ReplayEngine(self.capture, speed=options.speed, loop=options.loop)

    def _history_engine(self, spec: HistoryReplay) -> HistoryReplayEngine:
        calibration = load_calibration(spec.calibration_path)
        bars = load_replay_bars(spec)
        gaps = bars.gaps()
        log.info(
            "history replay: prices real (minute bars of %s), book modelled (calibration %s, "
            "%s) minutes=%d first=%s halts=%d seed=%d symbol=%s",
            spec.source,
            calibration.label,
            spec.calibration_path,
            len(bars),
            iso_utc(int(bars.ts_ms[0])),
            len(gaps),
            spec.seed,
            spec.symbol,
        )
        return HistoryReplayEngine(spec, bars, calibration, speed=self.options.speed)

    def _rest_symbols(self, symbols: list[str]) -> list[str]:
        if self.options.symbols_file is not None:
            return load_rest_symbols(self.options.symbols_file)
        if self.capture is not None and self.capture.rest_symbols is not None:
            return [symbol.lower() for symbol in self.capture.rest_symbols]
        return [symbol.lower() for symbol in symbols]

    # --- application ---------------------------------------------------------------------------
    def create_app(self) -> web.Application:
        app = web.Application(
            middlewares=[request_counter(self.request_counts), maintenance_gate(self.maintenance)]
        )
        app.router.add_get("/v1/marketdata/{symbol}", self.handle_v1)
        app.router.add_get("/v2/marketdata", self.handle_v2)
        app.router.add_get("/v2/marketdata/", self.handle_v2)
        app.router.add_get("/v1/pubticker/{symbol}", self.handle_pubticker)
        app.router.add_get("/v1/symbols", self.handle_symbols)
        CandleView(self).register(app.router)  # GET /v2/candles/{symbol}/{time_frame}
        self.sandbox.add_routes(app.router)
        app.router.add_get("/v1/order/events", self.sandbox.order_events.handle)
        faults = {
            "/_sim/drop": self.handle_drop,
            "/_sim/skip-sequence": self.handle_skip_sequence,
            "/_sim/inject": self.handle_inject,
            "/_sim/maintenance": self.maintenance.handle_toggle,
        }
        for path, handler in faults.items():
            app.router.add_post(path, handler if self.options.fault_endpoints else _faults_off)
        app.router.add_get("/_sim/status", self.handle_status)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        app.on_shutdown.append(self.sandbox.order_events.close_all)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        self._replay_task = asyncio.get_running_loop().create_task(self.engine.run())
        # a sandbox trades against the book, so it must fill without waiting for a ws client
        if self.options.start_immediately or self.sandbox.enabled:
            self.engine.start()
        if self.sandbox.enabled:  # resting orders and heartbeat sessions
            self._sandbox_task = asyncio.get_running_loop().create_task(self.sandbox.run())
        self._candles_task = asyncio.get_running_loop().create_task(self.candles_1m.run())

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.drop_all("server shutting down")
        if self._candles_task is not None:
            self._candles_task.cancel()
        if self._sandbox_task is not None:
            self._sandbox_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sandbox_task
        if self._replay_task is not None:
            self._replay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replay_task

    # --- market data ---------------------------------------------------------------------------
    def _new_connection(
        self, ws: web.WebSocketResponse, protocol: WireProtocol, request: web.Request
    ) -> MarketDataConnection:
        return MarketDataConnection(
            ws,
            protocol,
            peer=f"{request.remote}:{request.path}",
            drop_after=self.options.drop_after if self.drop_armed else None,
            skip_sequence_at=self.options.skip_sequence_at,
            on_fault_drop=self._disarm_drop,
        )

    def _disarm_drop(self, connection: MarketDataConnection) -> None:
        self.drop_armed = False

    async def handle_v1(self, request: web.Request) -> web.StreamResponse:
        """Gemini v1 market data for one symbol."""
        symbol = request.match_info["symbol"].upper()
        if symbol not in self.valid_symbols:
            return web.json_response(invalid_symbol_body(symbol), status=400)
        ws = web.WebSocketResponse(timeout=WS_CLOSE_TIMEOUT_S, max_msg_size=1 << 20)
        if not ws.can_prepare(request).ok:
            return web.json_response(upgrade_required_body(), status=400)
        await ws.prepare(request)
        connection = self._new_connection(ws, "v1", request)
        connection.heartbeats = request.query.get("heartbeat", "false").lower() == "true"
        self.engine.subscribe(connection, symbol)
        log.info("v1 client connected peer=%s symbol=%s", connection.peer, symbol)
        await self._serve_connection(connection, on_text=None)
        return ws

    async def handle_v2(self, request: web.Request) -> web.StreamResponse:
        """Gemini v2 market data: ``subscribe`` to ``l2`` for one or more symbols."""
        ws = web.WebSocketResponse(timeout=WS_CLOSE_TIMEOUT_S, max_msg_size=1 << 20)
        await ws.prepare(request)
        connection = self._new_connection(ws, "v2", request)
        log.info("v2 client connected peer=%s", connection.peer)
        await self._serve_connection(connection, on_text=self._v2_subscribe)
        return ws

    def _v2_subscribe(self, connection: MarketDataConnection, text: str) -> None:
        try:
            request = json.loads(text)
            subscriptions = request["subscriptions"] if request.get("type") == "subscribe" else []
            for subscription in subscriptions:
                if subscription.get("name") == CANDLES_1M:
                    for symbol in subscription.get("symbols", []):
                        if str(symbol).upper() in self.valid_symbols:
                            self.candles_1m.subscribe(connection, str(symbol).upper())
                if subscription.get("name") != "l2":
                    continue
                for symbol in subscription.get("symbols", []):
                    if str(symbol).upper() in self.valid_symbols:
                        self.engine.subscribe(connection, str(symbol).upper())
                    else:
                        log.info("v2 subscribe: unknown symbol=%s ignored", symbol)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            log.info("v2 bad subscribe peer=%s error=%s", connection.peer, error)

    async def _serve_connection(self, connection: MarketDataConnection, on_text: Any) -> None:
        self.connections.add(connection)
        loop = asyncio.get_running_loop()
        sender = loop.create_task(connection.run_sender())
        heartbeat = loop.create_task(self._heartbeat_loop(connection))
        try:
            async for message in connection.ws:
                if message.type == WSMsgType.TEXT and on_text is not None:
                    on_text(connection, message.data)
                if connection.closed:
                    break
        finally:
            self.connections.discard(connection)
            self.engine.unsubscribe(connection)
            heartbeat.cancel()
            if not connection.closed:
                await connection.close("client gone")
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(sender, heartbeat, return_exceptions=True)
            log.info(
                "client disconnected peer=%s messages=%d", connection.peer, connection.messages_sent
            )

    async def _heartbeat_loop(self, connection: MarketDataConnection) -> None:
        interval_s = self.options.heartbeat_interval_s
        while not connection.closed:
            await asyncio.sleep(interval_s)
            if connection.heartbeats and not connection.closed:
                connection.push(HeartbeatItem(self.engine.heartbeat_time_ms(connection)))

    # --- REST ----------------------------------------------------------------------------------
    async def handle_pubticker(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"].upper()
        if symbol not in self.valid_symbols:
            return web.json_response(invalid_symbol_body(symbol.lower()), status=400)
        return web.json_response(self.engine.pubticker(symbol))

    async def handle_symbols(self, request: web.Request) -> web.Response:
        return web.json_response(self.rest_symbols)

    # --- admin (fault injection) ---------------------------------------------------------------
    async def drop_all(self, reason: str) -> int:
        """Close every market-data connection now; return how many."""
        connections = list(self.connections)
        for connection in connections:
            self.engine.unsubscribe(connection)
        await asyncio.gather(
            *(connection.close(reason) for connection in connections), return_exceptions=True
        )
        return len(connections)

    async def handle_drop(self, request: web.Request) -> web.Response:
        dropped = await self.drop_all("fault: admin drop")
        log.info("fault drop connections=%d", dropped)
        return web.json_response({"dropped": dropped})

    async def handle_skip_sequence(self, request: web.Request) -> web.Response:
        connections = list(self.connections)
        for connection in connections:
            connection.skip_next_sequence()
        return web.json_response({"connections": len(connections)})

    async def handle_inject(self, request: web.Request) -> web.Response:
        """``{"frames": [text, ...], "frames_hex": [hex, ...]}``: text frames, and binary frames
        of arbitrary bytes (invalid UTF-8, for instance), to every v1 client."""
        try:
            body = await request.json()
            texts = body.get("frames", [])
            hexes = body.get("frames_hex", [])
            if not isinstance(texts, list) or not all(isinstance(f, str) for f in texts):
                raise TypeError("frames must be a list of strings")
            if not isinstance(hexes, list) or not all(isinstance(f, str) for f in hexes):
                raise TypeError("frames_hex must be a list of hex strings")
            items = [RawFrame(text) for text in texts]
            items += [RawFrame(data=bytes.fromhex(value)) for value in hexes]
            if not items:
                raise KeyError("frames or frames_hex")
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            return web.json_response(
                {"result": "error", "reason": "BadRequest", "message": str(error)}, status=400
            )
        v1_connections = [c for c in self.connections if c.protocol == "v1"]
        for connection in v1_connections:
            for item in items:
                connection.push(item)
        return web.json_response({"connections": len(v1_connections), "frames": len(items)})

    async def handle_status(self, request: web.Request) -> web.Response:
        status = self.engine.status()
        status["clients"] = {
            "total": len(self.connections),
            "v1": sum(connection.protocol == "v1" for connection in self.connections),
            "v2": sum(connection.protocol == "v2" for connection in self.connections),
            "subscribed": status["clients"]["total"],
        }
        status["shift_ms"] = self.shift_ms
        status["faults"] = {
            "drop_after": self.options.drop_after,
            "drop_armed": self.drop_armed,
            "skip_sequence_at": self.options.skip_sequence_at,
        }
        status["requests"] = dict(self.request_counts)
        status["sandbox"] = self.sandbox.status()
        return web.json_response(status)


async def _faults_off(request: web.Request) -> web.Response:
    """A fault endpoint of a simulator started without ``--fault-endpoints``: 404, and why."""
    return web.json_response(
        {
            "error": f"{request.path} is off: start the simulator with --fault-endpoints "
            "(RTC_SIMULATOR_FAULT_ENDPOINTS=true) to inject faults"
        },
        status=404,
    )


# --- running -----------------------------------------------------------------------------------


class RunningSimulator:
    """A started simulator (for tests and embedding): ``port`` is the bound port."""

    def __init__(self, simulator: Simulator, runner: web.AppRunner, port: int) -> None:
        self.simulator = simulator
        self.runner = runner
        self.port = port

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_simulator(
    options: SimulatorOptions, capture: Capture | None = None
) -> RunningSimulator:
    """Load the capture, bind ``options.host:options.port`` (0 = any free port) and serve."""
    simulator = Simulator(options, capture)
    runner = web.AppRunner(simulator.create_app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port)
    await site.start()
    port = int(runner.addresses[0][1]) if runner.addresses else options.port
    log.info(
        "simulator listening url=ws://%s:%d speed=%s loop=%s",
        options.host,
        port,
        options.speed,
        options.loop,
    )
    return RunningSimulator(simulator, runner, port)


async def serve(options: SimulatorOptions) -> None:
    """Serve until SIGTERM or SIGINT, then close every connection and exit cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    running = await start_simulator(options)
    try:
        await stop.wait()
        log.info("simulator stopping")
    finally:
        await running.stop()


def run(options: SimulatorOptions) -> None:
    """Blocking entry point (``rtc simulate``, ``python -m streaming.simulator``)."""
    asyncio.run(serve(options))
