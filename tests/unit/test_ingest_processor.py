"""The pure v1 frame processor: records, sequence gaps, ticks, depth, dead letters."""

from __future__ import annotations

import json

import pytest

from rtcrypto.ingest.processor import FrameProcessor, Route

T0 = 1_618_677_942_000  # 2021-04-17 16:45:42 UTC, the Gemini capture's start


def update(seq: int, event_id: int, ts_ms: int | None, *events: dict) -> str:
    message: dict = {
        "type": "update",
        "eventId": event_id,
        "socket_sequence": seq,
        "events": list(events),
    }
    if ts_ms is not None:
        message["timestampms"] = ts_ms
        message["timestamp"] = ts_ms // 1000
    return json.dumps(message)


def change(side: str, price: str, remaining: str, delta: str, reason: str = "place") -> dict:
    return {
        "type": "change",
        "side": side,
        "price": price,
        "remaining": remaining,
        "delta": delta,
        "reason": reason,
    }


def decoded(result, route: Route) -> list[dict]:
    return [json.loads(r.value) for r in result.records if r.route is route]


@pytest.fixture()
def processor() -> FrameProcessor:
    return FrameProcessor(symbol="BTCUSD", band_pct=0.5, source="test")


def test_snapshot_becomes_change_records_with_idempotent_keys(processor: FrameProcessor) -> None:
    frame = update(
        0,
        100,
        T0,
        change("bid", "60696.02", "0.02", "0.02", "initial"),
        change("ask", "60720.31", "1.5", "1.5", "initial"),
    )
    result = processor.on_frame(frame, T0 + 5)
    records = decoded(result, Route.orderbook)
    assert [r["type"] for r in records] == ["change", "change"]
    assert records[0] == {
        "symbol": "BTCUSD",
        "side": "bid",
        "price": "60696.02",
        "remaining": "0.02",
        "delta": "0.02",
        "reason": "initial",
        "event_id": 100,
        "event_index": 0,
        "socket_sequence": 0,
        "ts_event_ms": T0,
        "ts_receive_ms": T0 + 5,
        "type": "change",
        "schema_version": 1,
        "key": "BTCUSD:100:0",
    }
    assert [r.key for r in result.records] == ["BTCUSD:100:0", "BTCUSD:100:1"]
    # Same frame again (a replay) gives the same keys: downstream deduplicates on them.
    again = FrameProcessor(symbol="BTCUSD", band_pct=0.5).on_frame(frame, T0 + 999)
    assert [r.key for r in again.records] == ["BTCUSD:100:0", "BTCUSD:100:1"]
    assert processor.book.best_bid() is not None and str(processor.book.best_bid()) == "60696.02"


def test_initial_snapshot_without_timestamp_uses_receive_time(processor: FrameProcessor) -> None:
    result = processor.on_frame(
        update(0, 1, None, change("bid", "10", "1", "1", "initial")), T0 + 7
    )
    assert decoded(result, Route.orderbook)[0]["ts_event_ms"] == T0 + 7


def test_trade_goes_to_trades_topic(processor: FrameProcessor) -> None:
    frame = update(
        0,
        5,
        T0,
        {"type": "trade", "tid": 42, "price": "60700.00", "amount": "0.5", "makerSide": "ask"},
    )
    result = processor.on_frame(frame, T0)
    (trade,) = decoded(result, Route.trades)
    assert trade["trade_id"] == 42 and trade["maker_side"] == "ask" and trade["price"] == "60700.00"
    assert result.trades == 1 and result.changes == 0


def test_sequence_gap_is_reported_and_frame_still_processed(processor: FrameProcessor) -> None:
    assert (
        processor.on_frame(
            update(0, 1, T0, change("bid", "10", "1", "1", "initial")), T0
        ).sequence_gap
        is None
    )
    assert (
        processor.on_frame(update(1, 2, T0 + 1, change("bid", "11", "1", "1")), T0).sequence_gap
        is None
    )
    gap = processor.on_frame(update(3, 3, T0 + 2, change("bid", "12", "1", "1")), T0)
    assert gap.sequence_gap == (2, 3)
    assert gap.changes == 1
    processor.reset_connection()
    fresh = processor.on_frame(update(0, 9, T0 + 3, change("bid", "13", "2", "2", "initial")), T0)
    assert fresh.sequence_gap is None
    # The snapshot replaced the book: only the snapshot's level is left.
    assert list(processor.book.bids) == [processor.book.best_bid()]


def test_heartbeat_with_exchange_time_emits_a_tick(processor: FrameProcessor) -> None:
    processor.on_frame(update(0, 1, T0, change("bid", "10", "1", "1", "initial")), T0)
    result = processor.on_frame(
        json.dumps({"type": "heartbeat", "socket_sequence": 1, "timestampms": T0 + 5000}), T0
    )
    (tick,) = decoded(result, Route.orderbook)
    assert (
        tick["type"] == "tick"
        and tick["ts_event_ms"] == T0 + 5000
        and tick["source"] == "heartbeat"
    )
    # An older heartbeat never moves event time backwards.
    stale = processor.on_frame(
        json.dumps({"type": "heartbeat", "socket_sequence": 2, "timestampms": T0 + 10}), T0
    )
    assert stale.records == []


