"""Hostile input to the frame processor (issue 10): each case once stopped or looped the ingest.

Every frame, however bad, comes back as a dead letter with its reason; ``on_frame`` never raises.
Event times are checked against the receive time (live) or the simulator's clock (a history
replay runs years behind the wall clock), through :mod:`rtcrypto.ingest.event_window`.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from rtcrypto.bounded import BoundsError
from rtcrypto.ingest.event_window import SimulatorReference
from rtcrypto.ingest.processor import FrameProcessor, Route
from rtcrypto.market.orderbook import OrderBook
from tests.unit.test_ingest_processor import T0, change, decoded, update

MINUTE = T0 - T0 % 60_000
YEAR_3000_MS = 32_503_680_000_000
HOUR_MS = 3_600_000


@pytest.fixture()
def processor() -> FrameProcessor:
    return FrameProcessor(symbol="BTCUSD", band_pct=0.5, source="test")


def snapshot(processor: FrameProcessor, ts_ms: int = MINUTE + 1000) -> None:
    frame = update(
        0,
        1,
        ts_ms,
        change("bid", "100", "1", "1", "initial"),
        change("ask", "101", "2", "2", "initial"),
    )
    assert processor.on_frame(frame, ts_ms).changes == 2


# --- decimals ---------------------------------------------------------------------------------


def test_a_remaining_of_1e999999999_is_dead_lettered_and_the_minute_still_closes(
    processor: FrameProcessor,
) -> None:
    """Was: accepted, then ``OrderBook.depth`` raised decimal.Overflow out of on_frame at the
    minute's end, and again on every snapshot after each reconnect."""
    snapshot(processor)
    bad = processor.on_frame(
        update(1, 2, MINUTE + 2000, change("bid", "99", "1e999999999", "1")), MINUTE + 2000
    )
    (letter,) = decoded(bad, Route.deadletter)
    assert "remaining is out of range" in letter["reason"] and bad.changes == 0
    closing = processor.on_frame(
        update(2, 3, MINUTE + 61_000, change("ask", "101", "3", "1")), MINUTE + 61_000
    )
    (depth,) = [r for r in decoded(closing, Route.orderbook) if r["type"] == "book_depth"]
    assert depth["bid_depth"] == 1.0 and depth["ask_depth"] == 2.0
    assert Decimal(99) not in processor.book.bids


@pytest.mark.parametrize("value", ["1e999999999", "1E-999999999", "Infinity", "NaN", "1" * 5000])
def test_the_book_refuses_levels_it_could_not_sum(value: str) -> None:
    book = OrderBook("BTCUSD")
    book.apply("ask", Decimal("101"), Decimal("1"))
    with pytest.raises(BoundsError):
        book.apply("bid", Decimal("100"), Decimal(value))
    with pytest.raises(BoundsError):
        book.apply("bid", Decimal(value), Decimal("1"))
    assert book.bids == {}
    book.depth(0.5)  # never decimal.Overflow


# --- event times ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ts_ms", [YEAR_3000_MS, 10**16, 2**63 - 1, MINUTE - 2 * HOUR_MS, -1, 2**70], ids=str
)
def test_event_times_outside_the_window_are_dead_lettered(
    processor: FrameProcessor, ts_ms: int
) -> None:
    """Was: accepted, moving Spark's watermark to the year 3000 (every later window dropped),
    or past what timestamp_millis holds (the job crashed on each restart)."""
    snapshot(processor)
    frame = update(1, 2, ts_ms, change("bid", "99", "1", "1"))
    result = processor.on_frame(frame, MINUTE + 2000)
    (letter,) = decoded(result, Route.deadletter)
    assert "timestampms" in letter["reason"] and result.changes == 0
    assert decoded(result, Route.orderbook) == []
    beat = json.dumps({"type": "heartbeat", "socket_sequence": 2, "timestampms": ts_ms})
    ticked = processor.on_frame(beat, MINUTE + 3000)
    assert decoded(ticked, Route.orderbook) == [] and ticked.dead_letters == 1
    assert processor.last_event_ms == MINUTE + 1000  # event time did not move


def test_the_window_is_a_setting_and_holds_either_side(processor: FrameProcessor) -> None:
    processor.event_time_window_ms = 10_000
    snapshot(processor)
    inside = processor.on_frame(
        update(1, 2, MINUTE + 11_000, change("bid", "99", "1", "1")), MINUTE + 2000
    )
    assert inside.changes == 1
    outside = processor.on_frame(
        update(2, 3, MINUTE + 13_000, change("bid", "98", "1", "1")), MINUTE + 2000
    )
    (letter,) = decoded(outside, Route.deadletter)
    assert "window 10 s" in letter["reason"]


