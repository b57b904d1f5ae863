"""History from the venue, against the simulator: ``rtc history download --venue gemini``.

The simulator replays real Binance minute bars of 2021-04-20 01:40-04:40 (the exchange halt of
02:00-04:29 leaves 30 minutes) in-process on a free port and serves ``GET /v2/candles``; the
``rtc`` CLI runs as a child process with its own RTC_HOME and RTC_GEMINI_REST_URL pointing at
the simulator. A first download while the replay runs stores the minutes replayed so far, a
second one after the replay only the later minutes, a third nothing; the stored candles are the
replayed bars, one row per minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rtcrypto.history import import_file, load_history
from rtcrypto.simulator import RunningSimulator, SimulatorOptions, start_simulator
from rtcrypto.simulator.calibration import PACKAGED_CALIBRATION
from rtcrypto.simulator.history_replay import HistoryReplay, parse_utc_ms
from tests.helpers import GEMINI_CAPTURE, REPO, free_port, shared_minute_file, wait_until

pytestmark = [pytest.mark.integration]

BINANCE_2021 = "binance_BTCUSDT_1m_2021-03-26_2021-04-30.csv.gz"
START, END = "2021-04-20T01:40Z", "2021-04-20T04:40Z"
SOURCE = "gemini-candles"
OHLCV = ("open", "high", "low", "close", "volume")


class SimulatorThread:
    """A simulator on 127.0.0.1:<free port>, its event loop in a daemon thread."""

    def __init__(self, options: SimulatorOptions) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(start_simulator(options), self.loop)
        self.running: RunningSimulator = future.result(timeout=60)
        self.url = f"http://127.0.0.1:{self.running.port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def history_status(self) -> dict[str, Any]:
        return dict(self.get("/_sim/status")[1]["history"])


@pytest.fixture(scope="module")
def replayed_bars(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    folder = tmp_path_factory.mktemp("sim-history")
    import_file(shared_minute_file(BINANCE_2021), history_dir=folder)
    frame = load_history("binance", START, END, history_dir=folder)
    yield folder, frame


@pytest.fixture
def simulator(replayed_bars: tuple[Path, Any]) -> Iterator[SimulatorThread]:
    spec = HistoryReplay(
        source="binance",
        start_ms=parse_utc_ms(START, "--start"),
        end_ms=parse_utc_ms(END, "--end"),
        calibration_path=PACKAGED_CALIBRATION,
        seed=5,
        history_dir=replayed_bars[0],
    )
    # 1 simulated minute per 0.5 s: the first download lands while the replay runs
    options = SimulatorOptions(
        capture_paths=(), port=0, speed=120, start_immediately=True, history=spec
    )
    server = SimulatorThread(options)
    yield server
    server.stop()


def rtc(args: list[str], home: Path, rest_url: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RTC_")}
    env.update(RTC_HOME=str(home), RTC_GEMINI_REST_URL=rest_url, PYTHONPATH=str(REPO))
    env["COLUMNS"] = "200"  # rich tables: one line per source
    return subprocess.run(
        [sys.executable, "-m", "rtcrypto.cli.main", "history", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def download(home: Path, rest_url: str, *extra: str) -> dict[str, Any]:
    done = rtc(["download", "--venue", "gemini", "--symbol", "BTCUSD", "--json", *extra],
               home, rest_url)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout))


def stored(home: Path) -> Any:
    return load_history(SOURCE, history_dir=home / "history")


def ts_ms(frame: Any) -> np.ndarray:
    return frame["ts"].dt.tz_localize(None).to_numpy().astype("datetime64[ms]").astype(np.int64)


def test_downloads_resume_add_nothing_twice_and_store_the_replayed_bars(
    simulator: SimulatorThread, replayed_bars: tuple[Path, Any], tmp_path: Path
) -> None:
    bars = replayed_bars[1]
    total = len(bars)
    assert total == 30  # 01:40-01:59 and 04:30-04:39: the halt is a gap in the candles too
    wait_until(lambda: simulator.history_status()["minutes_replayed"] >= 5, 60, "5 minutes")

    first = download(tmp_path, simulator.url, "--since", "2021-04-20T01:30Z")
    k = first["inserted"]
    assert 5 <= k < total, first
    assert first["candles_received"] == k and first["missing_before_minutes"] == 10
    assert (first["replaced"], first["unchanged"], first["rows_total"]) == (0, 0, k)
    assert list(ts_ms(stored(tmp_path))) == list(ts_ms(bars)[:k])

    wait_until(lambda: simulator.history_status()["minutes_replayed"] == total, 120, "the end")
    second = download(tmp_path, simulator.url, "--since", "2021-04-20T01:30Z")
    assert second["resumed_after_ms"] == int(ts_ms(bars)[k - 1])
    assert (second["inserted"], second["replaced"], second["unchanged"]) == (total - k, 0, 1)
    assert second["candles_received"] == total and second["rows_total"] == total

    history = tmp_path / "history"
    files_before = {p: p.stat().st_mtime_ns for p in history.rglob("*.parquet")}
    manifest_before = (history / "_manifest.json").read_bytes()
    third = download(tmp_path, simulator.url)
    assert (third["inserted"], third["replaced"], third["unchanged"]) == (0, 0, 1), third
    assert (history / "_manifest.json").read_bytes() == manifest_before
    assert {p: p.stat().st_mtime_ns for p in history.rglob("*.parquet")} == files_before

    frame = stored(tmp_path)
    assert len(frame) == total and frame["ts"].is_unique
    assert list(ts_ms(frame)) == list(ts_ms(bars))
    for name in OHLCV:  # exact: the numbers travel as JSON floats and back
        assert frame[name].to_numpy().tolist() == bars[name].to_numpy().tolist(), name

    info = rtc(["info"], tmp_path, simulator.url)
    assert info.returncode == 0 and SOURCE in info.stdout


def test_the_endpoint_rolls_minutes_up_newest_first_and_refuses_bad_paths_like_gemini(
    simulator: SimulatorThread, replayed_bars: tuple[Path, Any]
) -> None:
    bars = replayed_bars[1]
    wait_until(lambda: simulator.history_status()["minutes_replayed"] == len(bars), 120, "end")
    status, minutes = simulator.get("/v2/candles/btcusd/1m")
    assert status == 200 and [row[0] for row in minutes] == list(ts_ms(bars))[::-1]
    assert all(isinstance(value, (int, float)) for row in minutes for value in row)
    status, hours = simulator.get("/v2/candles/BTCUSD/1hr")
    first_hour = bars[bars["ts"] < "2021-04-20T02:00Z"]
    assert status == 200 and [row[0] for row in hours] == [
        parse_utc_ms("2021-04-20T04:00Z", "t"),
        parse_utc_ms("2021-04-20T01:00Z", "t"),
    ]
    assert hours[1][1:] == pytest.approx(
        [first_hour["open"].iloc[0], first_hour["high"].max(), first_hour["low"].min(),
         first_hour["close"].iloc[-1], first_hour["volume"].sum()]
    )  # fmt: skip

    status, body = simulator.get("/v2/candles/btcusd/2m")
    assert status == 404 and body["result"] == "error" and body["reason"] == "EndpointNotFound"
    assert "1m, 5m, 15m, 30m, 1hr, 6hr, 1day" in body["message"]
    status, body = simulator.get("/v2/candles/ethusd/1m")
    assert (status, body["result"], body["reason"]) == (400, "error", "InvalidSymbol")


def test_bad_input_and_an_unreachable_venue_are_clear_errors(
    simulator: SimulatorThread, tmp_path: Path
) -> None:
    cases = [
        (["--symbol", "ETHUSD"], simulator.url, 2, "InvalidSymbol"),
        (["--symbol", "../x"], simulator.url, 2, "--symbol"),
        (["--since", "yesterday"], simulator.url, 2, "--since 'yesterday' is not an ISO-8601"),
        (["--since", "2999-01-01"], simulator.url, 2, "is in the future"),
        ([], f"http://127.0.0.1:{free_port()}", 1, "RTC_GEMINI_REST_URL"),
    ]
    for extra, url, code, expected in cases:
        done = rtc(["download", "--venue", "gemini", *extra], tmp_path, url)
        assert done.returncode == code, (extra, done.stderr)
        assert expected in done.stderr, (extra, done.stderr)
        assert "Traceback" not in done.stderr
    kaggle = rtc(["download"], tmp_path, simulator.url)
    assert kaggle.returncode == 2 and "history_download" in kaggle.stderr
    assert not (tmp_path / "history" / "_manifest.json").exists()  # nothing was stored


def test_a_capture_replay_serves_candles_of_the_trades_it_replayed() -> None:
    """The Gemini capture (30 s, 51 trade prints over 10 symbols) at 10x: once replayed, each
    symbol's 1-minute candles are its trades per minute of their replay time; a minute the
    simulated clock has not finished yet has no candle."""
    from rtcrypto.market.captures import TradePrint, load_capture

    capture = load_capture(GEMINI_CAPTURE)
    trades = [m for m in capture.messages if isinstance(m, TradePrint) and m.symbol == "BTCUSD"]
    assert trades, "the capture has BTCUSD trades"
    expected: dict[int, list[float]] = {}
    for trade in trades:
        minute = trade.ts_receive_ms - trade.ts_receive_ms % 60_000
        price, quantity = float(trade.price), float(trade.quantity)
        row = expected.setdefault(minute, [price, price, price, price, 0.0])
        row[1], row[2], row[3] = max(row[1], price), min(row[2], price), price
        row[4] += quantity
    options = SimulatorOptions(
        capture_paths=(GEMINI_CAPTURE,), port=0, speed=10, start_immediately=True
    )
    server = SimulatorThread(options)
    try:
        wait_until(lambda: server.get("/_sim/status")[1]["done"], 60, "the capture's end")
        assert server.get("/v2/candles/btcusd/1m")[1][0][0] < max(expected)  # still open
        last_minute_end_ms = max(expected) + 60_000  # the clock runs on after the capture
        wait_until(
            lambda: server.get("/_sim/status")[1]["simulated_time_ms"] >= last_minute_end_ms,
            60,
            "the simulated clock past the last traded minute",
        )
        status, rows = server.get("/v2/candles/btcusd/1m")
        assert status == 200
        assert [row[0] for row in rows] == sorted(expected, reverse=True)
        for row in rows:
            assert row[1:] == pytest.approx(expected[row[0]])
        status, rows = server.get("/v2/candles/zecbtc/1day")  # a listed symbol
        assert status == 200 and all(len(row) == 6 for row in rows)
    finally:
        server.stop()


# Runs in the child: parse the DAG file only, no retries, dag.test() it, print the task states.
_DAG_RUNNER = """
import json, sys
from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[2])
assert not bag.import_errors, bag.import_errors
dag = bag.dags["history_download"]
for task in dag.tasks:
    task.retries = 0
