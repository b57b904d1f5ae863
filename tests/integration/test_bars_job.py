"""The real Spark bars job (spark-submit) against the real local Kafka broker and a history store.

Input: the recorded Gemini trades (10 symbols) and the BTCUSD/ETHUSD book as the ingest writes
it (changes, ticks, per-minute ``book_depth`` mids), replayed five times a minute apart, the
trades of replays 2 and 3 left out (minutes with a mid only). Expected bars: the pure rules of
``rtcrypto.feedbars.model``. The job runs three times on one input: a first run on the first
part, killed with SIGKILL; a restart from its checkpoint after the rest arrived; a run from
scratch (a new checkpoint, all input again), which must leave the store byte for byte unchanged.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaConsumer, KafkaProducer
from typer.testing import CliRunner

from rtcrypto.cli.main import app as rtc_app
from rtcrypto.feedbars import options
from rtcrypto.feedbars.model import FeedBar, group_by_source, minute_bars
from rtcrypto.history import load_history
from rtcrypto.history.bars import MINUTE_MS
from rtcrypto.history.store import read_manifest
from rtcrypto.market.schemas import Trade
from rtcrypto.spark import submit as spark
from tests.unit.test_feed_bars import (
    capture_orderbook,
    capture_trades,
    folder_state,
    mid_inputs,
    trade_inputs,
)
from tests.unit.test_liquidity_spark import OrderbookRecord

pytestmark = pytest.mark.integration

JOB_TIMEOUT_S = 300.0  # Spark start-up plus two batches, on a busy 2-core box
WATERMARK_MS = 2_000
REPLAYS = 5
Record = Trade | OrderbookRecord


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def produce(bootstrap: str, topic: str, records: Sequence[Record]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all")
    for record in records:
        producer.send(topic, key=record.key.encode(), value=record.to_bytes())
    producer.flush()
    producer.close()


class BarsJob:
    """spark-submit of ``spark_jobs/bars.py`` with its log in a file; CPU and RSS sampled."""

    def __init__(self, job: options.BarsJobOptions, log_file: Path) -> None:
        command = options.submit_command(job, spark.kafka_connector_jars())
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] = spark.start_job(command, log_file=log_file)
        self.peak_rss_mb = 0.0

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def assert_alive(self) -> None:
        if self.process.poll() is not None:
            tail = "\n".join(self.log_text().splitlines()[-40:])
            raise AssertionError(f"job exited with {self.process.returncode}\n{tail}")
        self.peak_rss_mb = max(self.peak_rss_mb, tree_rss_mb(self.process.pid))

    def wait_for(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while time.monotonic() < deadline:
            if done():
                return
            self.assert_alive()
            time.sleep(1.0)
        tail = "\n".join(self.log_text().splitlines()[-40:])
        raise AssertionError(f"timed out waiting for {what}\n{tail}")

    def kill(self) -> None:
        """SIGKILL to the whole group: no shutdown hook, no clean stop."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int:
        return spark.stop_job(self.process, timeout_s=60)


def tree_pids(root: int) -> list[int]:
    pids, frontier = [root], [root]
    while frontier:
        children = spark._children(frontier.pop())
        pids += children
        frontier += children
    return pids


