"""`rtc status` shows a service's alerts from its heartbeat on the real broker (issue 10)."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from rtcrypto.cli.main import app
from rtcrypto.config import Settings, Topics
from rtcrypto.kafka.producers import make_producer
from rtcrypto.market.schemas import Heartbeat

pytestmark = pytest.mark.integration


def test_rtc_status_shows_the_trader_heartbeat_alert(
    kafka_broker: str, fresh_topics: Topics
) -> None:
    alert = "search spool full (268,435,000 of 268,435,456 bytes): 12 documents sent to Kafka"
    producer = make_producer(Settings(), "test-status-alerts")
    beat = Heartbeat(
        service="trader",
        instance="test:1",
        ts_ms=time.time_ns() // 1_000_000,
        processed=7,
        last_event_ms=None,
        lag_ms=None,
        alerts=[alert],
    )
    producer.send(fresh_topics.heartbeat, b"trader", beat.to_bytes())
    assert producer.flush(10) == 0

    result = CliRunner().invoke(app, ["status"])

    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "ALERT:" in line)
    assert line.strip().startswith("trader") and "processed 7" in line, result.output
    assert f"ALERT: {alert}" in line
