"""Elasticsearch unreachable for 60 s while the paper trader trades: nothing lost, nothing doubled.

The session's Elasticsearch node is shared with other tests, so it is not stopped: the trader
reaches it through :class:`tests.faults.proxy.OutageProxy`, and "stopping Elasticsearch" closes
the proxy (connections refused, open ones dropped), which the client cannot tell from a dead node.
Kafka, the simulator's replayed book and the node itself are real; the liquidity records are
produced straight to the test's topic so the order minutes are known (as in
tests/integration/test_trader_service.py, whose helpers this reuses).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from rtcrypto.config import Topics
from rtcrypto.trader.journal import JournalState, read_journal
from rtcrypto.trading.ledger import Ledger
from tests.faults.proxy import OutageProxy
from tests.helpers import TopicReader, free_port, start_simulator, wait_until
from tests.integration.test_trader_service import (
    liquidity_record,
    produce,
    publish_forecast,
    search_hits,
    start_trader,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

OUTAGE_S = 60.0
# Forecast side of minute m is SIDES[m]: buy on odd minutes, sell on even ones, so every record
# from minute 1 on leads to an order (a buy, then a sell of what it bought).
SIDES = ["sell" if minute % 2 == 0 else "buy" for minute in range(16)]
BEFORE_OUTAGE = [1, 2]  # one round trip indexed while Elasticsearch answers
DURING_OUTAGE = list(range(3, 11))  # four round trips while it does not
AFTER_OUTAGE = [11, 12]  # and one after it is back


def spooled_documents(spool_dir: Path) -> int:
    """Documents in the writer's spool files right now (one JSON line each)."""
    total = 0
    for path in spool_dir.glob("spool-*.jsonl"):
        with path.open("rb") as handle:
            total += sum(1 for line in handle if line.strip())
    return total


def expected_documents(state: JournalState) -> dict[str, set[str]]:
    """The ``_id`` of every order, fill and score the journal implies (see search/documents.py)."""
    opened = state.opened
    assert opened is not None
    ledger = Ledger(Decimal(opened["usd"]), Decimal(opened["btc"]))
    ledger.fee_rate = Decimal("0.0025")
    fills: set[str] = set()
    scores: set[str] = set()
    for client_order_id, status in state.results.items():
        if status.executed_quantity <= 0:
            continue
        trips_before = len(ledger.round_trips)
        ledger.record(
            status.side,
            status.average_execution_price,
            status.executed_quantity,
            status.fee_usd,
            status.ts_ms,
        )
        fills.add(f"{client_order_id}:0")  # the paper exchange fills an IOC order once
        if len(ledger.round_trips) > trips_before:
            scores.add(client_order_id)
    return {"orders": set(state.results), "fills": fills, "scores": scores}


