"""The real Spark liquidity job (spark-submit) against the real local Kafka broker.

Input: the recorded Gemini BTCUSD/ETHUSD books (see ``tests/unit/test_liquidity_spark.py``),
replayed five times one minute apart, with the ticks and end-of-minute book depth the ingest adds.
Expected values: the plain-Python recomputation from ``rtcrypto.market.liquidity``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from rtcrypto.config import get_settings
from rtcrypto.market.liquidity import WINDOW_MS
from rtcrypto.market.schemas import BookChange, TimeTick
from rtcrypto.spark import submit as spark
from tests.unit.test_liquidity_spark import (
    OrderbookRecord,
    assert_window_matches,
    expected_windows,
    read_capture_changes,
    with_ticks_and_depth,
)

pytestmark = pytest.mark.integration

JOB_START_TIMEOUT_S = 240.0  # Spark start-up (~25 s) plus the first batch, on a busy 2-core box
REPLAYS = 5
VOLATILE_FIELDS = ("emitted_at_ms",)  # the only field a replayed window may change


# --------------------------------------------------------------------------------------------
# Kafka and job helpers
# --------------------------------------------------------------------------------------------


def produce(bootstrap: str, topic: str, values: Sequence[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all")
    for key, value in values:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def as_messages(records: Sequence[OrderbookRecord]) -> list[tuple[bytes | None, bytes]]:
    return [(record.key.encode(), record.to_bytes()) for record in records]


class TopicReader:
    """Reads a topic from the beginning, keeping every message seen so far."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.messages: list[Any] = []

    def poll(self, timeout_ms: int = 500) -> None:
        for batch in self.consumer.poll(timeout_ms=timeout_ms).values():
            self.messages.extend(batch)

    def values(self) -> list[dict[str, Any]]:
        return [json.loads(message.value) for message in self.messages]

    def wait_for(
        self, done: Callable[[list[dict[str, Any]]], bool], timeout_s: float, job: RunningJob
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll()
            if done(self.values()):
                return self.values()
            job.assert_alive()
        raise AssertionError(
            f"timed out after {timeout_s:.0f} s with {len(self.messages)} records\n{job.log_tail()}"
        )

    def drain(self, quiet_s: float) -> list[dict[str, Any]]:
        """Read until nothing new arrives for ``quiet_s`` seconds."""
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() - last_change < quiet_s:
            self.poll()
            if len(self.messages) != last_count:
                last_count, last_change = len(self.messages), time.monotonic()
        return self.values()

    def close(self) -> None:
        self.consumer.close()


class RunningJob:
    """spark-submit of ``spark_jobs/liquidity.py`` as a subprocess with its log in a file."""

    def __init__(self, config: spark.LiquidityJobConfig, log_file: Path) -> None:
        command = spark.build_submit_command(config, spark.kafka_connector_jars())
        self.log_file = log_file
        self.started_at = time.monotonic()
        self.process = spark.start_job(command, log_file=log_file)
        self.first_batch_s: float | None = None  # spark-submit launch -> first batch logged

    def assert_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"job exited with {self.process.returncode}\n{self.log_tail()}")
        if self.first_batch_s is None and "first batch done" in self.log_tail(200):
            self.first_batch_s = time.monotonic() - self.started_at

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL to the whole group: no shutdown hook, no clean stop."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int:
        return spark.stop_job(self.process, timeout_s=60)


@pytest.fixture
def job_factory(tmp_path: Path) -> Iterator[Callable[[spark.LiquidityJobConfig, str], RunningJob]]:
    jobs: list[RunningJob] = []

    def start(config: spark.LiquidityJobConfig, label: str) -> RunningJob:
        for job in jobs:  # one Spark at a time on this machine
            job.kill()
        job = RunningJob(config, tmp_path / f"{label}.log")
        jobs.append(job)
        return job

    yield start
    for job in jobs:
        if job.process.poll() is None:
            job.kill()


def job_config(
    bootstrap: str, topics: dict[str, str], checkpoint: Path
) -> spark.LiquidityJobConfig:
    return spark.LiquidityJobConfig.from_settings(get_settings()).with_overrides(
        bootstrap=bootstrap,
        input_topic=topics["input"],
        output_topic=topics["output"],
        deadletter_topic=topics["deadletter"],
        checkpoint=checkpoint,
        starting_offsets="earliest",
        trigger="1 second",
        watermark="2 seconds",
        progress_interval_s=10.0,
    )


@pytest.fixture
def job_topics(kafka_topic_factory: Callable[..., str]) -> dict[str, str]:
    return {label: kafka_topic_factory(label) for label in ("input", "output", "deadletter")}


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def replayed_capture(replays: int = REPLAYS) -> list[BookChange]:
    """The capture's changes, repeated ``replays`` times one minute apart (unique keys)."""
    changes = read_capture_changes()
    return [
        dataclasses.replace(
            change,
            ts_event_ms=change.ts_event_ms + replay * WINDOW_MS,
            ts_receive_ms=change.ts_receive_ms + replay * WINDOW_MS,
            event_id=change.event_id + replay * 1_000_000,
            socket_sequence=change.socket_sequence + replay * 1_000_000,
            key="",
        )
        for replay in range(replays)
        for change in changes
    ]


