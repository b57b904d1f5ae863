"""Reading services' heartbeats back from ``service.heartbeat.v1`` (for ``rtc status`` and sensors)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

RECENT_RECORDS = 500  # per partition: far more than one heartbeat per service per interval


def latest_by_service(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest heartbeat (by ``ts_ms``) of each service."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        service = record.get("service")
        if not isinstance(service, str) or not isinstance(record.get("ts_ms"), int):
            continue
        if service not in latest or record["ts_ms"] >= latest[service]["ts_ms"]:
            latest[service] = record
    return latest


def describe(beat: dict[str, Any], now_ms: int) -> str:
    """One line: age of the heartbeat, processed count, lag, reconnects, gaps, dead letters, error."""
    age_s = max(0.0, (now_ms - beat["ts_ms"]) / 1000)
    lag = beat.get("lag_ms")
    parts = [
        f"last heartbeat {age_s:.0f} s ago",
        f"processed {beat.get('processed', 0):,}",
        f"lag {lag / 1000:.1f} s" if isinstance(lag, int) else "lag -",
    ]
    for field in ("reconnects", "gaps", "dead_letters"):
        if beat.get(field):
            parts.append(f"{field.replace('_', ' ')} {beat[field]}")
    if beat.get("last_error"):
        parts.append(f"last error: {beat['last_error']}")
    alerts = beat.get("alerts")
    if isinstance(alerts, list):
        parts.extend(f"ALERT: {alert}" for alert in alerts if isinstance(alert, str))
    return ", ".join(parts)


def read_recent(bootstrap: str, topic: str, timeout_s: float = 3.0) -> list[dict[str, Any]]:
    """The last ``RECENT_RECORDS`` heartbeats of every partition; [] if Kafka does not answer.

    Reads up to the end offsets found at the start, for at most about ``timeout_s`` seconds.
    """
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            request_timeout_ms=int(timeout_s * 1000) + 1000,
        )
    except KafkaError:
        return []
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        for partition, end in ends.items():
            consumer.seek(partition, max(0, end - RECENT_RECORDS))
        # Read up to the end offsets seen now: services keep writing, so "until quiet" may never come.
        records = []
        deadline = time.monotonic() + timeout_s
        pending = {partition for partition, end in ends.items() if end > 0}
        while pending and time.monotonic() < deadline:
            for partition, messages in consumer.poll(timeout_ms=200).items():
                for message in messages:
                    if message.offset >= ends[partition]:
                        continue
                    try:
                        records.append(json.loads(message.value))
                    except (TypeError, ValueError):
                        continue
            pending = {p for p in pending if consumer.position(p) < ends[p]}
        return records
    finally:
        consumer.close()