def test_search_outage_of_60_s_spools_then_indexes_every_document_once(
    tmp_path: Path,
    trader_env: dict[str, str],
    fresh_topics: Topics,
    kafka_broker: str,
    search_node: str,
    services_report: Callable[[str], None],
) -> None:
    """Orders, fills, scores and liquidity documents made while the node is unreachable are
    spooled, re-sent when it is back and land exactly once; the trader never stops."""
    proxy = OutageProxy(search_node)
    proxy.up()
    sim_port = free_port()
    simulator = start_simulator(sim_port, tmp_path, "--loop", "--start-immediately")
    env = {
        **trader_env,
        "RTC_SIMULATOR_PORT": str(sim_port),
        "RTC_SEARCH_URL": proxy.url,
        "RTC_RISK_MAX_ORDERS_PER_MINUTE": "100",  # ten orders in a minute are the point here
    }
    publish_forecast(Path(env["RTC_FORECAST_DIR"]), SIDES)
    prefix = env["RTC_SEARCH_INDEX_PREFIX"]
    home = Path(env["RTC_HOME"])
    journal_path = home / "trader" / "journal-paper.jsonl"
    spool_dir = home / "run" / "search-spool" / "trader"
    beats = TopicReader(kafka_broker, fresh_topics.heartbeat)
    trader = None
    try:
        trader = start_trader(tmp_path, env)
        pid = trader.process.pid

        def journaled_results() -> int:
            if not journal_path.exists():
                return 0
            return len(read_journal(journal_path).results)

        def processed() -> int:
            counts = [b["processed"] for b in beats.values() if b["service"] == "trader"]
            return max(counts, default=0)

        produce(kafka_broker, fresh_topics.liquidity, [liquidity_record(m) for m in BEFORE_OUTAGE])
        wait_until(lambda: journaled_results() == 2, 60, "the first round trip", trader, simulator)
        wait_until(
            lambda: len(search_hits(search_node, f"{prefix}-scores")) == 1,
            30,
            "the first score indexed through the proxy",
            trader,
        )

        proxy.down()  # Elasticsearch "stops"
        outage_started = time.monotonic()
        outage_started_ms = time.time_ns() // 1_000_000
        produce(kafka_broker, fresh_topics.liquidity, [liquidity_record(m) for m in DURING_OUTAGE])
        wait_until(
            lambda: processed() >= len(BEFORE_OUTAGE) + len(DURING_OUTAGE),
            40,
            "the trader deciding every record of the outage",
            trader,
        )
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
        assert trader.alive() and trader.process.pid == pid, trader.log()[-3000:]
        spooled_in_outage = spooled_documents(spool_dir)
        proxy.up()  # and is back
        outage_ended_ms = time.time_ns() // 1_000_000
        back = time.monotonic()
        wait_until(
            lambda: spooled_documents(spool_dir) == 0, 90, "the spool drained", trader, simulator
        )
        drain_s = time.monotonic() - back

        produce(kafka_broker, fresh_topics.liquidity, [liquidity_record(m) for m in AFTER_OUTAGE])
        total_records = len(BEFORE_OUTAGE) + len(DURING_OUTAGE) + len(AFTER_OUTAGE)
        wait_until(lambda: processed() >= total_records, 40, "the records after the outage", trader)
        state = read_journal(journal_path)
        expected = expected_documents(state)
        expected["liquidity"] = {
            liquidity_record(m)["key"] for m in BEFORE_OUTAGE + DURING_OUTAGE + AFTER_OUTAGE
        }

        def all_indexed() -> bool:
            return all(
                len(search_hits(search_node, f"{prefix}-{kind}")) == len(ids)
                for kind, ids in expected.items()
            )

        wait_until(all_indexed, 30, "every document in Elasticsearch", trader)
        assert trader.alive() and trader.process.pid == pid, "the trader never stopped"
        assert trader.stop() == 0, trader.log()[-3000:]
    finally:
        if trader is not None and trader.alive():
            trader.kill()
        simulator.stop()
        proxy.down()
        beats.close()

    # The journal's times are on the feed clock (the simulator's replayed day), so the orders of
    # the outage are the ones decided on its records, which were all read while the node was away.
    outage_minutes = {liquidity_record(m)["window_end_ms"] for m in DURING_OUTAGE}
    sent_in_outage = [sent for sent in state.sent.values() if sent.minute_ms in outage_minutes]
    assert len(sent_in_outage) >= 4, "orders were decided and sent during the outage"
    assert state.pending() == [] and not state.abandoned
    for kind, ids in expected.items():
        hits = search_hits(search_node, f"{prefix}-{kind}")
        found = [hit["_id"] for hit in hits]
        assert len(found) == len(set(found)) == len(ids), (kind, len(found), len(ids))
        assert set(found) == ids, kind  # exactly the journal's documents: none lost, none extra
    beats_in_outage = [
        b
        for b in beats.values()
        if b["service"] == "trader" and outage_started_ms <= b["ts_ms"] <= outage_ended_ms
    ]
    assert len(beats_in_outage) >= OUTAGE_S / 2, "heartbeats kept coming during the outage"
    assert spooled_in_outage > 0, "the outage made the writer spool"
    assert not list(spool_dir.glob("spool-*.jsonl")), "the spool is empty at the end"
    assert not (spool_dir / "dead-letter.jsonl").exists(), "no document was refused for good"
    log = trader.log()
    assert "bulk failed, spooling" in log
    services_report(
        f"faults: Elasticsearch unreachable {OUTAGE_S:.0f} s under the trader: "
        f"{spooled_in_outage} documents spooled ({len(sent_in_outage)} orders sent meanwhile), "
        f"spool drained {drain_s:.1f} s after it came back; "
        f"{sum(len(ids) for ids in expected.values())} order/fill/score/liquidity documents, "
        f"each indexed once"
    )
