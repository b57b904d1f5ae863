"""The Spark bar expressions on a static DataFrame of real capture data, against the pure rules.

Input: the recorded Gemini trades (``capture_trades``) and the BTCUSD/ETHUSD book as the ingest
writes it (changes, ticks, per-minute ``book_depth`` with the mid), replayed four times a minute
apart; the trades of replays 2 and 3 are left out, so minute 16:48 has a mid only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import pytest

from rtcrypto.feedbars.model import minute_bars
from rtcrypto.feedbars.sink import BAR_COLUMNS, bar_from_row
from tests.unit.test_feed_bars import (
    capture_orderbook,
    capture_trades,
    mid_inputs,
    trade_inputs,
)

TRADES_TOPIC = "gemini.trades.v1"
ORDERBOOK_TOPIC = "gemini.orderbook.v1"


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("test-feed-bars-spark")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.mark.slow  # a local Spark session: 30-75 s on this box
def test_spark_bars_equal_the_pure_rules_on_real_data(spark: Any) -> None:
    from rtcrypto.feedbars.streaming import build_bars, parse_records, relevant_records

    trades = capture_trades(replays=4, without_trades=(2, 3))
    orderbook = capture_orderbook(replays=4)
    rows = [(TRADES_TOPIC, trade.to_bytes().decode()) for trade in trades]
    rows += [(ORDERBOOK_TOPIC, record.to_bytes().decode()) for record in orderbook]
    rows += [  # malformed or unusable records feed no bar
        (TRADES_TOPIC, "{garbage"),
        (
            TRADES_TOPIC,
            '{"type":"trade","symbol":"BTCUSD","ts_event_ms":1618677960000,'
            '"trade_id":1,"price":"NaN","amount":"1"}',
        ),
        (
            TRADES_TOPIC,
            '{"type":"trade","symbol":"BTCUSD","ts_event_ms":1618677960000,'
            '"trade_id":2,"price":"100","amount":"-1"}',
        ),
    ]
    raw = spark.createDataFrame(rows, "topic string, value string")
    filtered = relevant_records(raw, TRADES_TOPIC)
    changes = sum(1 for r in orderbook if r.type == "change")
    assert filtered.count() == len(rows) - changes  # book changes are dropped before parsing

    actual = [
        bar_from_row(row.asDict())
        for row in build_bars(parse_records(filtered)).orderBy("symbol", "ts_ms").collect()
    ]
    expected = minute_bars(trade_inputs(trades), mid_inputs(orderbook))
    assert list(build_bars(parse_records(filtered)).columns) == list(BAR_COLUMNS)
    assert [(b.symbol, b.ts_ms) for b in actual] == [(b.symbol, b.ts_ms) for b in expected]
    for got, want in zip(actual, expected, strict=True):
        assert dataclasses.replace(got, weighted_price=None) == dataclasses.replace(
            want, weighted_price=None
        ), want
        if want.weighted_price is None:
            assert got.weighted_price is None
        else:
            assert got.weighted_price is not None
            assert math.isclose(got.weighted_price, want.weighted_price, rel_tol=1e-12)
    mid_only = [(b.symbol, b.ts_ms) for b in expected if b.trades == 0]
    btc_mid_only = [ts for symbol, ts in mid_only if symbol == "BTCUSD"]
    # 16:48 UTC; the last minute (16:49) is still open in the input, so it has no mid yet
    assert btc_mid_only == [1618678080000]