class FakeSimulator:
    """``/_sim/status`` bodies on demand; counts the reads."""

    def __init__(self, simulated_ms: int, speed: float = 0.0) -> None:
        self.simulated_ms = simulated_ms
        self.speed = speed
        self.reads = 0
        self.down = False

    def __call__(self) -> dict[str, Any]:
        self.reads += 1
        if self.down:
            raise OSError("connection refused")
        return {"simulated_time_ms": self.simulated_ms, "speed": self.speed, "started": True}


class Monotonic:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def history_processor(simulator: FakeSimulator, clock: Monotonic) -> FrameProcessor:
    reference = SimulatorReference(
        simulator, resync_s=5.0, refresh_min_s=1.0, monotonic=clock, background=False
    )
    return FrameProcessor(symbol="BTCUSD", band_pct=0.5, source="test", reference=reference)


WALL_2026_MS = 1_796_000_000_000  # the receive time of a history replay: the wall clock


def test_a_history_replay_is_checked_against_the_simulators_clock_not_the_wall_clock() -> None:
    """``make up`` replays 2024 on the simulator's clock while the wall clock says 2026: the
    receive time cannot be the reference, or the whole replay would be dead-lettered."""
    simulator, clock = FakeSimulator(MINUTE), Monotonic()
    processor = history_processor(simulator, clock)
    snapshot_frame = update(0, 1, MINUTE + 1000, change("bid", "100", "1", "1", "initial"))
    assert processor.on_frame(snapshot_frame, WALL_2026_MS).changes == 1
    future = processor.on_frame(
        update(1, 2, YEAR_3000_MS, change("bid", "99", "1", "1")), WALL_2026_MS
    )
    assert (
        future.dead_letters == 1 and "timestampms" in decoded(future, Route.deadletter)[0]["reason"]
    )
    wall = processor.on_frame(
        update(2, 3, WALL_2026_MS, change("bid", "99", "1", "1")), WALL_2026_MS
    )
    assert wall.dead_letters == 1  # the wall clock is 2 years ahead of this replay


def test_a_jump_of_the_simulators_clock_is_read_again_before_dead_lettering() -> None:
    """A speed-0 replay or a halt moves the simulator's clock further than the extrapolation
    knows: a miss re-reads the clock once (at most every refresh_min_s), then judges."""
    simulator, clock = FakeSimulator(MINUTE), Monotonic()
    processor = history_processor(simulator, clock)
    snapshot(processor)
    simulator.simulated_ms = MINUTE + 3 * HOUR_MS  # a 3-hour halt, jumped over
    clock.now_s += 1.5
    after_halt = update(1, 2, MINUTE + 3 * HOUR_MS + 10, change("bid", "99", "1", "1"))
    assert processor.on_frame(after_halt, WALL_2026_MS).changes == 1
    reads = simulator.reads
    bogus = processor.on_frame(
        update(2, 3, YEAR_3000_MS, change("bid", "98", "1", "1")), WALL_2026_MS
    )
    assert bogus.dead_letters == 1 and simulator.reads == reads  # no re-read within 1 s
    clock.now_s += 5.0  # a regular re-read, then at once a second jump: still re-read on a miss
    simulator.simulated_ms = MINUTE + 4 * HOUR_MS
    regular = update(3, 4, MINUTE + 3 * HOUR_MS + 20, change("bid", "97", "1", "1"))
    assert processor.on_frame(regular, WALL_2026_MS).changes == 1
    simulator.simulated_ms = MINUTE + 6 * HOUR_MS
    clock.now_s += 0.01
    jumped = update(4, 5, MINUTE + 6 * HOUR_MS, change("bid", "96", "1", "1"))
    assert processor.on_frame(jumped, WALL_2026_MS).changes == 1


