"""Topic bounds on the real broker: retention by bytes and time, segment size, compression (issue 10).

A topic created without them (as every topic was before) gets them when ``ensure_topics`` runs
again with the project's configs (``rtc stack up``); a new topic is created with them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from rtcrypto.config import Settings
from rtcrypto.stack import kafka as kafka_stack

pytestmark = pytest.mark.integration


@pytest.fixture
def two_topics(kafka_broker: str) -> Iterator[tuple[str, str]]:
    names = (f"test.bounds.old.{uuid.uuid4().hex[:8]}", f"test.bounds.new.{uuid.uuid4().hex[:8]}")
    yield names
    kafka_stack.delete_topics(names, bootstrap=kafka_broker)


def test_existing_and_new_topics_get_retention_and_compression(
    kafka_broker: str, two_topics: tuple[str, str]
) -> None:
    old, new = two_topics
    settings = Settings(
        kafka_retention_bytes=50 * 1024**2,
        kafka_retention_hours=12,
        kafka_segment_bytes=8 * 1024**2,
    )
    kafka_stack.ensure_topics([old], bootstrap=kafka_broker)  # as before issue 10: no bounds
    before = kafka_stack.describe_topic_configs([old], bootstrap=kafka_broker)[old]
    assert "retention.bytes" not in before

    created = kafka_stack.ensure_topics(
        [old, new], bootstrap=kafka_broker, configs=kafka_stack.topic_configs(settings)
    )
    assert created == [new]
    described = kafka_stack.describe_topic_configs([old, new], bootstrap=kafka_broker)
    for topic in (old, new):
        configs = described[topic]
        assert configs["retention.bytes"] == str(50 * 1024**2), topic
        assert configs["retention.ms"] == str(12 * 3_600_000), topic
        assert configs["segment.bytes"] == str(8 * 1024**2), topic
        assert configs["compression.type"] == "zstd", topic


def test_default_bounds_are_finite() -> None:
    configs = kafka_stack.topic_configs(Settings())
    assert int(configs["retention.bytes"]) == 1024**3  # per partition
    assert int(configs["retention.ms"]) == 7 * 24 * 3_600_000
    assert int(configs["segment.bytes"]) < int(configs["retention.bytes"])
    assert configs["compression.type"] == "zstd"
    assert (
        kafka_stack.topic_configs(Settings(kafka_compression="none"))["compression.type"]
        == "uncompressed"
    )
