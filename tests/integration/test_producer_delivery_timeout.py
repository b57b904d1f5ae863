"""Kafka down longer than the delivery timeout: the producing process stops loudly (issue 10).

Before issue 10 the producer dropped the record after ``delivery.timeout.ms`` with an error
callback that only logged, and the service went on as if nothing had happened. Now the process
exits with code 75 and a CRITICAL line naming the topic and the timeout.

The broker is a private one (free ports, its own RTC_HOME; the shared broker is never touched),
killed with SIGKILL like in tests/faults/test_kafka_broker_kill.py. The delivery timeout is 3 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtcrypto.config import Settings, Topics, get_settings
from rtcrypto.kafka.producers import EXIT_DELIVERY_FAILED
from rtcrypto.stack import kafka as kafka_stack
from rtcrypto.stack import maven, process
from tests.helpers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOPIC = "bounds.delivery.v1"
PRODUCER_SCRIPT = """
import os, sys, time
from rtcrypto.config import get_settings
from rtcrypto.kafka.producers import make_producer
from rtcrypto.logs import setup_logging

setup_logging("probe")
failures = []
producer = make_producer(get_settings(), "probe", lambda t, k, e: failures.append(t))
producer.send(sys.argv[1], b"first", b"1")
assert producer.flush(30) == 0
print("first delivered", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
producer.send(sys.argv[1], b"second", b"2")
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        producer.flush(0.5)
    except Exception:
        pass
print("still running after 60 s, failures=%d" % len(failures), flush=True)
sys.exit(0)
"""


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Settings]:
    shared = get_settings()
    shared_jars = maven.resolve_jars(maven.kafka_broker_jar_set(shared), shared).jar_dir
    home = tmp_path / "kafka-home"
    (home / "lib").mkdir(parents=True)
    (home / "lib" / shared_jars.name).symlink_to(shared_jars, target_is_directory=True)
    settings = Settings(
        home=home,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        kafka_controller_port=free_port(),
        topics=Topics.model_construct(),
    )
    try:
        kafka_stack.start_kafka(settings)
        kafka_stack.ensure_topics([TOPIC], bootstrap=settings.kafka_bootstrap)
        yield settings
    finally:
        kafka_stack.stop_kafka(settings, timeout_s=20)


def test_broker_down_past_delivery_timeout_stops_the_process_loudly(
    tmp_path: Path, private_broker: Settings
) -> None:
    go = tmp_path / "go"  # the producer is confluent-kafka, the only client since issue 11
    env = {
        **os.environ,
        "RTC_KAFKA_BOOTSTRAP": private_broker.kafka_bootstrap,
        "RTC_KAFKA_DELIVERY_TIMEOUT_MS": "3000",
    }
    child = subprocess.Popen(
        [sys.executable, "-c", PRODUCER_SCRIPT, TOPIC, str(go)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "first delivered"
        pid = process.read_pid(kafka_stack.KAFKA_PROCESS, private_broker)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        while process.pid_alive(pid):
            time.sleep(0.1)
        killed = time.monotonic()
        go.touch()
        _, stderr = child.communicate(timeout=90)
        stopped_after_s = time.monotonic() - killed
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == EXIT_DELIVERY_FAILED, stderr[-3000:]
    assert "CRITICAL" in stderr and "kafka delivery failed, stopping the service" in stderr
    assert f"topic={TOPIC}" in stderr and "delivery.timeout.ms=3000" in stderr
    assert stopped_after_s < 30, f"stopped {stopped_after_s:.1f} s after the broker died"
