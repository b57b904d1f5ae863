"""The search writer's alerts reach the trader's heartbeat and `rtc status`; documents over the
spool cap go to the Kafka dead-letter topic (issue 10)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import orjson

from rtcrypto.config import Settings
from rtcrypto.supervision.heartbeats import describe
from rtcrypto.trader.service import TraderService


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.sent.append((topic, key, value))

    def flush(self, timeout_s: float) -> int:
        return 0

    def close(self, timeout_s: float) -> None:
        pass


class _Recorder:
    def __init__(self) -> None:
        self.overflow: Any = None
        self.target = ""
        self.current: list[str] = []

    def alerts(self) -> list[str]:
        return list(self.current)

    def attach_overflow(self, handler: Any, target: str) -> None:
        self.overflow, self.target = handler, target


def _service() -> tuple[TraderService, _Recorder, _Producer]:
    recorder = _Recorder()
    trader = SimpleNamespace(
        recorder=recorder, last_event_ms=None, processed=3, last_error=None, clock_ms=lambda: 0
    )
    producer = _Producer()
    service = TraderService(Settings(), trader, producer, clock_ms=lambda: 1_000)  # type: ignore[arg-type]
    return service, recorder, producer


def test_alerts_go_into_the_heartbeat_and_rtc_status_shows_them() -> None:
    service, recorder, producer = _service()
    recorder.current = ["search spool full (20,000 of 20,000 bytes): 5 documents sent to X"]
    service._send_heartbeat()
    topic, _, value = producer.sent[-1]
    assert topic == Settings().topics.heartbeat
    beat = json.loads(value)
    assert beat["alerts"] == recorder.current
    assert "ALERT: search spool full" in describe(beat, now_ms=2_000)


def test_no_alert_no_alert_text() -> None:
    service, _, producer = _service()
    service._send_heartbeat()
    beat = json.loads(producer.sent[-1][2])
    assert beat["alerts"] == [] and "ALERT" not in describe(beat, now_ms=2_000)


def test_documents_over_the_spool_cap_become_kafka_dead_letters() -> None:
    service, recorder, producer = _service()
    assert recorder.target == "Kafka topic deadletter.v1"
    records: Sequence[dict[str, Any]] = [
        {"_index": "rtc-orders", "_id": "o-1", "_source": orjson.Fragment(b'{"state":"new"}')}
    ]
    recorder.overflow(records)
    topic, key, value = producer.sent[-1]
    letter = json.loads(value)
    assert (topic, key) == ("deadletter.v1", b"o-1")
    assert letter["reason"] == "search spool full" and letter["source"] == "search:rtc-orders"
    assert json.loads(letter["raw"]) == {
        "_index": "rtc-orders", "_id": "o-1", "_source": {"state": "new"}
    }  # fmt: skip
