"""End to end on the real services: simulator -> ingest -> Kafka -> Spark -> liquidity.minute.v1.

The simulator replays the real Gemini capture; the ingest and the Spark job (spark-submit, with
the Kafka connector from Maven Central) run as child processes; the test recomputes every
window's bid and ask price-weighted volume straight from the capture file with a separate, simple
computation (tests/helpers.py) and asserts they match.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rtcrypto.config import get_settings
from rtcrypto.spark import submit as spark
from tests.helpers import (
    TopicReader,
    free_port,
    gemini_btc_window_sums,
    start_ingest,
    start_simulator,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_replayed_capture_yields_exact_liquidity_windows(
    kafka_broker: str, fresh_topics, tmp_path: Path, services_report
) -> None:
    expected = gemini_btc_window_sums()
    assert len(expected) == 2  # the 31 s capture spans 16:45:42..16:46:13 UTC
    settings = get_settings()  # fresh_topics pointed RTC_TOPIC_* at this test's topics
    config = spark.LiquidityJobConfig.from_settings(settings).with_overrides(
        checkpoint=tmp_path / "checkpoint", progress_interval_s=5.0
    )
    command = spark.build_submit_command(config, spark.kafka_connector_jars(settings))
    spark_log = tmp_path / "spark.log"
    job = spark.start_job(command, log_file=spark_log)
    output = TopicReader(kafka_broker, fresh_topics.liquidity)
    beats = TopicReader(kafka_broker, fresh_topics.heartbeat)
    simulator = ingest = None
    try:
        port = free_port()
        simulator = start_simulator(port, tmp_path, "--speed", "10")
        ingest = start_ingest(port, tmp_path)

        def both_windows_emitted() -> bool:
            assert job.poll() is None, spark_log.read_text()[-4000:]
            windows = {value["window_start_ms"] for value in output.values()}
            return set(expected) <= windows

        wait_until(both_windows_emitted, 240, "both liquidity windows", simulator, ingest)

        def job_heartbeat_counts_input() -> bool:
            return any(
                b["service"] == "spark-liquidity" and b["processed"] > 0 and b["lag_ms"] is not None
                for b in beats.values()
            )

        wait_until(job_heartbeat_counts_input, 30, "a heartbeat of the Spark job", ingest)
    finally:
        if ingest is not None:
            ingest.stop()
        if simulator is not None:
            simulator.stop()
        spark.stop_job(job)
        output.close()
        beats.close()

    records = output.poll()
    by_window: dict[int, list[dict]] = {}
    for key, value in records:
        assert key == f"{value['symbol']}:{value['window_start_ms']}"
        by_window.setdefault(value["window_start_ms"], []).append(value)
    for window_start, sums in expected.items():
        (record,) = by_window[window_start]  # each window emitted exactly once
        assert record["symbol"] == "BTCUSD"
        assert record["window_end_ms"] == window_start + 60_000
        assert record["event_count"] == sums["count"]
        assert record["bid_price_weighted_volume"] == pytest.approx(float(sums["bid"]), rel=1e-9)
        assert record["ask_price_weighted_volume"] == pytest.approx(float(sums["ask"]), rel=1e-9)
        assert record["liquidity_ratio"] == pytest.approx(
            float(sums["ask"] / sums["bid"]), rel=1e-9
        )
        assert record["depth_imbalance"] is not None and -1 <= record["depth_imbalance"] <= 1

    log = spark_log.read_text(errors="replace")
    query_ids = re.findall(r"query started name=liquidity id=([0-9a-f-]{36})", log)
    assert query_ids, f"the Spark log names no liquidity query:\n{log[-3000:]}"
    services_report(
        f"e2e: Spark {config.master} query {query_ids[0]} emitted {len(expected)} windows; "
        f"bid/ask price-weighted volume equal the capture's to rel 1e-9 "
        f"({sum(s['count'] for s in expected.values())} changes)"
    )
