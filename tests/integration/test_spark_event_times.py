"""Far-future event times against the real Spark liquidity job (issue 10).

Was: a record with ``ts_event_ms`` of the year 3000 moved the global watermark, and every later
window was dropped as late with no alarm; ``1e16`` overflowed ``timestamp_millis`` and the job
failed again on every restart from its checkpoint. Now such records are dead-lettered with their
reason, move nothing, and the real records before and after them still produce every window.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rtcrypto.market.schemas import BookChange, TimeTick
from rtcrypto.spark import submit as spark
from tests.integration.test_liquidity_job import (
    JOB_START_TIMEOUT_S,
    RunningJob,
    TopicReader,
    as_messages,
    closed_windows,
    expected_windows,
    job_config,
    job_factory,  # noqa: F401 - fixture
    job_topics,  # noqa: F401 - fixture
    produce,
    replayed_capture,
    with_ticks_and_depth,
)
from tests.unit.test_liquidity_spark import assert_window_matches

pytestmark = pytest.mark.integration

YEAR_3000_MS = 32_503_680_000_000


@pytest.mark.slow  # one Spark start, about 60 s
def test_far_future_event_times_are_dead_lettered_and_later_windows_still_close(
    kafka_broker: str,
    job_topics: dict[str, str],  # noqa: F811 - the fixture imported above
    job_factory: Callable[[spark.LiquidityJobConfig, str], RunningJob],  # noqa: F811
    tmp_path: Path,
) -> None:
    timeline = with_ticks_and_depth(replayed_capture(3))
    expected = expected_windows(timeline)
    closed = closed_windows(expected, timeline[-1].ts_event_ms - 2_000)
    assert len(closed) == 6  # 3 minutes x 2 symbols (the ticks run a minute past the last)
    half = len(timeline) // 2
    now_ms = int(time.time() * 1000)
    far = {
        "1e16": BookChange("BTCUSD", "bid", "1", "1", "1", "place", 1, 0, 1, 10**16, now_ms),
        "year 3000": TimeTick("BTCUSD", YEAR_3000_MS, now_ms, "heartbeat"),
        "2 h ahead": TimeTick("ETHUSD", now_ms + 2 * 3_600_000, now_ms, "clock"),
    }
    produce(
        kafka_broker,
        job_topics["input"],
        as_messages(timeline[:half])
        + as_messages(list(far.values()))
        + as_messages(timeline[half:]),
    )
    config = job_config(kafka_broker, job_topics, tmp_path / "checkpoint")
    output = TopicReader(kafka_broker, job_topics["output"])
    dead = TopicReader(kafka_broker, job_topics["deadletter"])
    try:
        job = job_factory(config, "event-times")
        records = output.wait_for(
            lambda values: {v["key"] for v in values} >= closed, JOB_START_TIMEOUT_S, job
        )
        letters = dead.wait_for(lambda values: len(values) >= len(far), 60, job)
        records = output.drain(quiet_s=5)
        job.assert_alive()
        assert job.stop() == 0, job.log_tail()
    finally:
        output.close()
        dead.close()
    assert sorted(record["key"] for record in records) == sorted(closed)  # once each, no jump
    for record in records:
        assert_window_matches(record, expected[record["key"]])
    assert len(letters) == len(far)
    reasons = sorted(letter["reason"] for letter in letters)
    assert sum("outside [0, 253402300799999]" in reason for reason in reasons) == 1, reasons
    assert sum("3600 s after the record's Kafka time" in reason for reason in reasons) == 2, reasons
    assert {json.loads(letter["raw"])["ts_event_ms"] for letter in letters} == {
        record.ts_event_ms for record in far.values()
    }
