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

    Reads up to the end offsets found at the start, for at most about ``timeout_s`` seconds,
    with the client settings of the process (security) on ``bootstrap``.
    """
    from confluent_kafka import KafkaException, TopicPartition

    from rtcrypto.config import get_settings
    from rtcrypto.kafka import clients

    settings = get_settings().model_copy(update={"kafka_bootstrap": bootstrap})
    # errors are the answer ([]): librdkafka's own retry lines would only fill stderr
    consumer = clients.consumer(settings, "rtc-heartbeat-reader", log_level=clients.QUIET_LOG_LEVEL)
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            return []
        ends: dict[int, int] = {}
        starts = []
        for partition in sorted(metadata.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s
            )
            ends[partition] = high
            starts.append(TopicPartition(topic, partition, max(low, high - RECENT_RECORDS)))
        consumer.assign(starts)
        # Read up to the end offsets seen now: services keep writing, so "until quiet" may never come.
        records = []
        deadline = time.monotonic() + timeout_s
        positions = {start.partition: start.offset for start in starts}
        pending = {partition for partition, end in ends.items() if positions[partition] < end}
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=RECENT_RECORDS, timeout=0.2):
                partition, offset, value = message.partition(), message.offset(), message.value()
                if message.error() is not None or partition is None or offset is None:
                    continue
                positions[partition] = max(positions[partition], offset + 1)
                if offset >= ends[partition] or value is None:
                    continue
                try:
                    records.append(json.loads(value))
                except (TypeError, ValueError):
                    continue
            pending = {p for p in pending if positions[p] < ends[p]}
        return records
    except KafkaException:
        return []
    finally:
        consumer.close()
