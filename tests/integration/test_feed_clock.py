"""One clock for trading and review, on real parts: the simulator replays the 2021-04-17 Gemini
capture on its own historical time (no --shift-to-now) at 10x wall speed; the real paper trader
(Kafka, the simulator's book, Elasticsearch) trades on that clock; ``rtc report --since 1h`` counts
back from it, and from the newest recorded time once the simulator is gone.

Liquidity records are produced straight to the test's topic at the simulator's current minutes
(the Spark job has its own tests), so the decision minutes and the forecast's sides are known.
The staleness limit is the default 300 wall seconds (3,000 feed seconds at 10x): on the wall clock
every 2021 record would be stale.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from confluent_kafka import Producer
from elasticsearch import Elasticsearch
from typer.testing import CliRunner

from rtcrypto.cli.main import app
from rtcrypto.config import Topics, get_settings
from rtcrypto.search import search_client
from rtcrypto.search.indices import ensure_templates
from rtcrypto.trader.journal import read_journal
from rtcrypto.trading.strategy import Side
from tests.helpers import Child, TopicReader, free_port, sim_status, start_simulator, wait_until
from tests.trade_documents import drop_prefix

pytestmark = [pytest.mark.integration]

MINUTE = 60_000
SPEED = 10
VERSION = "clock-v1"
CAPTURE_DAY = "2021-04-17"
KINDS = ("orders", "fills", "scores", "balances", "ticker", "liquidity", "forecast")


def side_of(minute_start_ms: int) -> str:
    """The test forecast: buy on even minutes, sell on odd ones."""
    return "buy" if (minute_start_ms // MINUTE) % 2 == 0 else "sell"


def publish_forecast(forecast_dir: Path, first_ms: int, minutes: int) -> None:
    folder = forecast_dir / "versions" / VERSION
    folder.mkdir(parents=True)
    starts = [first_ms + i * MINUTE for i in range(minutes)]
    frame = pd.DataFrame(
        {
            "ds": pd.to_datetime(starts, unit="ms", utc=True),
            "yhat": 11.0,
            "yhat_lower": 10.9,
            "yhat_upper": 11.1,
            "side": [side_of(start) for start in starts],
        }
    )
    frame.to_parquet(folder / "forecast.parquet")
    (folder / "metadata.json").write_text(json.dumps({"version": VERSION, "training": {}}))
    (forecast_dir / "current").write_text(VERSION + "\n")


def liquidity_record(end_ms: int) -> dict[str, Any]:
    start = end_ms - MINUTE
    return {
        "schema_version": 1,
        "type": "liquidity",
        "key": f"BTCUSD:{start}",
        "symbol": "BTCUSD",
        "window_start_ms": start,
        "window_end_ms": end_ms,
        "bid_price_weighted_volume": 1.0e6,
        "ask_price_weighted_volume": 1.0e6,
        "liquidity_ratio": 1.0,
        "event_count": 10,
    }


def produce(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for record in records:
        producer.produce(topic, json.dumps(record).encode())
    assert producer.flush(10) == 0


def documents(es: Elasticsearch, index: str) -> list[dict[str, Any]]:
    es.indices.refresh(index=index, ignore_unavailable=True)
    result = es.search(index=index, size=1000, query={"match_all": {}}, ignore_unavailable=True)
    return [hit["_source"] for hit in result["hits"]["hits"]]


def epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture
def prefix(search_node: str) -> Iterator[str]:
    name = "clock" + os.urandom(4).hex()
    client = search_client()
    ensure_templates(client, name)  # what `rtc up` provisions
    yield name
    drop_prefix(client, name)
    client.close()


def test_trader_and_review_run_on_the_simulators_historical_clock(
    tmp_path: Path,
    kafka_broker: str,
    fresh_topics: Topics,
    search_node: str,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    services_report,  # type: ignore[no-untyped-def]
) -> None:
    sim_port = free_port()
    simulator = start_simulator(
        sim_port, tmp_path, "--loop", "--start-immediately", "--speed", str(SPEED)
    )
    replay_start_ms = int(sim_status(sim_port)["simulated_time_ms"])
    assert sim_status(sim_port)["shift_ms"] == 0, "historical time, not shifted to now"
    env = {
        "RTC_HOME": str(tmp_path / "home"),
        "RTC_KAFKA_BOOTSTRAP": kafka_broker,
        "RTC_SEARCH_URL": search_node,
        "RTC_SEARCH_INDEX_PREFIX": prefix,
        "RTC_SEARCH_FLUSH_INTERVAL_S": "0.2",
        "RTC_FORECAST_DIR": str(tmp_path / "forecast"),
        "RTC_TRADER_CONSUMER_GROUP": f"trader-{prefix}",
        "RTC_SIMULATOR_PORT": str(sim_port),
        "RTC_FEED": "simulator",
        "RTC_FEED_CLOCK_RESYNC_S": "1",
        "RTC_HEARTBEAT_INTERVAL_S": "1",
        "RTC_FORECAST_RELOAD_INTERVAL_S": "0.5",
    }
    # no RTC_TRADER_MAX_RECORD_AGE_S (300 s) and no RTC_TRADER_FORECAST_OFFSET_MS (the clock's 0)
    first_minute = replay_start_ms - replay_start_ms % MINUTE
    publish_forecast(Path(env["RTC_FORECAST_DIR"]), first_minute - 60 * MINUTE, 180)
    journal_path = Path(env["RTC_HOME"]) / "trader" / "journal-paper.jsonl"
    trader = Child("trader", [sys.executable, "-m", "streaming.trader"], tmp_path, env)
    try:
        wait_until(lambda: "trader consuming" in trader.log(), 60, "the trader up", trader)
        assert "trader clock: simulator, historical replay at 10x" in trader.log()
        # a buy minute that has just ended on the simulator's clock, then the sell minute after it
        now_ms = int(sim_status(sim_port)["simulated_time_ms"])
        buy_end = now_ms - now_ms % MINUTE
        if side_of(buy_end) != "buy":
            buy_end += MINUTE
        sell_end = buy_end + MINUTE
        wait_until(
            lambda: sim_status(sim_port)["simulated_time_ms"] >= sell_end + 5_000,
            60,
            "the replay past the sell minute",
            simulator,
        )
        # a buy minute too, but 56 feed minutes old: past the default 300 wall seconds, which
        # are 50 feed minutes at 10x (RTC_TRADER_MAX_RECORD_AGE_S scales with the speed)
        stale_end = buy_end - 56 * MINUTE
        records = [liquidity_record(end) for end in (stale_end, buy_end, sell_end)]
        produce(kafka_broker, fresh_topics.liquidity, records)

        def sold() -> bool:
            if not journal_path.exists():
                return False
            results = read_journal(journal_path).results.values()
            return any(status.side is Side.sell for status in results)

        wait_until(sold, 60, "the sell on the replay's clock", trader, simulator)
        state = read_journal(journal_path)
        assert [sent.minute_ms for sent in state.sent.values()] == [buy_end, sell_end]
        log = trader.log()
        assert log.count("stale record") == 1, log[-3000:]
        assert f"minute={stale_end} stale record" in log
        sim_now_ms = int(sim_status(sim_port)["simulated_time_ms"])
        for sent in state.sent.values():  # journal times are the replay's, not the wall clock's
            assert sent.minute_ms <= sent.sent_ms <= sim_now_ms
        for status in state.results.values():
            assert sent_window(buy_end, sim_now_ms, status.ts_ms)

        es = search_client()
        try:
            wait_until(lambda: len(documents(es, f"{prefix}-scores")) == 1, 30, "the score", trader)
            stamps = {kind: documents(es, f"{prefix}-{kind}") for kind in KINDS}
        finally:
            es.close()
        for kind in ("orders", "fills", "scores", "balances", "ticker"):
            assert stamps[kind], f"no {kind} document"
            for doc in stamps[kind]:
                assert sent_window(buy_end, sim_now_ms, epoch_ms(doc["@timestamp"])), (kind, doc)
        liquidity_times = sorted(epoch_ms(doc["@timestamp"]) for doc in stamps["liquidity"])
        assert liquidity_times == [stale_end - MINUTE, buy_end - MINUTE, sell_end - MINUTE]
        forecast_times = [epoch_ms(doc["@timestamp"]) for doc in stamps["forecast"]]
        assert forecast_times and all(doc["@timestamp"] == doc["ds"] for doc in stamps["forecast"])
        assert min(forecast_times) <= buy_end <= max(forecast_times)
        assert all(iso.startswith(CAPTURE_DAY) for iso in map(_iso, forecast_times))

        beats = TopicReader(kafka_broker, fresh_topics.heartbeat)

        def trader_lags() -> list[int]:
            return [b["lag_ms"] for b in beats.values() if b["service"] == "trader" and b["lag_ms"]]

        wait_until(lambda: bool(trader_lags()), 30, "a trader heartbeat with its lag", trader)
        lags = trader_lags()
        beats.close()
        assert lags and max(lags) < 30 * MINUTE, "the trader's lag is on the feed clock"

        # the review: the last hour of the simulator's clock holds the two trades and the forecast
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        outcome = CliRunner().invoke(
            app, ["report", "--since", "1h", "--durations", "feed", "--mode", "paper"]
        )
        assert outcome.exit_code == 0, outcome.output
        assert "feed clock: simulator, historical replay at 10x, now 2021-04-17" in outcome.output
        assert "trades (fills): 2 (1 buys, 1 sells)" in outcome.output
        folder = Path(env["RTC_HOME"]) / "reports" / CAPTURE_DAY
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["start"].startswith(CAPTURE_DAY) and summary["end"].startswith(CAPTURE_DAY)
        assert summary["forecast"]["version"] == VERSION
        assert summary["forecast"]["minutes_compared"] >= 1, summary["forecast"]
        assert "does not cover" not in summary["forecast"]["note"]
        # durations in wall time: 6 wall minutes at 10x are the replay's last hour
        outcome = CliRunner().invoke(
            app,
            ["report", "--since", "6m", "--durations", "wall", "--out", str(tmp_path / "wall")],
        )
        assert outcome.exit_code == 0, outcome.output
        assert "durations in wall time x10" in outcome.output
        assert "trades (fills): 2 (1 buys, 1 sells)" in outcome.output
        wall = json.loads((tmp_path / "wall" / "summary.json").read_text())
        assert wall["end_ms"] - wall["start_ms"] == 6 * MINUTE * SPEED
        assert trader.stop() == 0
    finally:
        simulator.stop()
        get_settings.cache_clear()

    # the simulator is gone: the review counts back from the newest recorded time
    get_settings.cache_clear()
    outcome = CliRunner().invoke(
        app,
        [
            "report",
            "--since",
            "1h",
            "--durations",
            "feed",
            "--mode",
            "paper",
            "--out",
            str(tmp_path / "after"),
        ],
    )
    get_settings.cache_clear()
    assert outcome.exit_code == 0, outcome.output
    assert "the simulator does not answer" in outcome.output
    assert "trades (fills): 2 (1 buys, 1 sells)" in outcome.output
    summary = json.loads((tmp_path / "after" / "summary.json").read_text())
    newest_order_ms = max(status.ts_ms for status in state.results.values())
    assert summary["end_ms"] == newest_order_ms + 1, "the newest recorded time: the sell"
    assert summary["forecast"]["minutes_compared"] >= 1
    services_report(
        f"feed clock: paper trader on the simulator's historical clock ({CAPTURE_DAY}, {SPEED}x): "
        f"2 orders, 1 stale record skipped, trader lag {max(lags) / 1000:.0f} feed s; "
        "rtc report --since 1h on the feed clock, then on the newest recorded time"
    )


def sent_window(first_ms: int, last_ms: int, ts_ms: int) -> bool:
    """``ts_ms`` is within the replayed minutes of the test (and on the capture's day)."""
    return first_ms - MINUTE <= ts_ms <= last_ms and _iso(ts_ms).startswith(CAPTURE_DAY)


def _iso(ts_ms: int) -> str:
    return f"{datetime.fromtimestamp(ts_ms / 1000, UTC):%Y-%m-%dT%H:%M:%S}"
