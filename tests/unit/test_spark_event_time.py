"""The Spark jobs' event-time check (rtcrypto/spark/event_time.py) on a local Spark session:
the column expressions agree with the pure rule of ``rtcrypto.market.liquidity.event_time_problem``,
and the bars query drops far-future records instead of failing or moving its watermark."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtcrypto.market.liquidity import MAX_EVENT_MS, event_time_problem
from tests.unit.test_feed_bars_spark import TRADES_TOPIC, spark  # noqa: F401

HOUR_MS = 3_600_000
KAFKA_MS = 1_796_000_000_000  # the Kafka timestamp: the wall clock of a 2026 run
CASES = [
    (1_618_677_960_000, KAFKA_MS),  # a 2021 replay: years behind, fine
    (KAFKA_MS + HOUR_MS, KAFKA_MS),  # the edge of the window
    (KAFKA_MS + HOUR_MS + 1, KAFKA_MS),
    (32_503_680_000_000, KAFKA_MS),  # the year 3000
    (10**16, KAFKA_MS),  # past timestamp_millis' range
    (2**63 - 1, KAFKA_MS),
    (-1, KAFKA_MS),
    (MAX_EVENT_MS, None),  # no Kafka time: the range only
    (MAX_EVENT_MS + 1, None),
]


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.integers(0, 2 * KAFKA_MS))
def test_the_rule_refuses_only_what_can_move_the_watermark(ts_ms: int, receive_ms: int) -> None:
    problem = event_time_problem(ts_ms, receive_ms, HOUR_MS)
    assert (problem is None) == (0 <= ts_ms <= min(MAX_EVENT_MS, receive_ms + HOUR_MS))
    assert event_time_problem(None, receive_ms, HOUR_MS) is None


@pytest.mark.slow  # a local Spark session
def test_the_columns_agree_with_the_pure_rule_and_bars_skip_far_future_trades(spark: Any) -> None:  # noqa: F811
    from pyspark.sql import functions as F

    from rtcrypto.feedbars.streaming import build_bars, parse_records
    from rtcrypto.spark.event_time import checked_event_time, event_time_reason

    rows = spark.createDataFrame(CASES, "ts long, kafka_ms long").withColumn(
        "timestamp", F.timestamp_millis("kafka_ms")
    )
    with_kafka = event_time_reason(F.col("ts"), F.col("timestamp"), HOUR_MS)
    without = event_time_reason(F.col("ts"), None, HOUR_MS)
    reason = F.when(F.col("kafka_ms").isNull(), without).otherwise(with_kafka)
    checked = rows.select("ts", "kafka_ms", reason.alias("reason"))
    result = checked.select("*", checked_event_time(F.col("ts"), F.col("reason")).alias("t"))
    for row in result.collect():
        assert row["reason"] == event_time_problem(row["ts"], row["kafka_ms"], HOUR_MS), row
        assert (row["t"] is None) == (row["reason"] is not None)

    def trade(trade_id: int, ts_ms: int) -> str:
        return (
            f'{{"type":"trade","symbol":"BTCUSD","ts_event_ms":{ts_ms},"trade_id":{trade_id},'
            '"price":"100","amount":"1"}'
        )

    minute = 1_618_677_960_000
    values = [trade(1, minute + 1000), trade(2, 10**16), trade(3, 32_503_680_000_000)]
    values += [trade(4, minute + 61_000)]
    raw = spark.createDataFrame([(TRADES_TOPIC, v) for v in values], "topic string, value string")
    raw = raw.withColumn("timestamp", F.timestamp_millis(F.lit(KAFKA_MS)))
    parsed = parse_records(raw, HOUR_MS)
    refused = [r["event_time_reason"] for r in parsed.collect() if r["event_time_reason"]]
    assert len(refused) == 2
    bars = build_bars(parsed, watermark="2 seconds").orderBy("ts_ms").collect()
    assert [(bar["ts_ms"], bar["trades"]) for bar in bars] == [(minute, 1), (minute + 60_000, 1)]
