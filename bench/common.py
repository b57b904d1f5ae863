"""Shared pieces of the benchmarks: a broker, fresh topics, child processes, result files."""

from __future__ import annotations

import json
import platform
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from rtcrypto.config import Settings, get_settings
from rtcrypto.stack import kafka as kafka_stack

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class BenchTopics:
    orderbook: str
    trades: str
    deadletter: str
    heartbeat: str
    liquidity: str

    def env(self) -> dict[str, str]:
        return {f"RTC_TOPIC_{name.upper()}": value for name, value in self.__dict__.items()}


def ensure_broker(settings: Settings | None = None) -> str:
    """Start the managed broker if nothing answers; return the bootstrap address."""
    settings = settings or get_settings()
    if not kafka_stack.broker_healthy(settings.kafka_bootstrap):
        kafka_stack.start_kafka(settings)
    return settings.kafka_bootstrap


def fresh_topics(bootstrap: str, label: str, **topic_options: Any) -> BenchTopics:
    """Uniquely named topics; ``topic_options`` (partitions, replication_factor, configs) go to
    :func:`rtcrypto.stack.kafka.ensure_topics`."""
    run = f"bench.{label}.{uuid.uuid4().hex[:8]}"
    topics = BenchTopics(
        **{
            name: f"{run}.{name}"
            for name in ("orderbook", "trades", "deadletter", "heartbeat", "liquidity")
        }
    )
    kafka_stack.ensure_topics(list(topics.__dict__.values()), bootstrap=bootstrap, **topic_options)
    return topics


def drop_topics(bootstrap: str, topics: BenchTopics) -> None:
    kafka_stack.delete_topics(list(topics.__dict__.values()), bootstrap=bootstrap)


def end_offsets(bootstrap: str, topics: list[str]) -> int:
    """Sum of the end offsets of every partition of ``topics`` (records acknowledged so far)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or {0})
        ]
        return int(sum(consumer.end_offsets(partitions).values()))
    finally:
        consumer.close()


def machine() -> dict[str, Any]:
    import os

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **result}, indent=2))
    return path
