"""10,000 malformed frames pushed into the ingest's live websocket: all dead-lettered, no crash.

Through the simulator's ``/_sim/inject`` (real websocket, real ingest, real Kafka), in chunks of
1,000 while the capture keeps replaying. Frames whose text holds lone surrogates (``\\udcff``)
cannot be UTF-8 encoded: the simulator sends their raw code units as a binary frame, so real
invalid UTF-8 reaches the ingest (``frames_hex`` of ``/_sim/inject`` sends arbitrary bytes too).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from rtcrypto.config import Topics
from tests.helpers import (
    TopicReader,
    free_port,
    sim_post,
    sim_status,
    start_ingest,
    start_simulator,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

FRAMES = 10_000
CHUNK = 1_000
HUGE_DIGITS = "9" * 400


def malformed_frame(number: int) -> str:
    """Frame ``number`` (unique text): each is refused as a whole frame, before any book change,
    and carries no ``socket_sequence`` a gap check could act on."""
    kinds = [
        f"{{not json #{number}",  # bad JSON
        f'{{"type": "update", "eventId": "{number}", "events": []}}',  # wrong type: eventId
        f'{{"type": "update", "eventId": {number}, "events": {{"n": 1}}}}',  # events not a list
        f'{{"type": "update", "eventId": {number}, "socket_sequence": "7"}}',  # sequence as text
        f'{{"type": "update", "events": [], "n": {number}}}',  # missing eventId
        f'{{"eventId": {number}, "events": []}}',  # missing type
        f'{{"type": "update", "eventId": {HUGE_DIGITS}{number}, "events": null}}',  # huge integer
        f'{{"type": "update", "eventId": 1e999, "events": [], "n": {number}}}',  # overflows to inf
        f'{{"type": "\\udcff\\ud800-{number}"}}',  # invalid UTF-8 on the wire (module docstring)
        f"[{number}, 2, 3]",  # JSON, but not an object
        f"\u00ff\u00fe garbage {number}",  # latin-1 noise
        f'{{"type": "update", "eventId": {number}, "x": "\udcff"}}',  # a real lone surrogate:
        # sent as a binary frame of invalid UTF-8 bytes (ED B3 BF)
    ]
    return kinds[number % len(kinds)]


def test_ten_thousand_malformed_frames_are_dead_lettered_and_the_ingest_keeps_going(
    kafka_broker: str,
    fresh_topics: Topics,
    tmp_path: Path,
    services_report: Callable[[str], None],
) -> None:
    """Every frame lands in deadletter.v1 with a reason and its raw text, the heartbeat counts
    all 10,000, and real book changes still flow afterwards."""
    frames = [malformed_frame(number) for number in range(FRAMES)]
    port = free_port()
    simulator = start_simulator(port, tmp_path, "--speed", "1", "--loop", "--fault-endpoints")
    ingest = start_ingest(port, tmp_path)
    letters = TopicReader(kafka_broker, fresh_topics.deadletter)
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
        started = time.monotonic()
        started_ms = time.time_ns() // 1_000_000
        for first in range(0, FRAMES, CHUNK):
            answer = sim_post(port, "/_sim/inject", {"frames": frames[first : first + CHUNK]})
            assert answer == {"connections": 1, "frames": CHUNK}, answer
        wait_until(lambda: len(letters.values()) >= FRAMES, 120, "10,000 dead letters", ingest)
        seconds = time.monotonic() - started

        changes_after_flood = sum(v["type"] == "change" for v in book.values())
        wait_until(
            lambda: sum(v["type"] == "change" for v in book.values()) > changes_after_flood,
            30,
            "real book changes after the flood",
            ingest,
        )

        def beat_counts_all() -> bool:
            return any(
                b["service"] == "ingest" and b["dead_letters"] == FRAMES for b in beats.values()
            )

        wait_until(beat_counts_all, 15, "a heartbeat counting 10,000 dead letters", ingest)
        assert ingest.alive(), ingest.log()[-3000:]
        assert sim_status(port)["clients"]["v1"] == 1, "no reconnect: the flood did not break it"
    finally:
        exit_code = ingest.stop()
        simulator.stop()
        letters.close()
        book.close()
        beats.close()

    assert exit_code == 0, ingest.log()[-3000:]
    dead = letters.values()
    assert len(dead) == FRAMES, "none lost, none doubled"
    # a frame that reached the ingest as invalid UTF-8 is kept as its bytes decoded with U+FFFD
    on_the_wire = [
        frame.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for frame in frames
    ]
    assert Counter(letter["raw"] for letter in dead) == Counter(on_the_wire), "each kept whole"
    assert sum("\ufffd" in letter["raw"] for letter in dead) >= FRAMES // 12, "bad UTF-8 arrived"
    assert all(letter["service"] == "ingest" and letter["reason"] for letter in dead)
    reasons = Counter(letter["reason"].split(":")[0] for letter in dead)
    assert {"invalid JSON", "update without an integer eventId"} <= set(reasons), reasons
    final_beats = [b for b in beats.values() if b["service"] == "ingest"]
    assert final_beats[-1]["dead_letters"] == FRAMES and final_beats[-1]["reconnects"] == 0
    # The ingest's own pace: first frame injected -> the last one dead-lettered (its receive time).
    ingest_s = (max(letter["ts_receive_ms"] for letter in dead) - started_ms) / 1000
    services_report(
        f"faults: {FRAMES:,} malformed frames injected in chunks of {CHUNK:,}: all dead-lettered "
        f"with a reason, {FRAMES / ingest_s:,.0f} frames/s by the ingest ({ingest_s:.2f} s; "
        f"{seconds:.1f} s until all were read back from deadletter.v1); heartbeat "
        f"dead_letters={FRAMES:,}, no reconnect, book changes still flowing"
    )