def test_the_simulators_clock_runs_on_at_the_replays_speed_and_bounds_only_the_future() -> None:
    """Between two reads the reference runs on at the replay's speed; an event behind it is the
    ingest lagging the simulator's queue (hours of feed at speed 0): late, not refused."""
    simulator, clock = FakeSimulator(MINUTE + 2 * HOUR_MS, speed=60.0), Monotonic()
    processor = history_processor(simulator, clock)
    lagging = update(0, 1, MINUTE, change("bid", "100", "1", "1", "initial"))  # 2 h behind
    assert processor.on_frame(lagging, WALL_2026_MS).changes == 1
    clock.now_s += 4.0  # 4 wall seconds at 60x: 240 s of feed extrapolated, not yet re-read
    simulator.down = True
    edge = MINUTE + 2 * HOUR_MS + 240_000 + HOUR_MS
    assert (
        processor.on_frame(update(1, 2, edge, change("bid", "99", "1", "1")), WALL_2026_MS).changes
        == 1
    )
    past_edge = update(2, 3, edge + 1000, change("bid", "98", "1", "1"))
    assert processor.on_frame(past_edge, WALL_2026_MS).dead_letters == 1


def test_an_unreadable_simulator_clock_skips_the_check_instead_of_losing_the_feed() -> None:
    simulator, clock = FakeSimulator(MINUTE), Monotonic()
    simulator.down = True
    processor = history_processor(simulator, clock)
    assert (
        processor.on_frame(
            update(0, 1, MINUTE, change("bid", "1", "1", "1", "initial")), WALL_2026_MS
        ).changes
        == 1
    )


# --- nesting, sizes, integers, anything else ---------------------------------------------------


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_a_frame_nested_deeply_is_dead_lettered_not_a_recursion_error(
    processor: FrameProcessor, depth: int
) -> None:
    """Was: RecursionError out of on_frame, which the service took for a broken connection."""
    nested = "[" * depth + "]" * depth
    for raw in (nested, '{"type":"update","eventId":1,"events":[' + nested + "]}"):
        result = processor.on_frame(raw, T0)
        (letter,) = decoded(result, Route.deadletter)
        assert "nested deeper" in letter["reason"]


def test_an_oversized_frame_is_dead_lettered(processor: FrameProcessor) -> None:
    processor.max_frame_bytes = 1000
    result = processor.on_frame(
        update(0, 1, T0, *[change("bid", str(p), "1", "1", "initial") for p in range(1, 100)]), T0
    )
    (letter,) = decoded(result, Route.deadletter)
    assert "over the 1000-byte limit" in letter["reason"] and result.changes == 0


@pytest.mark.parametrize("field", ["eventId", "socket_sequence", "tid"])
def test_integers_beyond_64_bits_are_dead_lettered(processor: FrameProcessor, field: str) -> None:
    """Was: orjson raised TypeError (integer exceeds 64-bit range) out of on_frame."""
    trade = {"type": "trade", "tid": 5, "price": "100", "amount": "1", "makerSide": "bid"}
    message = {
        "type": "update",
        "eventId": 9,
        "socket_sequence": 0,
        "timestampms": T0,
        "events": [trade],
    }
    if field == "tid":
        trade["tid"] = 2**64
    else:
        message[field] = 2**64
    result = processor.on_frame(json.dumps(message), T0)
    (letter,) = decoded(result, Route.deadletter)
    assert field in letter["reason"] and result.trades == 0


def test_any_exception_of_a_frame_is_dead_lettered_and_the_next_frame_processed(
    processor: FrameProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(OrderBook, "apply", broken)  # a bug anywhere below on_frame
    result = processor.on_frame(update(0, 1, T0, change("bid", "1", "1", "1", "initial")), T0)
    (letter,) = decoded(result, Route.deadletter)
    assert letter["reason"] == "frame failed (RuntimeError: unexpected)"
    monkeypatch.undo()
    assert (
        processor.on_frame(update(1, 2, T0, change("bid", "1", "1", "1", "initial")), T0).changes
        == 1
    )


def test_regular_re_reads_run_in_the_background_and_never_block_the_reader() -> None:
    """The simulator, busy pushing frames, may answer slowly: only the first reading waits."""
    import threading
    import time

    answered = threading.Event()
    simulator = FakeSimulator(MINUTE)

    def slow_status() -> dict[str, Any]:
        if simulator.reads >= 1:
            time.sleep(0.5)
        body = simulator()
        answered.set()
        return body

    clock = Monotonic()
    reference = SimulatorReference(slow_status, resync_s=5.0, monotonic=clock)
    assert reference(WALL_2026_MS, False) == MINUTE  # the first reading, at once
    simulator.simulated_ms = MINUTE + HOUR_MS
    answered.clear()
    clock.now_s += 6.0
    started = time.monotonic()
    assert reference(WALL_2026_MS, False) == MINUTE  # the old reading: no wait
    assert time.monotonic() - started < 0.3
    assert answered.wait(5)
    time.sleep(0.05)
    assert reference(WALL_2026_MS, False) == MINUTE + HOUR_MS
