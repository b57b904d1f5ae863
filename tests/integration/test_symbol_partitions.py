"""Records are partitioned by symbol (issue 14): on a topic with several partitions, every record
of one symbol lands in one partition, in the order it was sent, while the keys stay unique."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from rtcrypto.config import get_settings
from rtcrypto.kafka.partitioning import murmur2, partition_key, symbol_partition
from rtcrypto.kafka.producers import make_producer
from rtcrypto.market.captures import load_capture
from tests.helpers import GEMINI_CAPTURE

PARTITIONS = 6


@given(
    symbol=st.binary(min_size=0, max_size=20).filter(lambda raw: b":" not in raw),
    rest=st.binary(max_size=40),
    partitions=st.integers(min_value=1, max_value=1000),
)
def test_one_symbol_always_maps_to_one_partition_in_range(
    symbol: bytes, rest: bytes, partitions: int
) -> None:
    first = symbol_partition(symbol + b":" + rest, partitions)
    assert 0 <= first < partitions
    assert symbol_partition(symbol + b":other", partitions) == first
    assert partition_key(symbol + b":" + rest) == symbol


@given(data=st.binary(max_size=64))
def test_murmur2_is_kafkas(data: bytes) -> None:
    """The same hash as Kafka's clients (kafka-python's port of Utils.murmur2, a test-only
    reference: production code never imports kafka-python)."""
    from kafka.partitioner.default import murmur2 as reference

    assert murmur2(data) & 0xFFFFFFFF == reference(data)  # the same 32 bits (Java: signed)


def test_bad_partition_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        symbol_partition(b"BTCUSD:1", 0)


@pytest.mark.integration
def test_a_symbol_stays_in_one_partition_in_order_on_a_partitioned_topic(
    kafka_topic_factory: Callable[..., str],
) -> None:
    topic = kafka_topic_factory("orderbook", partitions=PARTITIONS)
    settings = get_settings()
    capture = load_capture(GEMINI_CAPTURE)
    sent: list[tuple[str, str]] = []  # (symbol, key) in send order
    for message in capture.messages:
        symbol = getattr(message, "symbol", None)
        for index, _change in enumerate(getattr(message, "changes", ()) or ()):
            sent.append((symbol, f"{symbol}:{message.line_number}:{index}"))
    assert len({symbol for symbol, _ in sent}) >= 5
    producer = make_producer(settings, "test-symbol-partitions")
    for _symbol, key in sent:
        producer.send(topic, key.encode(), b"{}")
    assert producer.flush(60) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": "unused",
            "enable.auto.commit": False,
        }
    )
    by_partition: dict[int, list[str]] = defaultdict(list)
    try:
        consumer.assign([TopicPartition(topic, partition, 0) for partition in range(PARTITIONS)])
        received = 0
        while received < len(sent):
            message = consumer.poll(10)
            assert message is not None, f"only {received} of {len(sent)} records came back"
            by_partition[message.partition()].append(message.key().decode())
            received += 1
    finally:
        consumer.close()
    partitions_of: dict[str, set[int]] = defaultdict(set)
    for partition, keys in by_partition.items():
        for key in keys:
            partitions_of[key.split(":", 1)[0]].add(partition)
    assert all(len(found) == 1 for found in partitions_of.values()), partitions_of
    assert len(by_partition) > 1  # several symbols spread over several partitions
    for symbol, (partition,) in ((s, tuple(p)) for s, p in partitions_of.items()):
        in_partition = [key for key in by_partition[partition] if key.startswith(f"{symbol}:")]
        assert in_partition == [key for sym, key in sent if sym == symbol]  # order kept
