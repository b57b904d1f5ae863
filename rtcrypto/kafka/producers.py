"""The platform's Kafka producer behind one small interface, so services only ``send``.

One client: confluent-kafka (librdkafka in C), built by :func:`rtcrypto.kafka.clients.producer`
with the security settings of every client. It is about 8x faster per record than the pure
Python kafka-python that could be chosen before issue 11 (measured in
``bench/ingest_throughput.py``, which keeps kafka-python as a baseline; ``RTC_KAFKA_CLIENT`` is
retired and refused for any value but ``confluent``).

Configured as: acks=all, idempotent, batched (linger 5 ms, compressed with
``RTC_KAFKA_COMPRESSION``), unlimited retries within ``RTC_KAFKA_DELIVERY_TIMEOUT_MS``, and
blocking (back-pressure) instead of dropping when the local queue is full.

Records are partitioned by symbol: a key is ``<symbol>:...`` (the data contracts' keys), and
every record of one symbol goes to the same partition of a topic
(:func:`rtcrypto.kafka.partitioning.symbol_partition`, Kafka's own murmur2 of the symbol), so a topic with several partitions (the cluster topology)
keeps each symbol's records in order while the keys stay unique per record.

A record the broker has not taken within the delivery timeout (Kafka down for longer than that)
is passed to ``on_error`` (the service counts it), then the process stops loudly: a CRITICAL log
line naming the topic and the timeout, and exit code :data:`EXIT_DELIVERY_FAILED` (75), which
the supervisor sees as a dead service and restarts once Kafka answers. Spooling to disk was not
chosen: the sources (websocket, liquidity topic) are re-read after a restart anyway, and a
second durable queue beside Kafka would need its own bounds and replay order. Nothing is
dropped silently.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Protocol

from rtcrypto.config import Settings
from rtcrypto.kafka import clients
from rtcrypto.kafka.partitioning import symbol_partition

log = logging.getLogger(__name__)

ErrorCallback = Callable[[str, bytes | None, Exception], None]

EXIT_DELIVERY_FAILED = 75  # EX_TEMPFAIL: Kafka did not take a record within the delivery timeout
UNASSIGNED_PARTITION = -1  # confluent-kafka's "let the partitioner choose"
STARTUP_METADATA_TIMEOUT_S = 30.0  # how long the first metadata request may take at start-up


class KafkaUnavailable(RuntimeError):
    """The broker could not be reached when the producer started."""


class RecordProducer(Protocol):
    def send(self, topic: str, key: bytes | None, value: bytes) -> None: ...

    def flush(self, timeout_s: float) -> int:
        """Wait for outstanding records; return how many are still undelivered."""
        ...

    def close(self, timeout_s: float) -> None: ...


class ConfluentProducer:
    """confluent-kafka's Producer (librdkafka), acks=all and idempotent."""

    def __init__(self, settings: Settings, client_id: str, on_error: ErrorCallback) -> None:
        from confluent_kafka import KafkaException

        self._producer = clients.producer(settings, client_id, **producer_overrides(settings))
        self._on_error = on_error
        self._lock = threading.Lock()  # librdkafka is thread-safe; poll() callbacks are ours
        self._partitions: dict[str, int] = {}  # topic -> partition count, read once per topic
        try:
            self._producer.list_topics(timeout=STARTUP_METADATA_TIMEOUT_S)
        except KafkaException as error:
            raise KafkaUnavailable(f"{settings.kafka_bootstrap}: {error}") from error

    def _delivered(self, error: object, message: object) -> None:
        if error is not None:
            topic = message.topic() if message is not None else "?"  # type: ignore[attr-defined]
            key = message.key() if message is not None else None  # type: ignore[attr-defined]
            self._on_error(topic, key, RuntimeError(str(error)))

    def _partition_count(self, topic: str) -> int:
        """Partitions of ``topic`` from the broker's metadata (0 when it does not say)."""
        count = self._partitions.get(topic)
        if count is None:
            from confluent_kafka import KafkaException

            try:
                described = self._producer.list_topics(topic, timeout=10).topics.get(topic)
            except KafkaException:
                return 0  # not cached: asked again on the next record
            ok = described is not None and described.error is None
            count = len(described.partitions) if ok and described is not None else 0
            if count:
                self._partitions[topic] = count
        return count

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        partition = UNASSIGNED_PARTITION  # librdkafka's partitioner (one partition: partition 0)
        if key is not None:
            count = self._partition_count(topic)
            if count > 1:
                partition = symbol_partition(key, count)
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, partition=partition, on_delivery=self._delivered
                )
                break
            except BufferError:
                self._producer.poll(0.05)  # local queue full: wait for deliveries (back-pressure)
        self._producer.poll(0)

    def flush(self, timeout_s: float) -> int:
        return int(self._producer.flush(timeout_s))

    def close(self, timeout_s: float) -> None:
        left = self.flush(timeout_s)
        if left:
            log.error("kafka producer closed with %d records undelivered", left)


def producer_overrides(settings: Settings) -> dict[str, object]:
    """librdkafka properties of the platform's producer: durable, idempotent, batched."""
    return {
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "batch.size": 1024 * 1024,
        "delivery.timeout.ms": settings.kafka_delivery_timeout_ms,
        "compression.type": settings.kafka_compression,  # the topics store batches as produced
        "queue.buffering.max.messages": 500_000,
    }


def stop_loudly(settings: Settings, topic: str, key: bytes | None, error: Exception) -> None:
    """Log CRITICAL and exit the process with :data:`EXIT_DELIVERY_FAILED` (see the docstring)."""
    log.critical(
        "kafka delivery failed, stopping the service (exit %d) instead of dropping records: "
        "topic=%s key=%r not taken by %s within delivery.timeout.ms=%d: %s",
        EXIT_DELIVERY_FAILED,
        topic,
        key,
        settings.kafka_bootstrap,
        settings.kafka_delivery_timeout_ms,
        error,
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_DELIVERY_FAILED)  # from a client thread too; atexit would block on the client


def make_producer(
    settings: Settings, client_id: str, on_error: ErrorCallback | None = None
) -> RecordProducer:
    """The configured producer; raises :class:`KafkaUnavailable` if the broker is not there.

    A delivery failure calls ``on_error`` and then stops the process (:func:`stop_loudly`)."""

    def failed(topic: str, key: bytes | None, error: Exception) -> None:
        if on_error is not None:
            on_error(topic, key, error)
        stop_loudly(settings, topic, key, error)

    started = time.monotonic()
    producer = ConfluentProducer(settings, client_id, failed)
    log.debug("kafka producer %s ready in %.2f s", client_id, time.monotonic() - started)
    return producer