run = dag.test(run_conf=json.loads(sys.argv[1]))
states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print("DAG_TEST_RESULT " + json.dumps({"state": str(run.state), "tasks": states}))
"""


@pytest.mark.slow
def test_the_history_download_dag_takes_the_venue_candles_and_a_rerun_adds_nothing(
    simulator: SimulatorThread, replayed_bars: tuple[Path, Any], tmp_path: Path
) -> None:
    from tests.helpers import isolated_airflow_env

    bars = replayed_bars[1]
    wait_until(lambda: simulator.history_status()["minutes_replayed"] == len(bars), 120, "end")
    env = isolated_airflow_env(tmp_path, drop=("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"))
    env["RTC_GEMINI_REST_URL"] = simulator.url
    conf = json.dumps({"venue": "gemini", "symbol": "BTCUSD", "since": "2021-04-20T01:30Z"})

    def run() -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-c", _DAG_RUNNER, conf, str(REPO / "dags" / "history_download.py")],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        marks = [line for line in done.stdout.splitlines() if line.startswith("DAG_TEST_RESULT ")]
        assert done.returncode == 0 and marks, (done.stdout + done.stderr)[-5000:]
        result: dict[str, Any] = json.loads(marks[-1].split(" ", 1)[1])
        result["output"] = done.stdout + done.stderr
        return result

    first = run()
    assert first["state"] == "success", first["output"][-5000:]
    assert first["tasks"] == {
        "choose_venue": "success",
        "download_gemini_candles": "success",
        "fetch": "skipped",
        "import_history": "skipped",
    }
    history = Path(env["RTC_HISTORY_DIR"])
    frame = load_history(SOURCE, history_dir=history)
    assert list(ts_ms(frame)) == list(ts_ms(bars)) and frame["ts"].is_unique
    for name in OHLCV:
        assert frame[name].to_numpy().tolist() == bars[name].to_numpy().tolist(), name
    manifest = (history / "_manifest.json").read_bytes()

    second = run()
    assert second["state"] == "success", second["output"][-5000:]
    assert "0 new minute(s), 0 updated, 1 unchanged" in second["output"]
    assert (history / "_manifest.json").read_bytes() == manifest
