"""Kafka producers behind one small interface, so services do not care which client sends.

Two clients, chosen with ``RTC_KAFKA_CLIENT``:

- ``kafka-python`` (pure Python): simple, but about 10,000 records/s per process on this 2-core
  machine even with batching (measured in ``bench/ingest_throughput.py``).
- ``confluent`` (confluent-kafka, librdkafka in C; already pinned through Airflow's Kafka
  provider): about 8x faster per record.

Both are configured the same way: acks=all, idempotent, batched (linger 5 ms), unlimited retries
within a delivery timeout, and blocking (back-pressure) instead of dropping when the local queue
is full. Delivery failures are counted and passed to ``on_error``; nothing fails silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from rtcrypto.config import KafkaClient, Settings

log = logging.getLogger(__name__)

ErrorCallback = Callable[[str, bytes | None, Exception], None]


class KafkaUnavailable(RuntimeError):
    """The broker could not be reached when the producer started."""


class RecordProducer(Protocol):
    def send(self, topic: str, key: bytes | None, value: bytes) -> None: ...

    def flush(self, timeout_s: float) -> int:
        """Wait for outstanding records; return how many are still undelivered."""
        ...

    def close(self, timeout_s: float) -> None: ...


class KafkaPythonProducer:
    """kafka-python's KafkaProducer, acks=all and idempotent."""

    def __init__(self, settings: Settings, client_id: str, on_error: ErrorCallback) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        try:
            self._producer = KafkaProducer(
                bootstrap_servers=settings.kafka_bootstrap,
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                retries=2_147_483_647,
                linger_ms=5,
                batch_size=256 * 1024,
                max_block_ms=120_000,
                delivery_timeout_ms=600_000,
            )
        except KafkaError as error:
            raise KafkaUnavailable(f"{settings.kafka_bootstrap}: {error}") from error
        self._on_error = on_error

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        future = self._producer.send(topic, key=key, value=value)
        future.add_errback(lambda error: self._on_error(topic, key, error))

    def flush(self, timeout_s: float) -> int:
        self._producer.flush(timeout=timeout_s)
        return 0

    def close(self, timeout_s: float) -> None:
        self._producer.close(timeout=timeout_s)


class ConfluentProducer:
    """confluent-kafka's Producer (librdkafka), acks=all and idempotent."""

    def __init__(self, settings: Settings, client_id: str, on_error: ErrorCallback) -> None:
        from confluent_kafka import KafkaException, Producer

        self._producer = Producer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "client.id": client_id,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "batch.size": 1024 * 1024,
                "delivery.timeout.ms": 600_000,
                "queue.buffering.max.messages": 500_000,
            }
        )
        self._on_error = on_error
        self._lock = threading.Lock()  # librdkafka is thread-safe; poll() callbacks are ours
        try:
            self._producer.list_topics(timeout=30)
        except KafkaException as error:
            raise KafkaUnavailable(f"{settings.kafka_bootstrap}: {error}") from error

    def _delivered(self, error: object, message: object) -> None:
        if error is not None:
            topic = message.topic() if message is not None else "?"  # type: ignore[attr-defined]
            key = message.key() if message is not None else None  # type: ignore[attr-defined]
            self._on_error(topic, key, RuntimeError(str(error)))

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._delivered)
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


def make_producer(
    settings: Settings, client_id: str, on_error: ErrorCallback | None = None
) -> RecordProducer:
    """The configured producer; raises :class:`KafkaUnavailable` if the broker is not there."""

    def log_error(topic: str, key: bytes | None, error: Exception) -> None:
        log.error("kafka delivery failed topic=%s key=%r error=%s", topic, key, error)

    callback = on_error or log_error
    started = time.monotonic()
    if settings.kafka_client is KafkaClient.confluent:
        producer: RecordProducer = ConfluentProducer(settings, client_id, callback)
    else:
        producer = KafkaPythonProducer(settings, client_id, callback)
    log.debug(
        "kafka producer %s ready in %.2f s", settings.kafka_client.value, time.monotonic() - started
    )
    return producer
