"""``python -m rtcrypto.supervision.healthcheck`` reading heartbeats from the real local Kafka broker.

docker-compose runs this command inside the ingest, liquidity and trader containers; here it
runs as a child process against the real broker, on a heartbeat topic of its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from kafka import KafkaProducer

from rtcrypto.market.schemas import Heartbeat
from tests.helpers import free_port

pytestmark = pytest.mark.integration


def _check(name: str, bootstrap: str, topic: str, **env: str) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("RTC_")}
    child_env.update(
        RTC_KAFKA_BOOTSTRAP=bootstrap,
        RTC_TOPIC_HEARTBEAT=topic,
        RTC_SUPERVISOR_STARTUP_GRACE_S="0",  # pid 1 started long ago anyway: no grace
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "rtcrypto.supervision.healthcheck", name],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _send(bootstrap: str, topic: str, service: str, age_s: float) -> None:
    now_ms = time.time_ns() // 1_000_000
    beat = Heartbeat(service, "test:1", now_ms - int(age_s * 1000), 10, now_ms, 5)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        producer.send(topic, key=service.encode(), value=beat.to_bytes()).get(timeout=30)
    finally:
        producer.close()


def test_container_health_follows_the_heartbeats_on_kafka(
    kafka_broker: str, kafka_topic_factory: Callable[..., str]
) -> None:
    topic = kafka_topic_factory("heartbeat")

    silent = _check("ingest", kafka_broker, topic)
    assert silent.returncode == 1, silent.stdout + silent.stderr
    assert silent.stdout.startswith("ingest: unhealthy (no heartbeat in ")

    _send(kafka_broker, topic, "ingest", age_s=1)
    _send(kafka_broker, topic, "trader", age_s=60)
    fresh = _check("ingest", kafka_broker, topic)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert fresh.stdout.strip() == "ingest: healthy (heartbeat fresh)"
    stale = _check("trader", kafka_broker, topic)
    assert stale.returncode == 1
    # 60 s when sent, plus the seconds the checks took.
    assert re.fullmatch(
        r"trader: unhealthy \(last heartbeat 6\d s ago \(stale after 15 s\)\)", stale.stdout.strip()
    ), stale.stdout


def test_container_is_unhealthy_when_kafka_does_not_answer() -> None:
    result = _check("liquidity", f"127.0.0.1:{free_port()}", "service.heartbeat.v1")
    assert result.returncode == 1
    assert result.stdout.strip() == (
        "liquidity: unhealthy (process alive; heartbeats unreadable (Kafka does not answer))"
    )
