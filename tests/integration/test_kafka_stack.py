"""The real local Kafka broker: records round-trip, `rtc stack status` sees it, `down` leaves nothing."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from typer.testing import CliRunner

from rtcrypto.cli.main import app
from rtcrypto.config import Settings, Topics, get_settings
from rtcrypto.stack import kafka as kafka_stack
from rtcrypto.stack import lifecycle, maven, process
from tests.listeners import processes_mentioning

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_project_topics_exist(kafka_broker: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker)
    try:
        existing = set(admin.list_topics())
    finally:
        admin.close()

    assert set(get_settings().topics.all()) <= existing


def test_record_round_trip(kafka_broker: str, kafka_topic_factory: Callable[..., str]) -> None:
    topic = kafka_topic_factory("roundtrip")
    producer = KafkaProducer(bootstrap_servers=kafka_broker, acks="all")
    producer.send(topic, key=b"BTCUSD", value=b'{"price": "60000.01"}').get(timeout=30)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=kafka_broker, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    records: list[Any] = []
    deadline = time.monotonic() + 30
    while not records and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    consumer.close()

    assert [(record.key, record.value) for record in records] == [
        (b"BTCUSD", b'{"price": "60000.01"}')
    ]


def test_fresh_topics_are_unique_and_in_settings(kafka_broker: str, fresh_topics: Topics) -> None:
    assert fresh_topics.orderbook.startswith("test.")
    assert get_settings().topics == fresh_topics
    assert len(set(fresh_topics.all())) == 5


def test_status_shows_kafka_running(kafka_broker: str) -> None:
    settings = get_settings()
    assert process.is_running(kafka_stack.KAFKA_PROCESS, settings), (
        "the broker on this port is not managed by rtc: stop it and let the tests start one"
    )

    result = CliRunner().invoke(app, ["stack", "status"])

    assert result.exit_code == 0
    assert re.search(r"^kafka\s+\d+\s+yes\s+9092,9093\s", result.output, re.MULTILINE), (
        result.output
    )


def test_up_then_down_leaves_no_process(tmp_path: Path) -> None:
    """A second, isolated broker (own home and ports) through the real command line."""
    shared = get_settings()
    maven.resolve_jars(maven.kafka_broker_jar_set(shared), shared)
    maven.resolve_jars(maven.spark_kafka_jar_set(shared), shared)
    home = tmp_path / "rtc"
    home.mkdir()
    (home / "lib").symlink_to(shared.lib_dir)  # reuse the cached jars, no second download
    broker_port, controller_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "RTC_HOME": str(home),
        "RTC_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker_port}",
        "RTC_KAFKA_CONTROLLER_PORT": str(controller_port),
    }
    rtc = [sys.executable, "-m", "rtcrypto.cli.main", "stack"]
    isolated = Settings(home=home)

    try:
        up = subprocess.run(
            [*rtc, "up", "--no-search"], env=env, capture_output=True, text=True, timeout=180
        )
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"ready     Kafka bootstrap 127.0.0.1:{broker_port}" in up.stdout
        pid = process.read_pid(kafka_stack.KAFKA_PROCESS, isolated)
        assert pid is not None and process.pid_alive(pid)

        status = subprocess.run([*rtc, "status"], env=env, capture_output=True, text=True)
        assert re.search(
            rf"^kafka\s+{pid}\s+yes\s+{broker_port},{controller_port}\s",
            status.stdout,
            re.MULTILINE,
        )

        down = subprocess.run([*rtc, "down"], env=env, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        assert f"stopped   kafka (pid {pid})" in down.stdout
        assert not process.pid_alive(pid)
        assert processes_mentioning(str(home)) == []
        assert list(isolated.run_dir.glob("*.pid")) == []
    finally:
        # everything `stack up` started (Airflow too), even when an assertion failed above
        lifecycle.stop_stack(isolated, 5.0, lambda line: None)