def tree_rss_mb(root: int) -> float:
    total_kb = 0
    for pid in tree_pids(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


def tree_cpu_s(root: int) -> float:
    ticks = 0
    for pid in tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def jobs() -> Iterator[list[BarsJob]]:
    started: list[BarsJob] = []
    yield started
    for job in started:
        job.kill()


def closed(bars: list[FeedBar], max_event_ms: int) -> list[FeedBar]:
    """The bars whose minute ends at or before the watermark."""
    return [bar for bar in bars if bar.ts_ms + MINUTE_MS <= max_event_ms - WATERMARK_MS]


def expected_bars(records: Sequence[Record]) -> list[FeedBar]:
    trades = [record for record in records if isinstance(record, Trade)]
    book = [record for record in records if not isinstance(record, Trade)]
    bars = minute_bars(trade_inputs(trades), mid_inputs(book))  # type: ignore[arg-type]
    return closed(bars, max(record.ts_event_ms for record in records))


def store_matches(history_dir: Path, expected: list[FeedBar]) -> bool:
    """True when every source holds exactly the expected bars (asserts the values then)."""
    if not (history_dir / "_manifest.json").exists():
        return False
    by_source = group_by_source(expected, "gemini-feed", "BTCUSD")
    entries = read_manifest(history_dir)
    if {entry.source for entry in entries} != set(by_source):
        return False
    frames = {source: load_history(source, history_dir=history_dir) for source in by_source}
    if any(len(frames[source]) != len(bars) for source, bars in by_source.items()):
        return False
    for source, bars in by_source.items():
        frame = frames[source]
        assert list(frame["ts"].astype("int64")) == list(bars.ts_ms), source
        for column in ("open", "high", "low", "close", "volume"):
            np.testing.assert_array_equal(frame[column], getattr(bars, column), err_msg=source)
        np.testing.assert_allclose(
            frame["weighted_price"].to_numpy(dtype=float, na_value=np.nan),
            bars.weighted_price,
            rtol=1e-12,
            err_msg=source,
        )
    assert len(entries) == len(by_source)  # one upsert entry per source, no duplicates
    return True


def logged_upserts(log: str) -> dict[str, int]:
    """Sums of the sink's per-upsert counts in a job log."""
    totals = {"inserted": 0, "replaced": 0, "unchanged": 0}
    for line in log.splitlines():
        if "bars upserted" in line:
            for name in totals:
                match = re.search(rf"\b{name}=(\d+)", line)
                totals[name] += int(match[1]) if match else 0
    return totals


# --------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------


@pytest.mark.slow  # three Spark starts, about 3 minutes
def test_bars_job_writes_recomputed_bars_and_reruns_leave_the_store_unchanged(
    kafka_broker: str,
    kafka_topic_factory: Callable[..., str],
    jobs: list[BarsJob],
    tmp_path: Path,
    services_report: Callable[[str], None],
) -> None:
    topics = {label: kafka_topic_factory(label) for label in ("trades", "orderbook", "heartbeat")}
    trades = capture_trades(REPLAYS, without_trades=(2, 3))
    book = capture_orderbook(REPLAYS)
    everything: list[Record] = sorted([*trades, *book], key=lambda record: record.ts_event_ms)
    split_ms = everything[0].ts_event_ms + 2 * MINUTE_MS + 30_000
    first = [record for record in everything if record.ts_event_ms <= split_ms]
    second = [record for record in everything if record.ts_event_ms > split_ms]
    expected_first, expected_all = expected_bars(first), expected_bars(everything)
    assert len(expected_first) < len(expected_all)
    assert any(bar.trades == 0 and bar.symbol == "BTCUSD" for bar in expected_all)  # a mid bar

    history = tmp_path / "history"
    job_options = options.BarsJobOptions.from_settings().with_overrides(
        bootstrap=kafka_broker,
        trades_topic=topics["trades"],
        orderbook_topic=topics["orderbook"],
        heartbeat_topic=topics["heartbeat"],
        checkpoint=tmp_path / "checkpoint",
        history_dir=history,
        starting_offsets="earliest",
        trigger="2 seconds",
        watermark=f"{WATERMARK_MS // 1000} seconds",
        heartbeat_interval_s=2.0,
    )

    def route(records: Sequence[Record]) -> None:
        produce(kafka_broker, topics["trades"], [r for r in records if isinstance(r, Trade)])
        produce(kafka_broker, topics["orderbook"], [r for r in records if not isinstance(r, Trade)])

    # 1. The first part; killed hard once its closed minutes are stored.
    route(first)
    job = BarsJob(job_options, tmp_path / "run-1.log")
    jobs.append(job)
    job.wait_for(lambda: store_matches(history, expected_first), "the first part's bars")
    print(f"\nrun 1: first part's {len(expected_first)} bars stored")
    job.kill()

    # 2. The rest arrives; a restart from the checkpoint completes the store, no duplicates.
    route(second)
    job = BarsJob(job_options, tmp_path / "run-2.log")
    jobs.append(job)
    job.wait_for(lambda: store_matches(history, expected_all), "every closed minute's bar")
    cpu_before, idle_started = tree_cpu_s(job.process.pid), time.monotonic()
    time.sleep(30)  # idle: no new input, the trigger keeps polling
    job.assert_alive()
    idle_cpu_pct = (
        100 * (tree_cpu_s(job.process.pid) - cpu_before) / (time.monotonic() - idle_started)
    )
    beats = heartbeats(kafka_broker, topics["heartbeat"])
    assert beats and all(beat["service"] == options.HEARTBEAT_SERVICE for beat in beats)
    assert beats[-1]["processed"] > 0 and beats[-1]["last_event_ms"] is not None
    assert job.stop() == 0, job.log_text()[-3000:]
    after_restart = folder_state(history)

    # 3. From scratch (a new checkpoint, all input again): every minute rewritten unchanged.
    job = BarsJob(
        job_options.with_overrides(checkpoint=tmp_path / "checkpoint-2"), tmp_path / "run-3.log"
    )
    jobs.append(job)
    job.wait_for(
        lambda: logged_upserts(job.log_text())["unchanged"] >= len(expected_all),
        "the re-run's upserts",
    )
    assert logged_upserts(job.log_text()) == {
        "inserted": 0,
        "replaced": 0,
        "unchanged": len(expected_all),
    }
    assert folder_state(history) == after_restart
    assert job.stop() == 0

    info = CliRunner().invoke(
        rtc_app, ["history", "info", "--dest", str(history)], env={"COLUMNS": "200"}
    )
    assert info.exit_code == 0, info.output
    btc = [bar for bar in expected_all if bar.symbol == "BTCUSD"]
    line = next(line for line in info.output.splitlines() if " gemini-feed " in line)
    assert f" {len(btc)} " in line and "typical_price" in line

    services_report(
        f"bars job: {len(expected_all)} bars of {len(trades)} trades in "
        f"{len(group_by_source(expected_all, 'gemini-feed', 'BTCUSD'))} sources; "
        f"peak RSS {max(j.peak_rss_mb for j in jobs):.0f} MB (spark-submit JVM + Python), "
        f"idle CPU {idle_cpu_pct:.1f} % of one core (trigger 2 s)"
    )
    print(
        f"\nbars job peak RSS {[round(j.peak_rss_mb) for j in jobs]} MB, idle {idle_cpu_pct:.1f} %"
    )
    assert math.isfinite(idle_cpu_pct)


def heartbeats(bootstrap: str, topic: str, read_s: float = 5.0) -> list[dict[str, object]]:
    """The heartbeats on ``topic`` so far (the job keeps sending: read for ``read_s`` only)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    values: list[dict[str, object]] = []
    deadline = time.monotonic() + read_s
    try:
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                values += [json.loads(message.value) for message in batch]
    finally:
        consumer.close()
    return values
