"""The trader service end to end on real parts: Kafka, the simulator's replayed book, the real
Elasticsearch node; killed between sending an order and recording it, then restarted.

Liquidity records are produced straight to the test's topic (the Spark job has its own tests), so
the decision minutes and the forecast's sides are known in advance.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from confluent_kafka import Producer

from rtcrypto.config import Topics
from rtcrypto.trader.journal import read_journal
from rtcrypto.trading.ledger import Ledger
from rtcrypto.trading.strategy import Side
from tests.helpers import (
    GEMINI_CAPTURE,
    Child,
    TopicReader,
    free_port,
    sim_status,
    start_simulator,
    wait_until,
)

pytestmark = [pytest.mark.integration]

T0 = 1_618_677_900_000  # 2021-04-17 16:45 UTC, the Gemini capture's first minute
MINUTE = 60_000
VERSION = "test-v1"


def publish_forecast(forecast_dir: Path, sides: list[str], version: str = VERSION) -> None:
    """A forecast version with the given side per minute from T0, made current (the files the
    publish step writes: versions/<v>/forecast.parquet + metadata.json, then the pointer)."""
    folder = forecast_dir / "versions" / version
    folder.mkdir(parents=True)
    ds = pd.to_datetime([T0 + i * MINUTE for i in range(len(sides))], unit="ms", utc=True)
    frame = pd.DataFrame(
        {"ds": ds, "yhat": 11.0, "yhat_lower": 10.9, "yhat_upper": 11.1, "side": sides}
    )
    frame.to_parquet(folder / "forecast.parquet")
    (folder / "metadata.json").write_text(json.dumps({"version": version, "training": {}}))
    (forecast_dir / "current").write_text(version + "\n")


def liquidity_record(minute: int, ratio: float = 1.0) -> dict[str, Any]:
    start = T0 + (minute - 1) * MINUTE
    return {
        "schema_version": 1,
        "type": "liquidity",
        "key": f"BTCUSD:{start}",
        "symbol": "BTCUSD",
        "window_start_ms": start,
        "window_end_ms": start + MINUTE,
        "bid_price_weighted_volume": 1.0e6,
        "ask_price_weighted_volume": ratio * 1.0e6,
        "liquidity_ratio": ratio,
        "event_count": 10,
    }


def produce(bootstrap: str, topic: str, values: list[dict[str, Any] | bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        payload = value if isinstance(value, bytes) else json.dumps(value).encode()
        producer.produce(topic, payload)
    assert producer.flush(10) == 0


@pytest.fixture
def trader_env(
    tmp_path: Path,
    kafka_broker: str,
    fresh_topics: Topics,
    search_node: str,
) -> dict[str, str]:
    prefix = "t" + os.urandom(4).hex()
    return {
        "RTC_HOME": str(tmp_path / "home"),
        "RTC_KAFKA_BOOTSTRAP": kafka_broker,
        "RTC_SEARCH_URL": search_node,
        "RTC_SEARCH_INDEX_PREFIX": prefix,
        "RTC_SEARCH_FLUSH_INTERVAL_S": "0.2",
        "RTC_FORECAST_DIR": str(tmp_path / "forecast"),
        "RTC_TRADER_CONSUMER_GROUP": f"trader-{prefix}",
        "RTC_TRADER_FORECAST_OFFSET_MS": "0",
        "RTC_TRADER_MAX_RECORD_AGE_S": "1e12",  # the records are from 2021
        "RTC_HEARTBEAT_INTERVAL_S": "1",
        "RTC_FORECAST_RELOAD_INTERVAL_S": "0.5",
    }


def start_trader(
    log_dir: Path, env: dict[str, str], name: str = "trader", module: str = "streaming.trader"
) -> Child:
    return Child(name, [sys.executable, "-m", module], log_dir, env)


def sim_up(port: int) -> bool:
    try:
        return bool(sim_status(port))
    except OSError:
        return False


def search_hits(url: str, index: str) -> list[dict[str, Any]]:
    from elasticsearch import Elasticsearch

    es = Elasticsearch(url, request_timeout=10)
    es.indices.refresh(index=index, ignore_unavailable=True)
    result = es.search(index=index, size=1000, query={"match_all": {}}, ignore_unavailable=True)
    return [{"_id": hit["_id"], **hit["_source"]} for hit in result["hits"]["hits"]]


@pytest.mark.faults
def test_paper_trader_killed_mid_order_never_sends_twice_and_indexes_every_fill(
    tmp_path: Path,
    trader_env: dict[str, str],
    fresh_topics: Topics,
    kafka_broker: str,
    services_report: Callable[[str], None],
) -> None:
    """kill -9 between the exchange's answer and the journal; the restart reconciles by
    client_order_id, re-reads the uncommitted record and does not order again."""
    sim_port = free_port()
    simulator = start_simulator(sim_port, tmp_path, "--loop", "--start-immediately")
    env = {**trader_env, "RTC_SIMULATOR_PORT": str(sim_port)}
    forecast_dir = Path(env["RTC_FORECAST_DIR"])
    publish_forecast(forecast_dir, ["sell", "buy", "buy", "sell", "sell", "buy", "sell"])
    prefix = env["RTC_SEARCH_INDEX_PREFIX"]
    journal_path = Path(env["RTC_HOME"]) / "trader" / "journal-paper.jsonl"
    try:
        # the fault comes from the test side: the runner kills the trader after the exchange's answer
        crashing = start_trader(tmp_path, env, "t1", module="tests.trader_fault_runner")
        produce(kafka_broker, fresh_topics.liquidity, [liquidity_record(1)])
        wait_until(lambda: not crashing.alive(), 60, "trader exits at the fault")
        assert crashing.process.returncode == 137, crashing.log()[-2000:]
        assert "fault injection" in crashing.log()
        pending = read_journal(journal_path).pending()
        assert len(pending) == 1 and pending[0].request.side is Side.buy

        started = time.monotonic()
        trader = start_trader(tmp_path, env, "t2")
        produce(
            kafka_broker,
            fresh_topics.liquidity,
            [liquidity_record(2), b"{not json", liquidity_record(3), liquidity_record(4)],
        )

        def sold() -> bool:
            state = read_journal(journal_path)
            return any(s.side is Side.sell for s in state.results.values())

        wait_until(sold, 60, "the sell of minute 4", trader, simulator)
        assert "recovered from the exchange" in trader.log()

        state = read_journal(journal_path)
        assert len(state.sent) == 2 and state.pending() == []
        account = json.loads((Path(env["RTC_HOME"]) / "trader" / "paper-account.json").read_text())
        sent_ids = [order["client_order_id"] for order in account["orders"].values()]
        assert len(sent_ids) == len(set(sent_ids)) == 2, "the exchange saw each order once"

        ledger = Ledger(Decimal(state.opened["usd"]), Decimal(state.opened["btc"]))  # type: ignore[index]
        ledger.fee_rate = Decimal("0.0025")
        for status in state.results.values():
            if status.executed_quantity > 0:
                ledger.record(
                    status.side,
                    status.average_execution_price,
                    status.executed_quantity,
                    status.fee_usd,
                    status.ts_ms,
                )
        assert len(ledger.round_trips) == 1

        def indexed() -> bool:
            return len(search_hits(env["RTC_SEARCH_URL"], f"{prefix}-scores")) == 1

        wait_until(indexed, 30, "the score in Elasticsearch", trader)
        orders = search_hits(env["RTC_SEARCH_URL"], f"{prefix}-orders")
        fills = search_hits(env["RTC_SEARCH_URL"], f"{prefix}-fills")
        scores = search_hits(env["RTC_SEARCH_URL"], f"{prefix}-scores")
        assert sorted(o["_id"] for o in orders) == sorted(state.sent), "one document per order"
        assert len(fills) == len(ledger.fills) == 2, "every fill in the ledger has its document"
        es_profit = sum(Decimal(s["pnl_usd_exact"]) for s in scores)
        assert es_profit == ledger.realised_pnl_usd

        deadletters = TopicReader(kafka_broker, fresh_topics.deadletter)
        wait_until(lambda: len(deadletters.values()) >= 1, 20, "the dead letter", trader)
        assert deadletters.values()[0]["service"] == "trader"
        deadletters.close()
        beats = TopicReader(kafka_broker, fresh_topics.heartbeat)
        wait_until(
            lambda: any(b["service"] == "trader" for b in beats.values()), 20, "a heartbeat", trader
        )
        beats.close()
        assert trader.stop() == 0
        services_report(
            f"trader: killed mid-order, restarted and reconciled; sell recorded "
            f"{time.monotonic() - started:.1f} s after restart; realised P&L "
            f"{ledger.realised_pnl_usd:.2f} USD (paper, replayed book)"
        )
    finally:
        simulator.stop()


SANDBOX_KEY = "account-trader-test"
SANDBOX_SECRET = "s3cr3t-" + "9f2c" * 6  # searched for everywhere afterwards


def test_sandbox_trader_trades_through_the_gemini_protocol_and_never_leaks_the_secret(
    tmp_path: Path,
    trader_env: dict[str, str],
    fresh_topics: Topics,
    kafka_broker: str,
) -> None:
    """RTC_TRADING_MODE=sandbox against the simulator's Gemini sandbox (signed REST, IOC
    matching); then the secret is searched in every log, every Kafka topic and every index."""
    sim_port = free_port()
    keys = {"RTC_GEMINI_API_KEY": SANDBOX_KEY, "RTC_GEMINI_API_SECRET": SANDBOX_SECRET}
    simulator = Child(
        "simulator",
        [sys.executable, "-m", "streaming.simulator", "--capture", str(GEMINI_CAPTURE)]
        + ["--port", str(sim_port), "--loop", "--sandbox-from-settings"],
        tmp_path,
        keys,
    )
    env = {
        **trader_env,
        **keys,
        "RTC_SIMULATOR_PORT": str(sim_port),
        "RTC_TRADING_MODE": "sandbox",
        "RTC_GEMINI_REST_URL": f"http://127.0.0.1:{sim_port}",
    }
    publish_forecast(Path(env["RTC_FORECAST_DIR"]), ["sell", "buy", "sell"])
    journal_path = Path(env["RTC_HOME"]) / "trader" / f"journal-sandbox-127.0.0.1_{sim_port}.jsonl"
    try:
        wait_until(lambda: sim_up(sim_port), 30, "simulator up", simulator)
        time.sleep(1.5)  # the replay builds its book
        trader = start_trader(tmp_path, env)
        produce(kafka_broker, fresh_topics.liquidity, [liquidity_record(1), liquidity_record(2)])

        def sold() -> bool:
            if not journal_path.exists():
                return False
            state = read_journal(journal_path)
            return any(s.side is Side.sell for s in state.results.values())

        wait_until(sold, 60, "a buy and a sell through the sandbox", trader, simulator)
        status = sim_status(sim_port)
        assert status["sandbox"]["orders"] >= 2, status["sandbox"]
        prefix = env["RTC_SEARCH_INDEX_PREFIX"]
        wait_until(
            lambda: len(search_hits(env["RTC_SEARCH_URL"], f"{prefix}-scores")) == 1,
            30,
            "the score indexed",
            trader,
        )
        assert trader.stop() == 0
    finally:
        simulator.stop()

    leaks: list[str] = []
    for path in tmp_path.rglob("*"):
        if path.is_file() and SANDBOX_SECRET.encode() in path.read_bytes():
            leaks.append(str(path))  # logs of the trader and the simulator, journal, spool
    for topic in Topics.model_fields:
        reader = TopicReader(kafka_broker, getattr(fresh_topics, topic))
        reader.close()
        if any(SANDBOX_SECRET in json.dumps(value) for value in reader.values()):
            leaks.append(f"kafka topic {topic}")
    from elasticsearch import Elasticsearch

    es = Elasticsearch(env["RTC_SEARCH_URL"], request_timeout=10)
    es.indices.refresh(index=f"{env['RTC_SEARCH_INDEX_PREFIX']}-*")
    found = es.search(
        index=f"{env['RTC_SEARCH_INDEX_PREFIX']}-*",
        query={"query_string": {"query": f'"{SANDBOX_SECRET}"'}},
        size=1,
    )
    total = es.count(index=f"{env['RTC_SEARCH_INDEX_PREFIX']}-*")["count"]
    assert total > 0, "the search for the secret must look at real documents"
    if found["hits"]["total"]["value"]:
        leaks.append("elasticsearch")
    raw = es.search(index=f"{env['RTC_SEARCH_INDEX_PREFIX']}-*", size=1000)["hits"]["hits"]
    if any(SANDBOX_SECRET in json.dumps(hit["_source"]) for hit in raw):
        leaks.append("elasticsearch sources")
    assert leaks == [], f"the API secret leaked into: {leaks}"


def test_sandbox_trader_with_a_wrong_secret_stops_with_an_authentication_error(
    tmp_path: Path, trader_env: dict[str, str]
) -> None:
    sim_port = free_port()
    simulator = Child(
        "simulator",
        [sys.executable, "-m", "streaming.simulator", "--capture", str(GEMINI_CAPTURE)]
        + ["--port", str(sim_port), "--sandbox-from-settings"],
        tmp_path,
        {"RTC_GEMINI_API_KEY": SANDBOX_KEY, "RTC_GEMINI_API_SECRET": SANDBOX_SECRET},
    )
    env = {
        **trader_env,
        "RTC_SIMULATOR_PORT": str(sim_port),
        "RTC_TRADING_MODE": "sandbox",
        "RTC_GEMINI_REST_URL": f"http://127.0.0.1:{sim_port}",
        "RTC_GEMINI_API_KEY": SANDBOX_KEY,
        "RTC_GEMINI_API_SECRET": "wrong-" + SANDBOX_SECRET,
    }
    publish_forecast(Path(env["RTC_FORECAST_DIR"]), ["buy", "buy"])
    try:
        wait_until(lambda: sim_up(sim_port), 30, "simulator up", simulator)
        trader = start_trader(tmp_path, env)
        wait_until(lambda: not trader.alive(), 60, "the trader gives up")
        assert trader.process.returncode == 2
        log = trader.log()
        assert "AuthenticationError" in log or "InvalidSignature" in log, log[-2000:]
        assert "wrong-" + SANDBOX_SECRET not in log and SANDBOX_SECRET not in log
        requests_seen = sim_status(sim_port)["requests"]
        private = {path: n for path, n in requests_seen.items() if "order" in path and n}
        assert private == {}, f"no order endpoint may be hit after the refusal: {private}"
    finally:
        simulator.stop()


HOSTILE_RECORDS = [
    b'{"symbol":"BTCUSD","window_start_ms":Infinity,"window_end_ms":1618677960000}',
    b'{"symbol":"BTCUSD","window_start_ms":' + b"[" * 3000 + b"]" * 3000 + b"}",
    json.dumps({**liquidity_record(1), "window_end_ms": 2**64}).encode(),
]


def test_hostile_records_are_dead_lettered_committed_and_never_read_again(
    tmp_path: Path,
    trader_env: dict[str, str],
    fresh_topics: Topics,
    kafka_broker: str,
) -> None:
    """Issue 10: a record with Infinity, deep nesting or an integer above 2^63 raised before the
    commit, so the trader crash-looped on it. Now each is dead-lettered with its reason and its
    offset committed: the good record behind them trades, a restart reads none of them again,
    and a second trader on the same journal refuses to start."""
    sim_port = free_port()
    simulator = start_simulator(sim_port, tmp_path, "--loop", "--start-immediately")
    env = {**trader_env, "RTC_SIMULATOR_PORT": str(sim_port)}
    publish_forecast(Path(env["RTC_FORECAST_DIR"]), ["sell", "buy", "sell"])
    journal_path = Path(env["RTC_HOME"]) / "trader" / "journal-paper.jsonl"
    deadletters = TopicReader(kafka_broker, fresh_topics.deadletter)
    try:
        trader = start_trader(tmp_path, env, "t1")
        produce(kafka_broker, fresh_topics.liquidity, [*HOSTILE_RECORDS, liquidity_record(1)])

        def bought() -> bool:
            return len(read_journal(journal_path).results) == 1

        wait_until(bought, 60, "the good record's order", trader, simulator)
        wait_until(lambda: len(deadletters.values()) >= 3, 20, "three dead letters", trader)
        letters = deadletters.values()
        assert [letter["service"] for letter in letters] == ["trader"] * 3
        reasons = [letter["reason"] for letter in letters]
        assert "Infinity" in reasons[0], reasons
        assert "nested deeper" in reasons[1], reasons
        assert "outside" in reasons[2] and str(2**64) in reasons[2], reasons
        assert [int(letter["source"].rsplit("@", 1)[1]) for letter in letters] == [0, 1, 2]

        second = start_trader(tmp_path, env, "t-second")
        wait_until(lambda: not second.alive(), 60, "the second trader refuses")
        assert second.process.returncode == 2
        assert "already running" in second.log(), second.log()[-2000:]
        assert trader.alive(), "the first trader keeps its journal and partitions"
        assert trader.stop() == 0

        restarted = start_trader(tmp_path, env, "t2")
        produce(kafka_broker, fresh_topics.liquidity, [liquidity_record(2)])
        sold = lambda: len(read_journal(journal_path).results) == 2  # noqa: E731
        wait_until(sold, 60, "the next record's sell after the restart", restarted, simulator)
        time.sleep(2)  # room for any re-read record to be dead-lettered again
        assert len(deadletters.values()) == 3, "no hostile record was read again"
        assert restarted.stop() == 0
        assert "Traceback" not in trader.log() + restarted.log()
    finally:
        deadletters.close()
        simulator.stop()
