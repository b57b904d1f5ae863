"""How far behind its input a service is: records between what it has read and the topic's end.

Lag, per :class:`~rtcrypto.supervision.registry.LagSource`:

- ``heartbeat``: the ingest reads a websocket, not Kafka: its lag is the heartbeat's ``lag_ms``
  (receive time minus the newest exchange event time), judged against ``supervisor_max_lag_s``
  (read by :mod:`rtcrypto.supervision.health`, not here).
- ``consumer_group``: the trader's committed offsets on ``liquidity.minute.v1`` against the
  topic's end offsets (records not yet read), judged against ``supervisor_max_lag_records``.
- ``checkpoint``: the Spark job has no consumer group; its progress is in its checkpoint. The
  newest ``<checkpoint>/liquidity/offsets/<batch>`` file holds the input offsets the job has
  planned up to; the end offsets minus those are records not yet read. Chosen over the Spark
  heartbeat's ``lag_ms`` (now minus the watermark) because that one grows on a quiet market and
  trails by the watermark delay by design: records behind only grow when the job falls behind.
  The heartbeat's ``lag_ms`` is still shown by ``rtc status``.

Offsets are read with a confluent-kafka ``AdminClient`` from the one Kafka client factory
(:func:`rtcrypto.kafka.clients.admin_client`), so the security settings apply here too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtcrypto.config import Settings
from rtcrypto.kafka.clients import admin_client
from rtcrypto.supervision.registry import LagSource, ServiceSpec

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

ADMIN_CLIENT_ID = "rtc-supervisor"


def offset_lag(end_offsets: Mapping[int, int], consumed: Mapping[int, int | None]) -> int | None:
    """Records between ``consumed`` offsets and ``end_offsets``, summed over partitions.

    None when no partition has a consumed offset yet (nothing committed, no batch planned).
    A partition without one counts from offset 0 (conservative).
    """
    if not any(offset is not None for offset in consumed.values()):
        return None
    total = 0
    for partition, end in end_offsets.items():
        position = consumed.get(partition)
        total += max(0, end - (position or 0))
    return total


def parse_checkpoint_offsets(text: str, topic: str) -> dict[int, int] | None:
    """Kafka offsets of ``topic`` in a Spark ``offsets/<batch>`` file, or None if absent.

    The file is a version line (``v1``), a metadata JSON line, then one JSON line (or ``-``)
    per source, e.g. ``{"gemini.orderbook.v1":{"0":1734}}``.
    """
    for line in text.splitlines()[2:]:
        try:
            source = json.loads(line)
        except ValueError:
            continue
        if isinstance(source, dict) and isinstance(source.get(topic), dict):
            return {int(partition): int(offset) for partition, offset in source[topic].items()}
    return None


def latest_checkpoint_offsets(offsets_dir: Path, topic: str) -> dict[int, int] | None:
    """Offsets of ``topic`` in the newest batch file of a checkpoint's ``offsets/`` folder."""
    try:
        batches = [int(path.name) for path in offsets_dir.iterdir() if path.name.isdigit()]
    except OSError:
        return None
    if not batches:
        return None
    try:
        text = (offsets_dir / str(max(batches))).read_text()
    except OSError:
        return None
    return parse_checkpoint_offsets(text, topic)


def kafka_admin(settings: Settings, timeout_s: float = 5.0) -> AdminClient:
    """A confluent-kafka ``AdminClient`` on ``settings.kafka_bootstrap`` (sends nothing yet),
    built by the one Kafka client factory (security settings included)."""
    return admin_client(settings, ADMIN_CLIENT_ID, timeout_s)


def end_offsets(admin: Any, topic: str, timeout_s: float = 5.0) -> dict[int, int]:
    """The end (next write) offset of each partition of ``topic``."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    metadata = admin.list_topics(topic=topic, timeout=timeout_s)
    partitions = sorted(metadata.topics[topic].partitions) if topic in metadata.topics else []
    if not partitions:
        return {}
    futures = admin.list_offsets(
        {TopicPartition(topic, partition): OffsetSpec.latest() for partition in partitions},
        request_timeout=timeout_s,
    )
    return {
        topic_partition.partition: int(future.result().offset)
        for topic_partition, future in futures.items()
    }


def committed_offsets(
    admin: Any, group: str, topic: str, timeout_s: float = 5.0
) -> dict[int, int | None]:
    """The consumer group's committed offset per partition of ``topic`` (None: none yet)."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    futures = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)], request_timeout=timeout_s
    )
    result = futures[group].result()
    return {
        item.partition: (int(item.offset) if item.offset >= 0 else None)
        for item in result.topic_partitions
        if item.topic == topic
    }


def consumer_group_lag(admin: Any, group: str, topic: str, timeout_s: float = 5.0) -> int | None:
    """Records of ``topic`` the consumer group has not committed yet; None without commits."""
    return offset_lag(end_offsets(admin, topic, timeout_s), committed_offsets(admin, group, topic))


def service_lag_records(spec: ServiceSpec, settings: Settings, admin: Any) -> int | None:
    """Records ``spec`` is behind its input topic (consumer group or checkpoint); None if unknown."""
    if spec.input_topic is None:
        return None
    topic = spec.input_topic(settings)
    if spec.lag_source is LagSource.consumer_group and spec.consumer_group is not None:
        return consumer_group_lag(admin, spec.consumer_group(settings), topic)
    if spec.lag_source is LagSource.checkpoint and spec.checkpoint_offsets_dir is not None:
        planned = latest_checkpoint_offsets(spec.checkpoint_offsets_dir(settings), topic)
        if planned is None:
            return None
        return offset_lag(end_offsets(admin, topic), dict(planned))
    return None
