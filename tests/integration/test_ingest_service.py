"""The ingest service against the real simulator and the real Kafka broker.

Simulator and ingest run as child processes (``python -m streaming.simulator`` and
``python -m streaming.ingest``), exactly as `rtc up` runs them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers import (
    TopicReader,
    free_port,
    gemini_btc_window_sums,
    sim_post,
    sim_status,
    start_ingest,
    start_simulator,
    wait_until,
)

pytestmark = pytest.mark.integration


def _heartbeats(reader: TopicReader) -> list[dict]:
    return [value for value in reader.values() if value.get("service") == "ingest"]


def test_capture_lands_on_kafka_once_per_change_with_idempotent_keys(
    kafka_broker: str, fresh_topics, tmp_path: Path
) -> None:
    """Every BTCUSD change of the real Gemini capture becomes exactly one record, as mapped."""
    expected = gemini_btc_window_sums()
    expected_changes = sum(window["count"] for window in expected.values())
    port = free_port()
    simulator = start_simulator(port, tmp_path, "--speed", "20")
    ingest = start_ingest(port, tmp_path)
    book = TopicReader(kafka_broker, fresh_topics.orderbook)
    trades = TopicReader(kafka_broker, fresh_topics.trades)
    beats = TopicReader(kafka_broker, fresh_topics.heartbeat)
    try:

        def all_changes_arrived() -> bool:
            return sum(v["type"] == "change" for v in book.values()) >= expected_changes

        wait_until(all_changes_arrived, 90, "all capture changes on Kafka", simulator, ingest)
        wait_until(lambda: len(trades.values()) >= 18, 30, "18 trades", simulator, ingest)

        def event_time_passed_last_window() -> bool:
            ticks = [v["ts_event_ms"] for v in book.values() if v["type"] == "tick"]
            return bool(ticks) and max(ticks) >= max(expected) + 60_000

        # At speed 20 the simulated clock runs on after the capture: 60 s of event time in ~3 s.
        wait_until(event_time_passed_last_window, 30, "ticks past the last window", ingest)
    finally:
        exit_code = ingest.stop()
        simulator.stop()
        book.close()
        trades.close()
        beats.close()
    assert exit_code == 0, ingest.log()[-2000:]
    # the event-time lag is on the feed clock: the 2021 capture's own time, not years behind
    lags = [b["lag_ms"] for b in beats.values() if b["service"] == "ingest" and b["lag_ms"]]
    assert lags and max(lags) < 600_000, lags
    assert "ingest stopped" in ingest.log()  # SIGTERM flushed and said so

    records = book.poll()
    changes = [(key, value) for key, value in records if value["type"] == "change"]
    assert len(changes) == expected_changes
    assert len({key for key, _ in changes}) == expected_changes  # one key per change
    for key, value in changes:
        assert key == f"BTCUSD:{value['event_id']}:{value['event_index']}"
        assert value["schema_version"] == 1 and value["symbol"] == "BTCUSD"
    first = changes[0][1]
    assert first["reason"] == "initial" and first["side"] == "bid" and first["price"] == "60696.02"

    # Per-minute sums recomputed independently from the file equal what reached Kafka.
    for window_start, sums in expected.items():
        in_window = [
            v for _, v in changes if window_start <= v["ts_event_ms"] < window_start + 60_000
        ]
        assert len(in_window) == sums["count"]
        for side in ("bid", "ask"):
            got = sum(
                (
                    Decimal(v["price"]) * Decimal(v["remaining"])
                    for v in in_window
                    if v["side"] == side
                ),
                Decimal(0),
            )
            assert got == sums[side], (window_start, side)

    # Ticks carry event time forward past the capture so the last window can close; a depth
    # record closes each minute that had changes.
    ticks = [v for _, v in records if v["type"] == "tick"]
    assert ticks and max(t["ts_event_ms"] for t in ticks) >= max(expected) + 60_000
    depth_windows = {v["window_start_ms"] for _, v in records if v["type"] == "book_depth"}
    assert set(expected) <= depth_windows
    assert all(v["maker_side"] in ("bid", "ask") for v in trades.values())


@pytest.mark.faults
def test_drop_and_sequence_gap_reconnect_and_resynchronise(
    kafka_broker: str, fresh_topics, tmp_path: Path, services_report: Callable[[str], None]
) -> None:
    """A dropped socket and a skipped sequence number: reconnect within 5 s, gap reported,
    a fresh snapshot (reason initial) rebuilds the book.

    Measured on the ingest's side: fault injected -> the fresh snapshot received by the ingest
    (its ``ts_receive_ms``; same machine, same clock). Reading Kafka back can take longer than
    that (the reader drains while records keep coming), so the waits allow 15 s to *see* it."""
    port = free_port()
    simulator = start_simulator(port, tmp_path, "--speed", "1", "--loop", "--fault-endpoints")
    ingest = start_ingest(port, tmp_path)
    book = TopicReader(kafka_broker, fresh_topics.orderbook)
    beats = TopicReader(kafka_broker, fresh_topics.heartbeat)
    try:
        wait_until(
            lambda: sim_status(port)["clients"]["v1"] >= 1,
            30,
            "ingest connected",
            simulator,
            ingest,
        )
        wait_until(
            lambda: any(v["type"] == "change" for v in book.values()), 30, "first changes", ingest
        )

        def snapshots_received_ms() -> list[int]:
            """When the ingest received each snapshot (reason initial), oldest first."""
            received: dict[int, int] = {}
            for value in book.values():
                if value.get("reason") == "initial":
                    event_id, at_ms = value["event_id"], value["ts_receive_ms"]
                    received[event_id] = min(received.get(event_id, at_ms), at_ms)
            return sorted(received.values())

        assert len(snapshots_received_ms()) == 1
        dropped_ms = time.time_ns() // 1_000_000
        sim_post(port, "/_sim/drop")
        wait_until(
            lambda: len(snapshots_received_ms()) >= 2,
            15,
            "a fresh snapshot after a dropped connection",
            ingest,
        )
        reconnect_s = (snapshots_received_ms()[1] - dropped_ms) / 1000

        skipped_ms = time.time_ns() // 1_000_000
        sim_post(port, "/_sim/skip-sequence")
        wait_until(
            lambda: len(snapshots_received_ms()) >= 3,
            15,
            "a fresh snapshot after a sequence gap",
            ingest,
        )
        resync_s = (snapshots_received_ms()[2] - skipped_ms) / 1000
        wait_until(
            lambda: any(b["gaps"] >= 1 and b["reconnects"] >= 2 for b in _heartbeats(beats)),
            10,
            "heartbeat reporting the gap and the reconnects",
            ingest,
        )
        assert ingest.alive()
    finally:
        ingest.stop()
        simulator.stop()
        book.close()
        beats.close()
    log = ingest.log()
    assert "socket_sequence gap" in log and "reconnecting" in log
    assert 0 < reconnect_s < 5, f"reconnected {reconnect_s:.2f} s after the drop"
    assert 0 < resync_s < 5, f"resynchronised {resync_s:.2f} s after the sequence gap"
    services_report(
        f"faults: websocket dropped -> reconnected, fresh snapshot received {reconnect_s:.2f} s "
        f"later; socket_sequence skipped -> resubscribed, snapshot received {resync_s:.2f} s "
        f"later (limit 5 s each)"
    )


def test_malformed_frames_are_dead_lettered_and_the_service_stays_up(
    kafka_broker: str, fresh_topics, tmp_path: Path
) -> None:
    """1,000 malformed frames: each one lands in deadletter.v1 with its reason; ingest keeps going."""
    port = free_port()
    simulator = start_simulator(port, tmp_path, "--speed", "1", "--loop", "--fault-endpoints")
    ingest = start_ingest(port, tmp_path)
    letters = TopicReader(kafka_broker, fresh_topics.deadletter)
    book = TopicReader(kafka_broker, fresh_topics.orderbook)
    kinds = [
        "{not json",
        "[1,2,3]",
        '{"type":"update","eventId":"x","events":[]}',
        '{"type":"surprise"}',
    ]
    frames = [f"{kinds[i % len(kinds)]}" if i % 7 else f"garbage #{i}" for i in range(1000)]
    try:
        wait_until(
            lambda: sim_status(port)["clients"]["v1"] >= 1,
            30,
            "ingest connected",
            simulator,
            ingest,
        )
        sim_post(port, "/_sim/inject", {"frames": frames})
        wait_until(lambda: len(letters.values()) >= 1000, 60, "1,000 dead letters", ingest)
        changes_before = sum(v["type"] == "change" for v in book.values())
        wait_until(
            lambda: sum(v["type"] == "change" for v in book.values()) > changes_before,
            30,
            "book changes still flowing after the garbage",
            ingest,
        )
        assert ingest.alive()
    finally:
        ingest.stop()
        simulator.stop()
        book.close()
        letters.close()
    dead = letters.values()
    assert len(dead) == 1000
    raws = sorted(letter["raw"] for letter in dead)
    assert raws == sorted(frames)  # every frame kept whole, none lost, none doubled
    assert all(letter["reason"] and letter["service"] == "ingest" for letter in dead)
    assert "invalid JSON" in json.dumps([letter["reason"] for letter in dead])
