"""Helpers shared by the integration tests: child processes, free ports, Kafka reads, captures."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
ORDERBOOK = SHARED_DATA / "orderbook"
MINUTE_DIR = SHARED_DATA / "minute"
GEMINI_CAPTURE = ORDERBOOK / "gemini_2021-04-17__GEMINI.ws.36.0.gz"


def shared_minute_file(name: str) -> Path:
    """A real file of ../shared/data/minute; the test fails (never skips) when it is missing."""
    import pytest

    path = MINUTE_DIR / name
    if not path.is_file():
        pytest.fail(
            f"real minute data missing: {path} (tests need the shared data folder "
            f"../shared/data next to the repository, see its README.md)",
            pytrace=False,
        )
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Child:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(
        self, name: str, command: list[str], log_dir: Path, env: Mapping[str, str]
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; return the exit code (SIGKILL after ``timeout_s``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash, not a shutdown)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start_simulator(port: int, log_dir: Path, *args: str, capture: Path = GEMINI_CAPTURE) -> Child:
    command = [sys.executable, "-m", "streaming.simulator", "--capture", str(capture)]
    command += ["--port", str(port), *args]
    child = Child("simulator", command, log_dir, {})
    wait_until(lambda: _http_ok(f"http://127.0.0.1:{port}/_sim/status"), 30, "simulator up", child)
    return child


def start_ingest(sim_port: int, log_dir: Path, env: Mapping[str, str] | None = None) -> Child:
    settings_env = {
        "RTC_SIMULATOR_PORT": str(sim_port),
        "RTC_FEED": "simulator",
        "RTC_HEARTBEAT_INTERVAL_S": "1",
        "RTC_RECONNECT_INITIAL_S": "0.2",
        "RTC_RECONNECT_MAX_S": "2",
        **(env or {}),
    }
    return Child("ingest", [sys.executable, "-m", "streaming.ingest"], log_dir, settings_env)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def sim_status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/status", timeout=5) as response:
        return dict(json.load(response))


def sim_up(port: int) -> bool:
    """Whether the simulator on ``port`` answers ``/_sim/status``."""
    try:
        sim_status(port)
        return True
    except OSError:
        return False


def sim_post(port: int, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(payload or {}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return dict(json.loads(body)) if body else {}


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, *children: Child
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        for child in children:
            if not child.alive():
                raise AssertionError(
                    f"{child.name} died while waiting for {what}:\n{child.log()[-3000:]}"
                )
        time.sleep(0.2)
    logs = "\n".join(f"--- {child.name}\n{child.log()[-3000:]}" for child in children)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{logs}")


class TopicReader:
    """Reads a topic from the beginning, accumulating records across calls."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            consumer_timeout_ms=500,
        )
        partitions = self.consumer.partitions_for_topic(topic) or {0}
        self.consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        self.consumer.seek_to_beginning()
        self.records: list[tuple[str | None, dict[str, Any]]] = []
        self.closed = False

    def poll(self) -> list[tuple[str | None, dict[str, Any]]]:
        if self.closed:
            return self.records
        for message in self.consumer:
            key = message.key.decode() if message.key is not None else None
            self.records.append((key, json.loads(message.value)))
        return self.records

    def values(self) -> list[dict[str, Any]]:
        return [value for _, value in self.poll()]

    def close(self) -> None:
        """Read what is left, then close; later reads return what was read."""
        self.poll()
        self.consumer.close()
        self.closed = True


def gemini_btc_window_sums(
    path: Path = GEMINI_CAPTURE, symbol: str = "BTCUSD"
) -> dict[int, dict[str, Any]]:
    """Independent recomputation from a Gemini v2 capture, per one-minute window.

    Kept deliberately separate from the product code: read the gzip lines, take every
    ``l2_updates`` change of ``symbol``, event time = int(receive seconds * 1000), and sum
    price x quantity per side (remaining = quantity under the v2 -> v1 mapping).
    """
    sums: dict[int, dict[str, Any]] = defaultdict(
        lambda: {"bid": Decimal(0), "ask": Decimal(0), "count": 0}
    )
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as lines:  # type: ignore[operator]
        for line in lines:
            stamp, separator, payload = line.partition(": ")
            if not separator or "<-" in stamp or "->" in stamp or "<->" in stamp:
                continue
            try:
                message = json.loads(payload)
                event_ms = int(Decimal(stamp.strip()) * 1000)
            except (ValueError, ArithmeticError):
                continue
            if not isinstance(message, dict) or message.get("type") != "l2_updates":
                continue
            if message.get("symbol") != symbol:
                continue
            window = event_ms - event_ms % 60_000
            for side, price, quantity in message["changes"]:
                book_side = "bid" if side == "buy" else "ask"
                sums[window][book_side] += Decimal(price) * Decimal(quantity)
                sums[window]["count"] += 1
    return dict(sums)


def count_by(values: Iterable[dict[str, Any]], field: str) -> dict[Any, int]:
    counts: dict[Any, int] = defaultdict(int)
    for value in values:
        counts[value.get(field)] += 1
    return dict(counts)


def isolated_airflow_env(root: Path, drop: Iterable[str] = ()) -> dict[str, str]:
    """Environment of an isolated Airflow under ``root`` (own home, SQLite migrated here, the
    repo's dags/ and plugins/, no examples) and an RTC home; ``drop`` removes inherited variables."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        # the supervisor DAGs import the project's operators from plugins/ at parse time
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow' / 'airflow.db'}",
        "RTC_HOME": str(root / "rtc"),
        "RTC_HISTORY_DIR": str(root / "history"),
    }
    for name in drop:
        env.pop(name, None)
    airflow = str(Path(sys.executable).parent / "airflow")
    migrated = subprocess.run(
        [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
    return env


def local_spark(app_name: str) -> Iterator[Any]:
    """A local[2] Spark session for unit tests (UTC, 2 shuffle partitions, no UI), stopped after."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName(app_name)
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
