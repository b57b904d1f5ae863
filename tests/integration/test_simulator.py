"""The exchange simulator end to end over real sockets (no Kafka needed).

Each test starts the simulator in-process on a free port (its own event loop in a thread) and talks
to it with websocket-client and urllib, the way the ingest and a user would. One test runs it as a
subprocess and stops it with SIGTERM.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import websocket

from rtcrypto.market.captures import Capture, load_capture
from rtcrypto.simulator import RunningSimulator, SimulatorOptions, start_simulator

ORDERBOOK_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "orderbook"
GEMINI = ORDERBOOK_DIR / "gemini_2021-04-17__GEMINI.ws.36.0.gz"
GEMINI_SYMBOLS = ORDERBOOK_DIR / "gemini_2021-04-17__GEMINI.0.gz"
KRAKEN = ORDERBOOK_DIR / "kraken_2021-04-05__KRAKEN-c197c0.0_book.gz"
REPO = Path(__file__).resolve().parents[2]

assert GEMINI.exists(), (
    f"the real recorded captures are required: {ORDERBOOK_DIR} (see ../shared/data)"
)

GEMINI_BTC_MESSAGES = 218  # 200 l2_updates (the first is the book) + 18 trades
GEMINI_BTC_CHANGES = 8663


@cache
def capture_of(path: Path) -> Capture:
    return load_capture(path)


class SimulatorThread:
    """A simulator serving on 127.0.0.1:<free port> from an event loop in a daemon thread."""

    def __init__(self, options: SimulatorOptions, capture: Capture) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.running: RunningSimulator = self.call(start_simulator(options, capture))
        self.port = self.running.port

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def stop(self) -> None:
        self.call(self.running.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    # --- client helpers ------------------------------------------------------------------------
    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def v1(self, symbol: str = "BTCUSD", heartbeat: bool = True) -> websocket.WebSocket:
        query = "?heartbeat=true" if heartbeat else ""
        return websocket.create_connection(
            self.url(f"/v1/marketdata/{symbol}{query}", "ws"), timeout=10
        )

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body or {}).encode()
        request = urllib.request.Request(self.url(path), data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


StartSimulator = Callable[..., SimulatorThread]


@pytest.fixture
def simulator() -> Iterator[StartSimulator]:
    """``simulator(capture_path=GEMINI, **options)`` -> a started :class:`SimulatorThread`."""
    started: list[SimulatorThread] = []

    def start(capture_path: Path = GEMINI, **overrides: Any) -> SimulatorThread:
        options = SimulatorOptions(
            capture_paths=(capture_path,), port=0, heartbeat_interval_s=0.1, **overrides
        )
        server = SimulatorThread(options, capture_of(capture_path))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def receive(ws: websocket.WebSocket) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv())
    return message


def receive_until(
    ws: websocket.WebSocket, done: Callable[[list[dict[str, Any]]], bool], limit_s: float = 30
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + limit_s
    while not done(messages):
        assert time.monotonic() < deadline, f"timed out after {len(messages)} messages"
        messages.append(receive(ws))
    return messages


def receive_until_closed(ws: websocket.WebSocket) -> list[dict[str, Any]]:
    """Messages until the server closes the connection (close frame or a dead socket)."""
    messages: list[dict[str, Any]] = []
    try:
        while text := ws.recv():
            messages.append(json.loads(text))
    except websocket.WebSocketConnectionClosedException:
        pass
    return messages


def updates(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == "update"]


def changes_of(messages: list[dict[str, Any]]) -> list[tuple[int, dict[str, str]]]:
    return [
        (m["timestampms"], e)
        for m in updates(messages)
        for e in m["events"]
        if e["type"] == "change"
    ]


def file_changes(path: Path, symbol: str) -> list[tuple[int, str, str, str]]:
    """Every level change of ``symbol`` straight from the raw file, without the project's parser:
    (line receive time in ms, v1 side, price, quantity)."""
    changes = []
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        for line in stream:
            stamp, _, body = line.partition(": ")
            if not stamp[:1].isdigit() or f'"symbol":"{symbol}"' not in body:
                continue
            message = json.loads(body)
            for side, price, quantity in message.get("changes", []):
                side_v1 = "bid" if side == "buy" else "ask"
                changes.append((int(float(stamp) * 1000), side_v1, price, quantity))
    return changes


def file_first_minute_sums(path: Path, symbol: str) -> tuple[Decimal, Decimal, int]:
    """Recompute straight from the file, without the project's parser: in the first 60 s window
    (by line receive time) of ``symbol``, sum price x quantity per side, and count the changes."""
    bid_sum = ask_sum = Decimal(0)
    count, first_window = 0, None
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        for line in stream:
            stamp, _, body = line.partition(": ")
            if not stamp[:1].isdigit() or f'"symbol":"{symbol}"' not in body:
                continue
            message = json.loads(body)
            if message.get("type") != "l2_updates":
                continue
            window = int(float(stamp) * 1000) // 60_000
            first_window = window if first_window is None else first_window
            if window != first_window:
                break
            for side, price, quantity in message["changes"]:
                notional = Decimal(price) * Decimal(quantity)
                bid_sum, ask_sum = (
                    (bid_sum + notional, ask_sum)
                    if side == "buy"
                    else (bid_sum, ask_sum + notional)
                )
                count += 1
    return bid_sum, ask_sum, count


def apply_to_book(book: dict[tuple[str, Decimal], Decimal], event: dict[str, str]) -> None:
    """Apply one v1 change and check its delta against the book the client keeps."""
    key = (event["side"], Decimal(event["price"]))
    previous = Decimal(0) if event["reason"] == "initial" else book.get(key, Decimal(0))
    assert Decimal(event["delta"]) == Decimal(event["remaining"]) - previous, event
    if Decimal(event["remaining"]) == 0:
        book.pop(key, None)
    else:
        book[key] = Decimal(event["remaining"])


# --- v1 ----------------------------------------------------------------------------------------


def test_v1_stream_from_the_start_recomputes_from_the_file(simulator: StartSimulator) -> None:
    server = simulator(speed=0)
    ws = server.v1()
    messages = receive_until(ws, lambda ms: len(updates(ms)) >= GEMINI_BTC_MESSAGES)
    first = messages[0]
    assert first["type"] == "update" and first["socket_sequence"] == 0
    assert len(first["events"]) == 6614 and {e["reason"] for e in first["events"]} == {"initial"}
    assert first["events"][0] == {
        "type": "change",
        "side": "bid",
        "price": "60696.02",
        "remaining": "0.02",
        "delta": "0.02",
        "reason": "initial",
    }
    assert first["timestampms"] == 1618677942634 and first["timestamp"] == 1618677942
    assert [m["socket_sequence"] for m in messages] == list(range(len(messages)))
    event_ids = [m["eventId"] for m in updates(messages)]
    assert event_ids == sorted(set(event_ids))
    # Every change of every BTCUSD line, once, remaining = quantity, at the line's time.
    received = changes_of(messages)
    assert len(received) == GEMINI_BTC_CHANGES
    streamed = [(ts, e["side"], e["price"], e["remaining"]) for ts, e in received]
    assert streamed == file_changes(GEMINI, "BTCUSD")
    book: dict[tuple[str, Decimal], Decimal] = {}
    for _, event in received:
        apply_to_book(book, event)
    # The first minute's book metric, recomputed from the raw file, matches the stream's.
    bid_sum, ask_sum, count = file_first_minute_sums(GEMINI, "BTCUSD")
    window = received[0][0] // 60_000
    in_window = [e for ts, e in received if ts // 60_000 == window]
    assert len(in_window) == count
    stream_bid = sum(
        (Decimal(e["price"]) * Decimal(e["remaining"]) for e in in_window if e["side"] == "bid"),
        Decimal(0),
    )
    stream_ask = sum(
        (Decimal(e["price"]) * Decimal(e["remaining"]) for e in in_window if e["side"] == "ask"),
        Decimal(0),
    )
    assert (stream_bid, stream_ask) == (bid_sum, ask_sum)
    trades = [e for m in updates(messages) for e in m["events"] if e["type"] == "trade"]
    assert len(trades) == 18
    assert trades[0] == {
        "type": "trade",
        "tid": 34359636714,
        "price": "60720.31",
        "amount": "0.03277419",
        "makerSide": "ask",
    }
    ws.close()


def test_heartbeats_keep_advancing_after_the_capture_ends(simulator: StartSimulator) -> None:
    server = simulator(speed=0)
    ws = server.v1()
    messages = receive_until(ws, lambda ms: len(updates(ms)) >= GEMINI_BTC_MESSAGES)
    last_event_ms = messages[-1]["timestampms"]
    beats = [m for m in receive_until(ws, lambda ms: len(ms) >= 6) if m["type"] == "heartbeat"]
    assert len(beats) == 6 and set(beats[0]) == {"type", "socket_sequence", "timestampms"}
    times = [beat["timestampms"] for beat in beats]
    assert times == sorted(times) and times[-1] > times[0] >= last_event_ms
    assert server.get("/_sim/status")[1]["done"] is True
    ws.close()


def test_no_heartbeats_unless_asked(simulator: StartSimulator) -> None:
    server = simulator(speed=0)
    ws = server.v1(heartbeat=False)
    receive_until(ws, lambda ms: len(ms) >= GEMINI_BTC_MESSAGES)
    ws.settimeout(0.5)
    with pytest.raises(websocket.WebSocketTimeoutException):
        ws.recv()
    ws.close()


def test_real_time_stream_is_ordered_in_time_and_sequence(simulator: StartSimulator) -> None:
    server = simulator(speed=4)
    ws = server.v1()
    started = time.monotonic()
    messages = receive_until(ws, lambda ms: time.monotonic() - started > 2.5)
    times = [m["timestampms"] for m in messages]
    assert times == sorted(times)  # heartbeats never run ahead of updates still to come
    assert [m["socket_sequence"] for m in messages] == list(range(len(messages)))
    beats = [m for m in messages if m["type"] == "heartbeat"]
    assert len(beats) >= 10
    # About 4 simulated seconds per wall second.
    simulated_s = (times[-1] - 1618677942586) / 1000
    assert 6 < simulated_s < 14
    ws.close()


def test_late_joiner_gets_the_current_book_then_consistent_updates(
    simulator: StartSimulator,
) -> None:
    server = simulator(speed=5, start_immediately=True)
    time.sleep(1.5)
    ws = server.v1()
    messages = receive_until(ws, lambda ms: len(updates(ms)) >= 30)
    snapshot = messages[0]
    assert snapshot["type"] == "update" and snapshot["socket_sequence"] == 0
    assert snapshot["eventId"] % 2 == 1  # snapshot ids sit between replayed message ids
    assert {e["reason"] for e in snapshot["events"]} == {"initial"}
    assert all(e["delta"] == e["remaining"] for e in snapshot["events"])
    assert snapshot["timestampms"] > 1618677942634 + 5000
    book: dict[tuple[str, Decimal], Decimal] = {}
    for _, event in changes_of(messages):
        apply_to_book(book, event)  # every later delta agrees with the snapshot's book
    times = [m["timestampms"] for m in messages]
    assert times == sorted(times)
    ws.close()


def test_loop_restarts_shifted_with_changes_that_rebuild_the_snapshot(
    simulator: StartSimulator,
) -> None:
    server = simulator(speed=0, loop=True)
    ws = server.v1()
    messages = receive_until(ws, lambda ms: len(updates(ms)) >= GEMINI_BTC_MESSAGES + 1)
    capture = capture_of(GEMINI)
    restart = updates(messages)[GEMINI_BTC_MESSAGES]
    assert restart["timestampms"] == 1618677942634 + capture.span_ms + 1000
    assert restart["eventId"] > updates(messages)[-2]["eventId"]
    reasons = {e["reason"] for e in restart["events"]}
    assert "initial" not in reasons and reasons <= {"place", "cancel"}
    removals = [e for e in restart["events"] if e["remaining"] == "0"]
    assert removals and all(e["reason"] == "cancel" for e in removals)
    book: dict[tuple[str, Decimal], Decimal] = {}
    first_book: dict[tuple[str, Decimal], Decimal] = {}
    for event in messages[0]["events"]:
        apply_to_book(first_book, event)
    for _, event in changes_of(messages):
        apply_to_book(book, event)
    assert book == first_book  # after the restart the book is the capture's first book again
    ws.close()


def test_unknown_symbol_is_rejected_like_gemini(simulator: StartSimulator) -> None:
    server = simulator(speed=0)
    with pytest.raises(websocket.WebSocketBadStatusException) as raised:
        server.v1("NOPEUSD")
    assert raised.value.status_code == 400


def test_other_symbols_of_the_capture_are_served(simulator: StartSimulator) -> None:
    server = simulator(speed=0)
    ws = server.v1("ETHUSD")
    first = receive(ws)
    assert first["type"] == "update" and first["timestampms"] == 1618677942586
    assert first["events"][0]["price"] == "2368.64"
    ws.close()


def test_kraken_book_is_served_as_gemini_btcusd(simulator: StartSimulator) -> None:
    server = simulator(KRAKEN, speed=0)
    ws = server.v1()
    first = receive(ws)
    assert len(first["events"]) == 2000 and first["timestampms"] == 1617666424207
    assert first["events"][0] == {
        "type": "change",
        "side": "ask",
        "price": "58729.40000",
        "remaining": "0.45000000",
        "delta": "0.45000000",
        "reason": "initial",
    }
    second = receive(ws)
    assert second["socket_sequence"] == 1 and second["timestampms"] >= first["timestampms"]
    ws.close()


# --- faults ------------------------------------------------------------------------------------


def test_drop_after_closes_each_connection_once(simulator: StartSimulator) -> None:
    server = simulator(speed=0, drop_after=5)
    ws = server.v1()
    assert len(receive_until_closed(ws)) == 5
    again = server.v1()
    assert len(receive_until(again, lambda ms: len(ms) >= 20)) == 20  # fired once only
    assert server.get("/_sim/status")[1]["faults"]["drop_armed"] is False
    again.close()


def test_skip_sequence_at_and_admin_skip(simulator: StartSimulator) -> None:
    server = simulator(speed=0, skip_sequence_at=3, fault_endpoints=True)
    ws = server.v1()
    sequences = [m["socket_sequence"] for m in receive_until(ws, lambda ms: len(ms) >= 6)]
    assert sequences == [0, 1, 2, 4, 5, 6]
    assert server.post("/_sim/skip-sequence") == {"connections": 1}
    previous = sequences[-1]

    def gap_seen(messages: list[dict[str, Any]]) -> bool:
        numbers = [previous] + [m["socket_sequence"] for m in messages]
        return any(b - a != 1 for a, b in zip(numbers, numbers[1:], strict=False))

    after = [previous] + [m["socket_sequence"] for m in receive_until(ws, gap_seen)]
    after.append(receive(ws)["socket_sequence"])
    steps = [b - a for a, b in zip(after, after[1:], strict=False)]
    assert steps[:-2] == [1] * (len(steps) - 2) and steps[-2:] == [2, 1]  # one number skipped
    ws.close()


def test_admin_drop_closes_every_market_data_connection(simulator: StartSimulator) -> None:
    server = simulator(speed=1, fault_endpoints=True)
    first, second = server.v1(), server.v1("ETHUSD")
    receive(first)
    assert server.post("/_sim/drop") == {"dropped": 2}
    for ws in (first, second):
        receive_until_closed(ws)
        assert not ws.connected
    assert server.get("/_sim/status")[1]["clients"]["total"] == 0


def test_inject_sends_raw_frames_verbatim_without_a_sequence(simulator: StartSimulator) -> None:
    server = simulator(speed=0.5, fault_endpoints=True)
    ws = server.v1()
    before = receive(ws)
    frames = ["not json at all", '{"type":"update","events":"oops"}']
    assert server.post("/_sim/inject", {"frames": frames}) == {"connections": 1, "frames": 2}
    texts: list[str] = []
    while not (frames[0] in texts and frames[1] in texts):
        assert len(texts) < 100, "injected frames never arrived"
        texts.append(str(ws.recv()))
    texts.append(str(ws.recv()))
    assert texts.index(frames[1]) == texts.index(frames[0]) + 1  # in order, back to back
    sequences = [json.loads(t)["socket_sequence"] for t in texts if t not in frames]
    first = before["socket_sequence"] + 1
    assert sequences == list(range(first, first + len(sequences)))  # no number used by them
    ws.close()


# --- v2 ----------------------------------------------------------------------------------------


def test_v2_subscribe_l2_gets_the_book_updates_trades_and_heartbeats(
    simulator: StartSimulator,
) -> None:
    server = simulator(speed=0)
    ws = websocket.create_connection(server.url("/v2/marketdata", "ws"), timeout=10)
    subscribe = {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": ["BTCUSD"]}]}
    ws.send(json.dumps(subscribe))
    messages = receive_until(ws, lambda ms: sum(m["type"] == "heartbeat" for m in ms) >= 3)
    first = messages[0]
    assert first["type"] == "l2_updates" and first["symbol"] == "BTCUSD"
    assert len(first["changes"]) == 6614 and first["changes"][0] == ["buy", "60696.02", "0.02"]
    assert first["trades"] == []
    books = [m for m in messages if m["type"] == "l2_updates"]
    trades = [m for m in messages if m["type"] == "trade"]
    assert len(books) == 200 and len(trades) == 18
    assert trades[0]["side"] == "buy" and trades[0]["event_id"] == 34359636714
    assert sum(len(m["changes"]) for m in books) == GEMINI_BTC_CHANGES
    beat = next(m for m in messages if m["type"] == "heartbeat")
    assert set(beat) == {"type", "timestamp"} and beat["timestamp"] >= 1618677942586
    ws.close()


# --- REST and status ---------------------------------------------------------------------------


def test_rest_pubticker_and_symbols(simulator: StartSimulator) -> None:
    server = simulator(speed=0, symbols_file=GEMINI_SYMBOLS)
    status, symbols = server.get("/v1/symbols")
    assert status == 200 and len(symbols) == 57 and "btcusd" in symbols
    ws = server.v1()
    receive_until(ws, lambda ms: len(updates(ms)) >= GEMINI_BTC_MESSAGES)
    status, ticker = server.get("/v1/pubticker/BtcUsd")
    assert status == 200
    assert set(ticker) == {"bid", "ask", "last", "volume"}
    assert Decimal(ticker["bid"]) < Decimal(ticker["ask"])
    assert ticker["last"] == "60720.31" or Decimal(ticker["last"]) > 0
    assert set(ticker["volume"]) == {"BTC", "USD", "timestamp"}
    assert Decimal(ticker["volume"]["BTC"]) > 0
    status, error = server.get("/v1/pubticker/nopeusd")
    assert status == 400 and error["result"] == "error" and error["reason"] == "InvalidSymbol"
    ws.close()


def test_symbols_default_to_the_capture(simulator: StartSimulator) -> None:
    server = simulator(speed=0)
    status, symbols = server.get("/v1/symbols")
    assert status == 200 and "btcusd" in symbols and len(symbols) == 10


def test_status_reports_clients_progress_and_time(simulator: StartSimulator) -> None:
    server = simulator(speed=0)
    status = server.get("/_sim/status")[1]
    assert status["started"] is False and status["lines_replayed"] == 0
    assert status["mode"] == "capture" and status["shift_ms"] == 0
    ws = server.v1()
    receive_until(ws, lambda ms: len(updates(ms)) >= GEMINI_BTC_MESSAGES)
    status = server.get("/_sim/status")[1]
    assert status["started"] is True and status["clients"]["v1"] == 1
    assert status["lines_replayed"] > 0 and status["simulated_time_ms"] >= 1618677942586
    assert status["capture"]["venue"] == "gemini" and status["capture"]["lines_skipped"] == 0
    ws.close()


# --- the service -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_service_entry_point_serves_and_stops_on_sigterm() -> None:
    port = free_port()
    environment = {**os.environ, "RTC_SIMULATOR_PORT": str(port), "RTC_LOG_LEVEL": "WARNING"}
    command = [
        sys.executable,
        "-m",
        "streaming.simulator",
        "--capture",
        str(KRAKEN),
        "--speed",
        "0",
    ]
    service = subprocess.Popen(command, cwd=REPO, env=environment, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ws = websocket.create_connection(
                    f"ws://127.0.0.1:{port}/v1/marketdata/BTCUSD", timeout=10
                )
                break
            except (ConnectionRefusedError, OSError):
                assert time.monotonic() < deadline and service.poll() is None
                time.sleep(0.2)
        assert len(receive(ws)["events"]) == 2000
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=15) == 0
        ws.close()
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()


def test_fault_endpoints_are_off_unless_enabled(simulator: StartSimulator) -> None:
    """Without --fault-endpoints nobody who reaches the port can drop, skip or inject (404 with
    the flag to use); /_sim/status stays on (the feed clock and `rtc status` read it)."""
    server = simulator(speed=1)
    ws = server.v1()
    receive(ws)
    for path in ("/_sim/drop", "/_sim/skip-sequence", "/_sim/inject"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            server.post(path, {"frames": ["x"]})
        assert refused.value.code == 404
        assert "--fault-endpoints" in json.loads(refused.value.read())["error"]
    status, body = server.get("/_sim/status")
    assert status == 200 and body["clients"]["total"] == 1
    receive(ws)  # the connection was not dropped
    ws.close()


@pytest.mark.parametrize(
    ("flags", "env", "enabled"),
    [
        ((), {}, False),
        (("--fault-endpoints",), {}, True),
        ((), {"RTC_SIMULATOR_FAULT_ENDPOINTS": "true"}, True),
        (("--no-fault-endpoints",), {"RTC_SIMULATOR_FAULT_ENDPOINTS": "true"}, False),
    ],
)
def test_fault_endpoints_flag_and_setting(
    flags: tuple[str, ...], env: dict[str, str], enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rtcrypto.config import Settings
    from rtcrypto.simulator.flags import SimulateFlags, simulator_options

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    chosen = {"--fault-endpoints": True, "--no-fault-endpoints": False}
    flag = chosen[flags[0]] if flags else None
    options = simulator_options(SimulateFlags(capture=(GEMINI,), fault_endpoints=flag), Settings())
    assert options.fault_endpoints is enabled
