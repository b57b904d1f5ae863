"""The history replay over real sockets: real Binance minute bars, a modelled book.

The bars of ``binance_BTCUSDT_1m_2021-03-26_2021-04-30`` are imported into a temporary history
folder (they hold the exchange halt of 2021-04-20 02:00-04:29). Most tests run the simulator
in-process on a free port; the bad-input tests run the CLI; the last test runs simulator and ingest
as child processes into the real Kafka broker.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websocket

from rtcrypto.history import import_file, load_history
from rtcrypto.ingest.event_window import SimulatorReference
from rtcrypto.ingest.processor import FrameProcessor
from rtcrypto.simulator import RunningSimulator, SimulatorOptions, start_simulator
from rtcrypto.simulator.calibration import PACKAGED_CALIBRATION
from rtcrypto.simulator.history_replay import HistoryReplay, parse_utc_ms
from rtcrypto.simulator.sandbox import SandboxAccount
from tests.helpers import (
    REPO,
    Child,
    TopicReader,
    free_port,
    shared_minute_file,
    sim_status,
    sim_up,
    start_ingest,
    wait_until,
)

BINANCE_2021 = "binance_BTCUSDT_1m_2021-03-26_2021-04-30.csv.gz"
HALT_FROM, HALT_TO = "2021-04-20T02:00:00Z", "2021-04-20T04:30:00Z"  # 02:00-04:29 missing


@pytest.fixture(scope="module")
def history_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("history")
    import_file(shared_minute_file(BINANCE_2021), history_dir=folder)
    return folder


def bars_of(history_dir: Path, start: str, end: str) -> dict[int, dict[str, float]]:
    frame = load_history("binance", start, end, history_dir=history_dir)
    ts_ms = frame["ts"].dt.tz_localize(None).to_numpy().astype("datetime64[ms]").astype(np.int64)
    return {
        int(ts): {name: float(frame[name].iloc[i]) for name in ("open", "high", "low", "close", "volume")}
        for i, ts in enumerate(ts_ms)
    }  # fmt: skip


class SimulatorThread:
    """A simulator on 127.0.0.1:<free port>, its event loop in a daemon thread."""

    def __init__(self, options: SimulatorOptions) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(start_simulator(options), self.loop)
        self.running: RunningSimulator = future.result(timeout=60)
        self.port = self.running.port
        self.stopped = False

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as reply:
            return json.loads(reply.read())

    def v1(self, heartbeat: bool = True) -> websocket.WebSocket:
        query = "?heartbeat=true" if heartbeat else ""  # heartbeats take socket_sequence numbers
        url = f"ws://127.0.0.1:{self.port}/v1/marketdata/BTCUSD{query}"
        return websocket.create_connection(url, timeout=20)


@pytest.fixture
def replay(history_dir: Path) -> Iterator[Any]:
    started: list[SimulatorThread] = []

    def start(start: str, end: str, seed: int = 0, **overrides: Any) -> SimulatorThread:
        resume_file = overrides.pop("resume_file", None)
        spec = HistoryReplay(
            source="binance",
            start_ms=parse_utc_ms(start, "--start"),
            end_ms=parse_utc_ms(end, "--end"),
            calibration_path=PACKAGED_CALIBRATION,
            seed=seed,
            history_dir=history_dir,
            resume_file=resume_file,
        )
        overrides.setdefault("speed", 0)
        options = SimulatorOptions(
            capture_paths=(), port=0, heartbeat_interval_s=0.2, history=spec, **overrides
        )
        server = SimulatorThread(options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def read_frames(ws: websocket.WebSocket, count: int) -> list[str]:
    frames: list[str] = []
    while len(frames) < count:
        text = ws.recv()
        if '"type":"heartbeat"' not in text:
            frames.append(text)
    return frames


def test_status_says_real_prices_modelled_book_and_the_clock_is_the_bars_time(
    replay: Any, history_dir: Path
) -> None:
    server = replay("2021-04-19T10:00", "2021-04-19T10:05Z", seed=3)
    ws = server.v1()
    first = json.loads(read_frames(ws, 1)[0])
    start_ms = parse_utc_ms("2021-04-19T10:00", "")
    assert first["timestampms"] == start_ms  # the snapshot, at --start: no shift to now
    assert {event["reason"] for event in first["events"]} == {"initial"}
    later = [json.loads(text) for text in read_frames(ws, 200)]
    assert all(start_ms <= m["timestampms"] < start_ms + 5 * 60_000 for m in later)
    status = server.get("/_sim/status")
    ws.close()
    assert status["mode"] == "history"
    assert status["prices"] == "real (minute bars of binance)"
    assert status["book"] == "modelled (calibration calibration.json v1)"
    assert status["shift_ms"] == 0 and status["speed"] == 0
    assert start_ms <= status["simulated_time_ms"] < start_ms + 5 * 60_000
    history = status["history"]
    assert history["source"] == "binance" and history["seed"] == 3
    assert history["start"] == "2021-04-19T10:00:00Z" and history["end"] == "2021-04-19T10:05:00Z"
    assert history["minutes_total"] == 5 and history["halts"] == {"count": 0, "gaps": []}
    assert history["current_minute"].startswith("2021-04-19T10:0")


def test_same_seed_gives_a_byte_identical_stream(replay: Any) -> None:
    def stream(seed: int) -> list[str]:
        ws = replay("2021-04-19T12:00", "2021-04-19T12:10", seed=seed).v1(heartbeat=False)
        frames = read_frames(ws, 1500)
        ws.close()
        return frames

    first, again, other = stream(11), stream(11), stream(12)
    assert first == again
    assert first != other
    assert first[0] != other[0]  # the modelled book differs, the prices do not


def test_trades_carry_each_bar_and_rest_v2_and_sandbox_work_on_the_modelled_book(
    replay: Any, history_dir: Path
) -> None:
    bars = bars_of(history_dir, "2021-04-19T14:00", "2021-04-19T14:03")
    server = replay(
        "2021-04-19T14:00",
        "2021-04-19T14:03",
        sandbox_accounts=(SandboxAccount("key", "secret"),),
    )
    ws = server.v1()
    trades: dict[int, list[dict[str, Any]]] = defaultdict(list)
    end_ms = parse_utc_ms("2021-04-19T14:03", "")
    done = False
    while not done:
        message = json.loads(ws.recv())
        if message["type"] != "update":
            # A heartbeat at or past --end is queued after every frame before --end (one queued
            # before the last frames may arrive after the replay says done: not enough).
            done = message["type"] == "heartbeat" and message["timestampms"] >= end_ms
            continue
        for event in message["events"]:
            if event["type"] == "trade":
                trades[message["timestampms"] // 60_000 * 60_000].append(event)
    for minute, bar in bars.items():
        prints = trades[minute]
        prices = [Decimal(t["price"]) for t in prints]
        assert sum(Decimal(t["amount"]) for t in prints) == Decimal(str(bar["volume"]))
        assert min(prices) == Decimal(str(bar["low"])) and max(prices) == Decimal(str(bar["high"]))
        assert prices[-1] == Decimal(str(bar["close"]))
    ws.close()
    book = server.get("/v1/book/btcusd?limit_bids=0&limit_asks=0")
    best_bid, best_ask = Decimal(book["bids"][0]["price"]), Decimal(book["asks"][0]["price"])
    assert best_bid < best_ask and 20 <= len(book["bids"]) <= 80
    close = Decimal(str(bars[max(bars)]["close"]))
    assert best_bid < close < best_ask  # the book sits around the real close
    ticker = server.get("/v1/pubticker/btcusd")
    assert Decimal(ticker["last"]) == close and Decimal(ticker["bid"]) == best_bid
    assert server.get("/v1/symbols") == ["btcusd"]
    v2 = websocket.create_connection(f"ws://127.0.0.1:{server.port}/v2/marketdata", timeout=10)
    v2.send(
        json.dumps({"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": ["BTCUSD"]}]})
    )
    snapshot = json.loads(v2.recv())
    v2.close()
    assert snapshot["type"] == "l2_updates" and len(snapshot["changes"]) == len(book["bids"]) + len(
        book["asks"]
    )
    assert server.get("/_sim/status")["sandbox"]["accounts"] == 1


def test_a_halt_drops_clients_and_the_real_ingest_processor_resynchronises(
    replay: Any, history_dir: Path
) -> None:
    """Across the 2021-04-20 halt the v1 client is closed, reconnects, gets a fresh snapshot at
    the next bar, and the ingest's processor emits correct depth records after the jump."""
    bars = bars_of(history_dir, "2021-04-20T01:57", "2021-04-20T04:33")
    server = replay("2021-04-20T01:57", "2021-04-20T04:33")
    # as the ingest runs it: event times checked against the simulator's clock (the bars' time)
    reference = SimulatorReference(lambda: server.get("/_sim/status"))
    processor = FrameProcessor("BTCUSD", band_pct=0.5, reference=reference)
    halt_to_ms = parse_utc_ms(HALT_TO, "")
    connections = 0
    records: list[dict[str, Any]] = []
    snapshot_after_halt: dict[str, Any] | None = None
    finished = False
    while not finished and connections < 4:
        ws = server.v1()
        connections += 1
        processor.reset_connection()
        try:
            while True:
                text = ws.recv()
                if not text:
                    break
                message = json.loads(text)
                if connections == 2 and snapshot_after_halt is None:
                    snapshot_after_halt = message
                result = processor.on_frame(text, int(time.time() * 1000))
                assert result.sequence_gap is None and result.dead_letters == 0
                records += [json.loads(record.value) for record in result.records]
                if message["type"] == "heartbeat" and server.get("/_sim/status")["done"]:
                    finished = message["timestampms"] > parse_utc_ms("2021-04-20T04:34", "")
                    if finished:
                        break
        except websocket.WebSocketConnectionClosedException:
            pass
        ws.close()
        if connections == 1:
            gaps = server.get("/_sim/status")["history"]["halts"]["gaps"]
            assert gaps == [{"from": HALT_FROM, "to": HALT_TO, "minutes": 150}]
    assert connections == 2  # dropped once, at the halt
    assert snapshot_after_halt is not None
    assert snapshot_after_halt["timestampms"] == halt_to_ms
    assert {e["reason"] for e in snapshot_after_halt["events"]} == {"initial"}
    depth = {r["window_start_ms"]: r for r in records if r["type"] == "book_depth"}
    event_minutes = {r["ts_event_ms"] // 60_000 * 60_000 for r in records if r["type"] != "tick"}
    assert event_minutes <= set(bars)  # nothing inside the gap
    for minute, record in depth.items():
        bar = bars[minute]
        # the book at the end of the minute sits around the bar's close, before and after the jump
        assert abs(record["mid_price"] - bar["close"]) / bar["close"] < 0.002, (minute, record)
    assert {halt_to_ms, halt_to_ms + 60_000} <= set(depth)
    assert parse_utc_ms("2021-04-20T01:58", "") in depth


def test_resume_file_continues_after_the_last_replayed_minute(replay: Any, tmp_path: Path) -> None:
    resume = tmp_path / "replay.resume.json"
    first = replay("2021-04-21T00:00", "2021-04-21T00:10", seed=5, resume_file=resume)
    ws = first.v1()
    wait_until(
        lambda: first.get("/_sim/status")["history"]["minutes_replayed"] >= 3, 60, "3 minutes"
    )
    ws.close()
    first.stop()
    recorded = json.loads(resume.read_text())
    assert recorded["source"] == "binance" and recorded["seed"] == 5
    last_ms = recorded["last_minute_ms"]
    assert recorded["last_minute"].startswith("2021-04-21T00:0")

    again = replay("2021-04-21T00:00", "2021-04-21T00:10", seed=5, resume_file=resume)
    snapshot = json.loads(read_frames(again.v1(), 1)[0])
    assert snapshot["timestampms"] > last_ms  # never back in time
    history = again.get("/_sim/status")["history"]
    assert history["resumed_after"] == recorded["last_minute"]

    other_seed = replay("2021-04-21T00:00", "2021-04-21T00:10", seed=6, resume_file=resume)
    snapshot = json.loads(read_frames(other_seed.v1(), 1)[0])
    assert snapshot["timestampms"] == parse_utc_ms("2021-04-21T00:00", "")  # file ignored
    assert other_seed.get("/_sim/status")["history"]["resumed_after"] is None


# --- bad input through the CLI ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--history", "kraken", "--start", "2021-04-19", "--end", "2021-04-20"],
         "no such imported source (imported: binance); import minute files with: rtc history import FILE"),
        (["--history", "binance", "--start", "2021-04-19", "--end", "2021-04-19"], "the range is empty"),
        (["--history", "binance", "--start", "2021-04-20", "--end", "2021-04-19"], "must be before --end"),
        (["--history", "binance", "--start", "2019-01-01", "--end", "2019-01-02"],
         "outside the imported data of 'binance' (2021-03-26T03:00:00Z .. 2021-04-30T03:33:00Z"),
        (["--history", "binance", "--start", "2021-04-19", "--end", "2021-04-20", "--capture", "x.gz"],
         "--capture and --history are mutually exclusive"),
        (["--history", "binance", "--start", "yesterday", "--end", "2021-04-20"],
         "--start 'yesterday' is not an ISO-8601 UTC time"),
        (["--history", "binance", "--start", "2021-04-19", "--end", "2021-04-20", "--calibration", "CORRUPT"],
         "is corrupt"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(
    history_dir: Path, tmp_path: Path, arguments: list[str], expected: str
) -> None:
    corrupt = tmp_path / "calibration.json"
    corrupt.write_text('{"schema_version": 1, "quantile_probs": [0, 1]')
    arguments = [str(corrupt) if a == "CORRUPT" else a for a in arguments]
    for entry in (["-m", "rtcrypto.cli.main", "simulate"], ["-m", "streaming.simulator"]):
        done = subprocess.run(
            [sys.executable, *entry, *arguments, "--port", "0"],
            cwd=REPO,
            env={**os.environ, "RTC_HISTORY_DIR": str(history_dir)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert expected in done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    if "CORRUPT" in arguments or str(corrupt) in arguments:
        assert f"rtc simulate calibrate --out {corrupt}" in done.stderr


# --- through the real ingest into Kafka --------------------------------------------------------


@pytest.mark.integration
def test_hours_of_history_reach_kafka_through_the_real_ingest_across_a_halt(
    kafka_broker: str, fresh_topics: Any, history_dir: Path, tmp_path: Path
) -> None:
    """01:00-05:00 on 2021-04-20 (the halt leaves 90 real minutes): every minute's trades carry
    exactly its bar's volume, at its prices, and every event time is a bar's minute."""
    start, end = "2021-04-20T01:00", "2021-04-20T05:00"
    bars = bars_of(history_dir, start, end)
    port = free_port()
    command = [sys.executable, "-m", "streaming.simulator", "--history", "binance"]
    command += ["--start", start, "--end", end, "--speed", "0", "--port", str(port)]
    command += ["--history-dir", str(history_dir), "--seed", "1"]
    simulator = Child("simulator", command, tmp_path, {})
    wait_until(lambda: sim_up(port), 60, "simulator up", simulator)
    ingest = start_ingest(port, tmp_path)
    trades = TopicReader(kafka_broker, fresh_topics.trades)
    book = TopicReader(kafka_broker, fresh_topics.orderbook)
    try:
        wait_until(lambda: sim_status(port)["done"], 240, "the replay to end", simulator, ingest)
        status = sim_status(port)

        wait_until(lambda: _volume(trades.values()) >= _total(bars), 60, "every trade", ingest)
    finally:
        ingest.stop()
        simulator.stop()
        trades.close()
        book.close()
    assert status["history"]["minutes_replayed"] == len(bars) == 90
    assert status["history"]["halts"]["count"] == 1
    per_minute: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for trade in trades.values():
        per_minute[trade["ts_event_ms"] // 60_000 * 60_000].append(trade)
    assert set(per_minute) == set(bars)
    for minute, bar in bars.items():
        prints = per_minute[minute]
        assert sum(Decimal(t["amount"]) for t in prints) == Decimal(str(bar["volume"]))
        prices = [Decimal(t["price"]) for t in prints]
        assert min(prices) == Decimal(str(bar["low"])) and max(prices) == Decimal(str(bar["high"]))
    changes = [v for v in book.values() if v["type"] == "change"]
    assert {c["ts_event_ms"] // 60_000 * 60_000 for c in changes} <= set(bars)
    assert len(changes) >= 90 * 3000  # about 4,000 modelled changes a minute
    assert "exchange halt" in simulator.log()


def _volume(trades: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(t["amount"]) for t in trades), Decimal(0))


def _total(bars: dict[int, dict[str, float]]) -> Decimal:
    return sum((Decimal(str(bar["volume"])) for bar in bars.values()), Decimal(0))


def test_at_speed_the_clock_runs_on_bar_time_and_jumps_over_a_halt(replay: Any) -> None:
    """At 600x, 4 real minutes around the 150-minute halt take well under the 15 s wall the gap
    would cost without the jump; the clock ends past the first bar after the gap."""
    server = replay("2021-04-20T01:58", "2021-04-20T04:32", speed=600, start_immediately=True)
    began = time.monotonic()
    wait_until(lambda: server.get("/_sim/status")["done"], 10, "the replay to end")
    status = server.get("/_sim/status")
    assert time.monotonic() - began < 10
    assert status["speed"] == 600 and status["history"]["minutes_replayed"] == 4
    assert status["simulated_time_ms"] >= parse_utc_ms("2021-04-20T04:31:59", "")
    assert status["history"]["halts"]["count"] == 1