def test_clock_tick_estimates_exchange_time_from_receive_time(processor: FrameProcessor) -> None:
    assert processor.clock_tick(T0).records == []  # nothing known yet
    processor.on_frame(update(0, 1, T0, change("bid", "10", "1", "1", "initial")), T0 + 100)
    (tick,) = decoded(processor.clock_tick(T0 + 2100), Route.orderbook)
    assert tick["ts_event_ms"] == T0 + 2000 and tick["source"] == "clock"


def test_depth_at_window_end_is_emitted_when_event_time_leaves_the_window(
    processor: FrameProcessor,
) -> None:
    minute = T0 - T0 % 60_000
    processor.on_frame(
        update(
            0,
            1,
            minute + 1000,
            change("bid", "100.00", "2", "2", "initial"),
            change("bid", "99.70", "1", "1", "initial"),
            change("bid", "90.00", "50", "50", "initial"),  # outside the 0.5% band
            change("ask", "100.20", "1", "1", "initial"),
        ),
        minute + 1000,
    )
    processor.on_frame(
        update(1, 2, minute + 59_000, change("ask", "100.30", "3", "3")), minute + 59_000
    )
    result = processor.on_frame(
        update(2, 3, minute + 61_000, change("ask", "100.30", "0", "-3", "cancel")), minute
    )
    depth_records = [r for r in decoded(result, Route.orderbook) if r["type"] == "book_depth"]
    assert len(depth_records) == 1
    depth = depth_records[0]
    # State at the end of the first minute, before the cancel of the next minute was applied.
    mid = (100.00 + 100.20) / 2
    assert depth["window_start_ms"] == minute and depth["ts_event_ms"] == minute + 59_999
    assert depth["mid_price"] == pytest.approx(mid)
    assert depth["bid_depth"] == pytest.approx(3.0)  # 100.00 and 99.70 are within 0.5% of 100.10
    assert depth["ask_depth"] == pytest.approx(4.0)
    assert depth["depth_imbalance"] == pytest.approx((3 - 4) / 7)
    assert result.records[0].key == f"BTCUSD:depth:{minute}"


@pytest.mark.parametrize(
    ("raw", "reason_part"),
    [
        ("not json at all", "invalid JSON"),
        ("[1,2,3]", "not a JSON object"),
        ('{"type":"mystery","socket_sequence":0}', "unsupported message type"),
        ('{"type":"update","socket_sequence":0,"events":[]}', "eventId"),
        ('{"type":"update","eventId":1,"socket_sequence":0}', "events list"),
        ('{"type":"update","eventId":1,"socket_sequence":"x","events":[]}', "socket_sequence"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ],
)
def test_malformed_frames_become_dead_letters(
    processor: FrameProcessor, raw, reason_part: str
) -> None:
    result = processor.on_frame(raw, T0)
    (letter,) = decoded(result, Route.deadletter)
    assert reason_part in letter["reason"]
    assert letter["service"] == "ingest" and letter["raw"]
    assert result.dead_letters == 1 and result.changes == 0


@pytest.mark.parametrize(
    ("event", "reason_part"),
    [
        (change("middle", "1", "1", "1"), "side"),
        (change("bid", "abc", "1", "1"), "price is not a number"),
        (change("bid", "-5", "1", "1"), "price must be > 0"),
        (change("bid", "NaN", "1", "1"), "not finite"),
        (change("bid", "5", "-1", "1"), "remaining must be >= 0"),
        (
            {
                "type": "change",
                "side": "bid",
                "price": 5,
                "remaining": "1",
                "delta": "1",
                "reason": "place",
            },
            "decimal string",
        ),
        ({"type": "auction_open"}, "unsupported event type"),
        ("just a string", "not an object"),
    ],
)
def test_one_bad_event_is_dead_lettered_and_the_rest_kept(
    processor: FrameProcessor, event, reason_part: str
) -> None:
    frame = update(
        0,
        7,
        T0,
        change("bid", "10", "1", "1", "initial"),
        event,
        change("ask", "11", "1", "1", "initial"),
    )
    result = processor.on_frame(frame, T0)
    assert result.changes == 2
    (letter,) = decoded(result, Route.deadletter)
    assert reason_part in letter["reason"]
    assert json.loads(letter["raw"])["index"] == 1


def test_quiet_minutes_owe_no_depth_record(processor: FrameProcessor) -> None:
    """Ticks alone close windows but do not create book_depth records for minutes without events."""
    minute = T0 - T0 % 60_000
    processor.on_frame(
        update(0, 1, minute + 1000, change("bid", "100", "1", "1", "initial")), minute
    )
    depth_windows = []
    for seq, offset in enumerate((61_000, 125_000, 190_000), start=1):
        beat = json.dumps(
            {"type": "heartbeat", "socket_sequence": seq, "timestampms": minute + offset}
        )
        records = decoded(processor.on_frame(beat, minute), Route.orderbook)
        depth_windows += [r["window_start_ms"] for r in records if r["type"] == "book_depth"]
    assert depth_windows == [minute]  # only the minute that had the snapshot
