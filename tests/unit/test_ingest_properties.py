"""Property tests of the frame processor and the order book (hypothesis)."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from rtcrypto.ingest.processor import FrameProcessor, Route
from rtcrypto.market.orderbook import OrderBook, depth_summary
from tests.unit.test_ingest_processor import T0, change, update

JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=30,
)
FIELDS = st.sampled_from(["type", "eventId", "socket_sequence", "timestampms", "events", "side",
                          "price", "remaining", "delta", "reason", "tid", "amount", "makerSide"])  # fmt: skip
FIELD_VALUES = (
    JSON_VALUES
    | st.sampled_from(["update", "heartbeat", "change", "trade", "bid", "ask", "initial", "place"])
    | st.sampled_from(["1e999999999", "-0", "NaN", "0.00000001", "68000.12", "1E+30", "9" * 70])
    | st.integers(min_value=T0 - 10**7, max_value=T0 + 10**7)
    | st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**16, 32_503_680_000_000])
)
EVENTS = st.dictionaries(FIELDS, FIELD_VALUES, max_size=7)
MESSAGES = st.fixed_dictionaries(
    {"type": st.sampled_from(["update", "heartbeat"]), "eventId": st.integers(0, 2**65)},
    optional={
        "socket_sequence": st.integers(-2, 2**64),
        "timestampms": FIELD_VALUES,
        "events": st.lists(EVENTS | JSON_VALUES, max_size=5),
    },
)


def run_frames(frames: list[str | bytes]) -> FrameProcessor:
    processor = FrameProcessor(symbol="BTCUSD", band_pct=0.5, source="property")
    for offset, frame in enumerate(frames):
        result = processor.on_frame(frame, T0 + offset * 1000)  # must not raise
        for record in result.records:
            json.loads(record.value)  # every record is JSON
        assert result.dead_letters == sum(r.route is Route.deadletter for r in result.records)
    processor.clock_tick(T0 + 10**6)
    processor.book.depth(processor.band_pct)
    return processor


@settings(max_examples=300, deadline=None)
@given(
    st.lists(MESSAGES.map(json.dumps) | st.binary(max_size=200) | st.text(max_size=200), max_size=8)
)
def test_no_frame_raises_out_of_on_frame(frames: list[str | bytes]) -> None:
    run_frames(frames)


@settings(max_examples=100, deadline=None)
@given(st.lists(JSON_VALUES.map(json.dumps), max_size=8))
def test_no_json_value_raises_out_of_on_frame(frames: list[str]) -> None:
    run_frames(frames)


PRICES = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2)
SIZES = st.decimals(min_value=Decimal(0), max_value=Decimal("1000"), places=8)
CHANGES = st.lists(st.tuples(st.sampled_from(["bid", "ask"]), PRICES, SIZES), max_size=60)


@settings(max_examples=200, deadline=None)
@given(CHANGES)
def test_the_book_holds_the_last_size_of_every_level(
    changes: list[tuple[str, Decimal, Decimal]],
) -> None:
    """Frames of valid changes leave exactly the last non-zero size per (side, price) in the
    book, and the book's totals within an all-covering band equal the sum of its levels."""
    frames = [
        update(seq, seq + 1, T0 + seq, change(side, str(price), str(size), str(size)))
        for seq, (side, price, size) in enumerate(changes)
    ]
    processor = run_frames(frames)
    expected: dict[str, dict[Decimal, Decimal]] = {"bid": {}, "ask": {}}
    for side, price, size in changes:
        expected[side][price] = size
    assert processor.book.bids == {p: s for p, s in expected["bid"].items() if s != 0}
    assert processor.book.asks == {p: s for p, s in expected["ask"].items() if s != 0}
    assert_totals(processor.book)


def assert_totals(book: OrderBook) -> None:
    summary = depth_summary(book.bids, book.asks, band_pct=1e9)  # the band covers every level
    if book.bids and book.asks:
        assert summary.bid_depth == float(sum(book.bids.values()))
        assert summary.ask_depth == float(sum(book.asks.values()))
        total = summary.bid_depth + summary.ask_depth
        assert summary.depth_imbalance is None or -1 <= summary.depth_imbalance <= 1
        assert (summary.depth_imbalance is None) == (total == 0)
    else:
        assert (summary.bid_depth, summary.ask_depth, summary.mid_price) == (0.0, 0.0, None)


BOUNDED = st.decimals(
    allow_nan=False, allow_infinity=False, min_value=Decimal("1e-30"), max_value=Decimal("1e30")
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["bid", "ask"]), BOUNDED, BOUNDED), max_size=40),
    st.floats(min_value=0.0001, max_value=1e6),
)
def test_depth_never_raises_on_any_bounded_book(
    levels: list[tuple[str, Decimal, Decimal]], band_pct: float
) -> None:
    book = OrderBook("BTCUSD")
    for side, price, size in levels:
        book.apply(side, price, size)  # type: ignore[arg-type]
    summary = book.depth(band_pct)
    assert summary.bid_depth >= 0 and summary.ask_depth >= 0