def closed_windows(expected: dict[str, Any], watermark_ms: int) -> set[str]:
    """Keys of the windows that end at or before ``watermark_ms``."""
    return {
        key
        for key, window in expected.items()
        if window.window_start_ms + WINDOW_MS <= watermark_ms
    }


MALFORMED = {
    b"{garbage": "not a JSON object",
    b'{"type":"change","symbol":"BTCUSD","side":"bid","price":"x1","remaining":"1",'
    b'"ts_event_ms":1618677950000}': "change: price is not a decimal",
}


def assert_no_conflicting_duplicates(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every copy of a key carries the same values; return one record per key."""
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_key[record["key"]].append({k: v for k, v in record.items() if k not in VOLATILE_FIELDS})
    for key, copies in by_key.items():
        assert all(copy == copies[0] for copy in copies), f"{key} emitted with different values"
    return {record["key"]: record for record in records}


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


@pytest.mark.slow  # two Spark starts, about 80 s
@pytest.mark.faults  # the fault suite's "Spark job killed, restarted from its checkpoint"
def test_job_output_matches_recomputation_and_survives_restart(
    kafka_broker: str,
    job_topics: dict[str, str],
    job_factory: Callable[[spark.LiquidityJobConfig, str], RunningJob],
    tmp_path: Path,
    services_report: Callable[[str], None],
) -> None:
    timeline = with_ticks_and_depth(replayed_capture())
    expected = expected_windows(timeline)
    split_ms = timeline[0].ts_event_ms + 2 * WINDOW_MS + 30_000
    first = [record for record in timeline if record.ts_event_ms <= split_ms]
    second = [record for record in timeline if record.ts_event_ms > split_ms]
    watermark_first_ms = first[-1].ts_event_ms - 2_000
    closed_first = closed_windows(expected, watermark_first_ms)
    closed_all = closed_windows(expected, timeline[-1].ts_event_ms - 2_000)
    assert len(closed_first) == 6 and len(closed_all) == 10  # 3, then 5 minutes x 2 symbols

    produce(kafka_broker, job_topics["input"], as_messages(first) + [(None, m) for m in MALFORMED])
    config = job_config(kafka_broker, job_topics, tmp_path / "checkpoint")
    output = TopicReader(kafka_broker, job_topics["output"])
    try:
        job = job_factory(config, "first-run")
        records = output.wait_for(
            lambda values: {v["key"] for v in values} >= closed_first, JOB_START_TIMEOUT_S, job
        )
        records = output.drain(quiet_s=5)
        print(f"\nfirst run: launch -> first batch {job.first_batch_s or float('nan'):.1f} s")
        assert sorted(record["key"] for record in records) == sorted(closed_first)  # once each
        for record in records:
            assert_window_matches(record, expected[record["key"]])

        job.kill()  # hard: no stop request, no shutdown hook
        late = BookChange("BTCUSD", "bid", "1000000", "5", "5", "place", 9, 0, 9, 0, 0)
        late = dataclasses.replace(late, ts_event_ms=timeline[0].ts_event_ms + 1_000, key="late")
        produce(kafka_broker, job_topics["input"], as_messages([late, *second]))

        job = job_factory(config, "restart")
        records = output.wait_for(
            lambda values: {v["key"] for v in values} >= closed_all, JOB_START_TIMEOUT_S, job
        )
        records = output.drain(quiet_s=5)
        unique = assert_no_conflicting_duplicates(records)
        assert sorted(unique) == sorted(closed_all)  # the late change re-opened nothing
        for key, record in unique.items():
            assert_window_matches(record, expected[key])
        print(
            f"\nrestart: {len(records)} records for {len(unique)} windows; "
            f"launch -> first batch {job.first_batch_s or float('nan'):.1f} s (restart)"
        )
        services_report(
            f"faults: Spark job kill -9 and restart from its checkpoint: {len(unique)} windows "
            f"in {len(records)} records, {len(records) - len(unique)} re-emitted with identical "
            f"values, 0 with different values; restart launch -> first batch "
            f"{job.first_batch_s or float('nan'):.1f} s"
        )
        assert job.stop() == 0, job.log_tail()
    finally:
        output.close()

    dead = TopicReader(kafka_broker, job_topics["deadletter"])
    try:
        letters = dead.drain(quiet_s=3)
    finally:
        dead.close()
    assert sorted(letter["reason"] for letter in letters) == sorted(MALFORMED.values())
    assert {letter["raw"].encode() for letter in letters} == set(MALFORMED)


@pytest.mark.slow
def test_window_latency_in_real_time(
    kafka_broker: str,
    job_topics: dict[str, str],
    job_factory: Callable[[spark.LiquidityJobConfig, str], RunningJob],
    tmp_path: Path,
) -> None:
    """Event time = wall clock; measure window end -> record in Kafka (CreateTime).

    A tick every ~200 ms; book changes only in the first half of each minute, so every window
    is closed by ticks alone (a quiet market).
    """
    config = job_config(kafka_broker, job_topics, tmp_path / "checkpoint")
    producer = KafkaProducer(bootstrap_servers=kafka_broker, linger_ms=0)
    output = TopicReader(kafka_broker, job_topics["output"])
    job = job_factory(config, "latency")
    latencies_ms: list[int] = []
    try:
        deadline = time.monotonic() + JOB_START_TIMEOUT_S + 2 * WINDOW_MS / 1000
        while len(latencies_ms) < 2 and time.monotonic() < deadline:
            now_ms = int(time.time() * 1000)
            records: list[OrderbookRecord] = [TimeTick("BTCUSD", now_ms, now_ms, "clock")]
            if now_ms % WINDOW_MS < WINDOW_MS // 2:
                records.append(
                    BookChange(
                        "BTCUSD",
                        "bid",
                        "60000.01",
                        "0.5",
                        "0.5",
                        "place",
                        now_ms,
                        0,
                        0,
                        now_ms,
                        now_ms,
                    )
                )
            produce_now(producer, job_topics["input"], records)
            output.poll(timeout_ms=200)
            for message in output.messages[len(latencies_ms) :]:
                record = json.loads(message.value)
                assert record["event_count"] > 0
                # The first window may be partial (the job started inside it); it counts too.
                latencies_ms.append(message.timestamp - record["window_end_ms"])
            job.assert_alive()
        assert len(latencies_ms) >= 2, job.log_tail()
        startup = [line for line in job.log_tail(300).splitlines() if "first batch done" in line]
        print(
            f"\nwindow end -> record in Kafka (ms): {latencies_ms}; "
            f"launch -> first batch {job.first_batch_s or float('nan'):.1f} s; {startup[:1]}"
        )
        assert max(latencies_ms) < 15_000, latencies_ms
        assert job.stop() == 0
    finally:
        producer.close()
        output.close()


def produce_now(producer: KafkaProducer, topic: str, records: Sequence[OrderbookRecord]) -> None:
    for record in records:
        producer.send(topic, key=record.key.encode(), value=record.to_bytes())
    producer.flush()


def test_tail_prints_each_value_as_one_line_and_stops_when_idle(
    kafka_broker: str, kafka_topic_factory: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    from rtcrypto.cli.liquidity import tail_records

    topic = kafka_topic_factory("liquidity")
    values = [json.dumps({"key": f"BTCUSD:{index}", "n": index}).encode() for index in range(3)]
    produce(kafka_broker, topic, [(None, value) for value in values])

    started = time.monotonic()
    printed = tail_records(bootstrap=kafka_broker, topic=topic, from_beginning=True, until_idle_s=2)

    assert printed == 3 and time.monotonic() - started < 30
    assert capsys.readouterr().out.splitlines() == [value.decode() for value in values]


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses (hex, as in /proc/net/tcp*) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, local_port = local.split(":")
            if state == "0A" and int(local_port, 16) == port:
                found.add(address)
    return found


@pytest.mark.slow  # one Spark start
def test_the_spark_ui_answers_on_loopback_and_a_taken_port_is_not_fatal(
    kafka_broker: str,
    job_topics: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket
    import urllib.request

    from rtcrypto.spark import ui

    config = job_config(kafka_broker, job_topics, tmp_path / "checkpoint").with_overrides(
        heartbeat_topic=""
    )
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken_port = blocker.getsockname()[1]
    config = dataclasses.replace(config, ui_enabled=True, ui_port=taken_port)
    command = spark.build_submit_command(config, spark.kafka_connector_jars())
    assert f"spark.ui.port={taken_port}" in command and "spark.ui.enabled=true" in command
    monkeypatch.setenv("RTC_HOME", str(tmp_path / "home"))  # the job records its UI there
    get_settings.cache_clear()
    settings = get_settings()
    job = spark.start_job(command, log_file=tmp_path / "ui.log")
    try:
        deadline = time.monotonic() + JOB_START_TIMEOUT_S
        while "liquidity" not in ui.ui_addresses(settings) and time.monotonic() < deadline:
            assert job.poll() is None, (tmp_path / "ui.log").read_text()[-3000:]
            time.sleep(1)
        url = ui.ui_addresses(settings)["liquidity"]
        port = int(url.rsplit(":", 1)[1])
        assert url.startswith("http://127.0.0.1:") and port != taken_port  # Spark moved on
        with urllib.request.urlopen(f"{url}/jobs/", timeout=10) as page:
            assert page.status == 200 and b"Spark" in page.read()
        bound = _listening_addresses(port)  # 127.0.0.1 only (IPv4, or IPv4-mapped in tcp6)
        assert bound and bound <= {"0100007F", "0000000000000000FFFF00000100007F"}, bound
        assert ui.ui_status(settings) == f"spark ui: liquidity {url}"
        time.sleep(3)
        assert job.poll() is None, "the port conflict must not stop the job"
        print(f"\nspark ui: first port {taken_port} taken, bound {url}")
        assert spark.stop_job(job, timeout_s=60) == 0
        assert ui.ui_addresses(settings) == {}  # forgotten on a clean stop
    finally:
        blocker.close()
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(30)
        get_settings.cache_clear()
