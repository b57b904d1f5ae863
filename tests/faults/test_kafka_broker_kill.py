"""kill -9 of the Kafka broker while the ingest produces, then a restart on the same data folder.

The broker is a private one (rtcrypto/stack/kafka.py on free ports, its own RTC_HOME and data
folder): the session's shared broker serves other tests and is never touched. The jars come from
the shared library folder (a symlink), so nothing is downloaded.

Only simulator -> ingest -> Kafka is checked here. The Spark job (events -> liquidity) is left
out on purpose: a Spark start costs 25 s or more on this machine, and its own kill -9 and restart
from the checkpoint is the fault suite's Spark scenario
(tests/integration/test_liquidity_job.py::test_job_output_matches_recomputation_and_survives_restart).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from rtcrypto.config import Settings, Topics, get_settings
from rtcrypto.stack import kafka as kafka_stack
from rtcrypto.stack import maven, process
from tests.helpers import (
    GEMINI_CAPTURE,
    TopicReader,
    free_port,
    sim_status,
    start_ingest,
    start_simulator,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

ChangeContent = tuple[int, str, Decimal, Decimal]  # event ms, side, price, remaining
KILL_INTO_CAPTURE_S = 8.0  # the capture spans 31 s at speed 1: the kill lands early in it


def capture_btc_changes(path: Path = GEMINI_CAPTURE) -> Counter[ChangeContent]:
    """Every BTCUSD change of the Gemini v2 capture, read straight from the file.

    Same reading as ``tests.helpers.gemini_btc_window_sums`` (event time = receive time truncated
    to ms, side buy -> bid, remaining = the level's new quantity), kept per change.
    """
    changes: Counter[ChangeContent] = Counter()
    with gzip.open(path, "rt") as lines:
        for line in lines:
            stamp, separator, payload = line.partition(": ")
            if not separator or "<-" in stamp or "->" in stamp:
                continue
            try:
                message = json.loads(payload)
                event_ms = int(Decimal(stamp.strip()) * 1000)
            except (ValueError, ArithmeticError):
                continue
            if not isinstance(message, dict) or message.get("type") != "l2_updates":
                continue
            if message.get("symbol") != "BTCUSD":
                continue
            for side, price, quantity in message["changes"]:
                book_side = "bid" if side == "buy" else "ask"
                changes[(event_ms, book_side, Decimal(price), Decimal(quantity))] += 1
    return changes


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Settings]:
    """Settings of a broker of this test alone: free ports, its own home, data and logs."""
    shared = get_settings()
    shared_jars = maven.resolve_jars(maven.kafka_broker_jar_set(shared), shared).jar_dir
    home = tmp_path / "kafka-home"
    (home / "lib").mkdir(parents=True)
    (home / "lib" / shared_jars.name).symlink_to(shared_jars, target_is_directory=True)
    settings = Settings(
        home=home,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        kafka_controller_port=free_port(),
        topics=Topics.model_construct(),  # the defaults: gemini.orderbook.v1, ...
    )
    try:
        kafka_stack.start_kafka(settings)
        kafka_stack.ensure_topics(settings.topics.all(), bootstrap=settings.kafka_bootstrap)
        yield settings
    finally:
        kafka_stack.stop_kafka(settings, timeout_s=20)


def test_broker_killed_mid_stream_restarts_and_loses_no_change(
    tmp_path: Path, private_broker: Settings, services_report: Callable[[str], None]
) -> None:
    """SIGKILL the broker while the ingest produces the capture, restart it on the same data:
    every change of the capture ends up on gemini.orderbook.v1, none lost, none doubled."""
    settings = private_broker
    bootstrap = settings.kafka_bootstrap
    expected = capture_btc_changes()
    port = free_port()
    simulator = start_simulator(port, tmp_path, "--speed", "1")  # one pass, no --loop
    # The project's own topic names (the broker is private); any RTC_TOPIC_* of this process
    # (another test's fresh_topics) must not leak into the ingest.
    topic_env = {
        f"RTC_TOPIC_{name.upper()}": getattr(settings.topics, name) for name in Topics.model_fields
    }
    env = {"RTC_KAFKA_BOOTSTRAP": bootstrap, **topic_env}
    ingest = start_ingest(port, tmp_path, env)
    offsets = KafkaConsumer(bootstrap_servers=bootstrap)
    partition = TopicPartition(settings.topics.orderbook, 0)
    book: TopicReader | None = None
    try:

        def seconds_into_capture() -> float:
            status = sim_status(port)
            return (status["simulated_time_ms"] - status["capture"]["first_ms"]) / 1000

        def records_on_broker() -> int:
            return int(offsets.end_offsets([partition])[partition])

        wait_until(
            lambda: seconds_into_capture() >= KILL_INTO_CAPTURE_S and records_on_broker() > 0,
            60,
            f"{KILL_INTO_CAPTURE_S:.0f} s of the capture replayed and produced",
            simulator,
            ingest,
        )
        status = sim_status(port)
        assert not status["done"], "the kill must land while the capture is still replaying"
        into_capture_s = seconds_into_capture()
        span_s = status["capture"]["span_ms"] / 1000
        on_broker_at_kill = records_on_broker()
        offsets.close()  # no client of ours while the broker is down

        pid = process.read_pid(kafka_stack.KAFKA_PROCESS, settings)
        assert pid is not None and process.pid_alive(pid)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: not process.pid_alive(pid), 10, "the broker gone")
        time.sleep(2)  # the ingest keeps reading the socket and queueing records meanwhile
        assert ingest.alive(), ingest.log()[-3000:]

        restarted = kafka_stack.start_kafka(settings)
        assert not restarted.formatted, "the restart reuses the data folder"
        down_s = time.monotonic() - killed_at

        wait_until(lambda: sim_status(port)["done"], 90, "the capture replayed", simulator, ingest)
        book = reader = TopicReader(bootstrap, settings.topics.orderbook)
        expected_total = sum(expected.values())
        wait_until(
            lambda: len({k for k, v in reader.poll() if v["type"] == "change"}) >= expected_total,
            60,
            "every change of the capture on the restarted broker",
            ingest,
        )
        assert ingest.alive(), ingest.log()[-3000:]
        exit_code = ingest.stop()
    finally:
        ingest.stop()
        simulator.stop()
        offsets.close()
        if book is not None:
            book.close()

    assert exit_code == 0, ingest.log()[-3000:]
    log = ingest.log()
    assert "undelivered=0" in log and "send_errors=0" in log, log[-2000:]
    assert book is not None
    changes = [(key, value) for key, value in book.poll() if value["type"] == "change"]
    copies = Counter(key for key, _ in changes)
    duplicate_keys = sum(1 for count in copies.values() if count > 1)
    by_key: dict[str, ChangeContent] = {}
    for key, value in changes:
        content = (
            value["ts_event_ms"],
            value["side"],
            Decimal(value["price"]),
            Decimal(value["remaining"]),
        )
        assert by_key.setdefault(key, content) == content, f"{key} carries two different changes"
    assert Counter(by_key.values()) == expected, "by key, exactly the capture's changes"
    # The producer is idempotent (acks=all, enable.idempotence): a retry after the crash must
    # not write a batch twice.
    assert duplicate_keys == 0, f"{duplicate_keys} keys written more than once"
    services_report(
        f"faults: Kafka broker kill -9 {into_capture_s:.0f} s into the {span_s:.0f} s capture "
        f"({on_broker_at_kill} book records on the broker by then), healthy again "
        f"{down_s:.1f} s after the kill: {len(by_key)} of {sum(expected.values())} changes on "
        f"the topic, 0 lost, {duplicate_keys} duplicate keys"
    )
