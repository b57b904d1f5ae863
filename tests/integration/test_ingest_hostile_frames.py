"""Hostile frames into the real ingest during ``make up``'s default feed: a history replay at 60x
on the simulator's historical clock (2021 event times while the wall clock says 2026).

Through the simulator's ``/_sim/inject`` (real websocket, real ingest as a child process, real
Kafka): a far-future update and heartbeat, ``timestampms`` 1e16, a remaining of
``1e999999999``, a 64-bit-overflowing ``eventId`` and a frame nested 5,000 deep. Each is
dead-lettered with its reason; not one replayed frame is (the event-time window holds against
the simulator's clock, not the receive time); no reconnect; book changes keep flowing
after them (a loaded machine replays slower than 60x: the waits allow for it).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rtcrypto import bounded
from rtcrypto.config import Topics
from rtcrypto.history import import_file
from tests.helpers import (
    Child,
    TopicReader,
    free_port,
    shared_minute_file,
    sim_post,
    sim_status,
    sim_up,
    start_ingest,
    wait_until,
)

pytestmark = pytest.mark.integration

BINANCE_2021 = "binance_BTCUSDT_1m_2021-03-26_2021-04-30.csv.gz"
YEAR_3000_MS = 32_503_680_000_000


def hostile_frames(now_ms: int) -> dict[str, str]:
    """Frame text -> the part of the reason its dead letter must carry (no socket_sequence:
    nothing a gap check could act on)."""
    change = {"type": "change", "side": "bid", "price": "1", "remaining": "1", "delta": "1"}

    def update(event_id: Any, ts_ms: int, **event: str) -> str:
        events = [{**change, "reason": "place", **event}]
        return json.dumps(
            {"type": "update", "eventId": event_id, "timestampms": ts_ms, "events": events}
        )

    return {
        update(900_000_001, YEAR_3000_MS): "timestampms 32503680000000",
        update(900_000_002, 10**16): "timestampms 10000000000000000",
        json.dumps({"type": "heartbeat", "timestampms": YEAR_3000_MS}): "timestampms",
        update(900_000_003, now_ms, remaining="1e999999999"): "remaining is out of range",
        update(2**64, now_ms): "eventId",
        "[" * 5000 + "]" * 5000: "nested deeper than",
    }


def test_hostile_frames_are_dead_lettered_during_a_60x_history_replay(
    kafka_broker: str, fresh_topics: Topics, tmp_path: Path
) -> None:
    history = tmp_path / "history"
    import_file(shared_minute_file(BINANCE_2021), history_dir=history)
    port = free_port()
    command = [sys.executable, "-m", "streaming.simulator", "--history", "binance"]
    command += ["--start", "2021-04-19T10:00", "--end", "2021-04-19T14:00", "--speed", "60"]
    command += ["--port", str(port), "--history-dir", str(history), "--seed", "2"]
    command += ["--fault-endpoints"]  # /_sim/inject is off by default
    simulator = Child("simulator", command, tmp_path, {})
    wait_until(lambda: sim_up(port), 60, "simulator up", simulator)
    ingest = start_ingest(port, tmp_path)
    letters = TopicReader(kafka_broker, fresh_topics.deadletter)
    beats = TopicReader(kafka_broker, fresh_topics.heartbeat)  # small: the book topic is not read
    try:
        wait_until(lambda: _processed(beats) >= 1000, 300, "replayed changes", ingest)
        frames = hostile_frames(sim_status(port)["simulated_time_ms"])
        sim_post(port, "/_sim/inject", {"frames": list(frames)})
        processed_at_injection = _processed(beats)
        injected_at = time.monotonic()
        wait_until(lambda: len(letters.values()) >= len(frames), 120, "dead letters", ingest)
        wait_until(
            lambda: _processed(beats) > processed_at_injection + 1000, 300, "more changes", ingest
        )
        assert ingest.alive(), ingest.log()[-3000:]
        print(f"\nhostile frames dead-lettered within {time.monotonic() - injected_at:.1f} s")
    finally:
        ingest.stop()
        simulator.stop()
        beats.close()
        letters.close()
    dead = letters.values()
    assert len(dead) == len(frames)  # these, and not one replayed frame
    for frame, reason in frames.items():
        # a bad event is dead-lettered alone (the rest of its frame is kept), a bad frame whole
        (letter,) = [d for d in dead if d["raw"] == frame or _is_event_of(d["raw"], frame)]
        assert reason in letter["reason"], letter["reason"]
    ingest_beats = [b for b in beats.values() if b["service"] == "ingest"]
    assert ingest_beats[-1]["reconnects"] == 0 and ingest_beats[-1]["dead_letters"] == len(frames)
    replay_start = 1_618_826_400_000  # 2021-04-19T10:00Z: event time on the bars' clock
    assert replay_start <= ingest_beats[-1]["last_event_ms"] < replay_start + 240 * 60_000


def _processed(beats: TopicReader) -> int:
    """Changes and trades the ingest processed, by its newest heartbeat."""
    ingest = [b["processed"] for b in beats.values() if b.get("service") == "ingest"]
    return max(ingest, default=0)


def _is_event_of(raw: str, frame: str) -> bool:
    event = _event_of(raw)
    return bool(event) and event in frame


def _event_of(raw: str) -> str:
    """The event of a per-event dead letter as it sits in its frame ('' for a whole frame)."""
    try:
        letter = bounded.loads(raw)  # the deep frame's raw nests 5,000 deep
    except ValueError:
        return ""
    if not isinstance(letter, dict) or "event" not in letter:
        return ""
    return json.dumps(letter["event"])
