"""Property tests of each venue parser (hypothesis): well-formed frames of a venue, in any number
and order, become exactly the book updates and trades they carry, with the venue's rules
(Gemini's first update per symbol is the snapshot; Kraken ``as``/``bs``; Binance and Bitstamp
diffs only when newer than the REST snapshot). The real files are covered in test_captures.py,
hostile lines in test_captures_hostile.py."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rtcrypto.market.captures import BookUpdate, TradePrint, parse_lines
from rtcrypto.market.captures.messages import CaptureMessage, TakerSide, V2Change

NUMBER = st.integers(0, 10**14).map(lambda n: f"{n // 10**8}.{n % 10**8:08d}")
LEVEL = st.tuples(NUMBER, NUMBER)
LEVELS = st.lists(LEVEL, max_size=4)
SIDE = st.sampled_from(["buy", "sell"])
TS_MS = st.integers(1_500_000_000_000, 1_700_000_000_000)
EXAMPLES = settings(max_examples=150, deadline=None)


def received(ts_ms: int, frame: Any) -> str:
    """A received capture line; the receive time has more digits than milliseconds."""
    return f"{ts_ms // 1000}.{ts_ms % 1000:03d}4242: {json.dumps(frame)}"


def rest(url: str, ts_ms: int, body: Any) -> str:
    return f"{url} -> {ts_ms // 1000}.{ts_ms % 1000:03d}: {json.dumps(body)}"


def changes_of(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> tuple[V2Change, ...]:
    return tuple(("buy", p, q) for p, q in bids) + tuple(("sell", p, q) for p, q in asks)


# --- Gemini v2 -----------------------------------------------------------------------------------

GEMINI_FRAME = st.one_of(
    st.tuples(st.just("l2"), st.sampled_from(["BTCUSD", "ethusd"]), st.lists(st.tuples(SIDE, LEVEL), max_size=4)),
    st.tuples(st.just("trade"), st.sampled_from(["BTCUSD", "ethusd"]), st.tuples(SIDE, LEVEL, st.integers(1, 10**12))),
)  # fmt: skip


@EXAMPLES
@given(st.lists(st.tuples(TS_MS, GEMINI_FRAME), max_size=10))
def test_gemini_frames_become_their_updates_and_trades(frames: list[Any]) -> None:
    lines = ["wss://api.gemini.com/v2/marketdata/ <-> 1618677942.3"]
    expected: list[CaptureMessage] = []
    seen: set[str] = set()
    for number, (ts_ms, (kind, venue_symbol, body)) in enumerate(frames, start=2):
        symbol = venue_symbol.upper()
        if kind == "l2":
            changes = [[side, price, qty] for side, (price, qty) in body]
            frame = {"type": "l2_updates", "symbol": venue_symbol, "changes": changes}
            changes_v2 = tuple((side, price, qty) for side, (price, qty) in body)
            expected.append(BookUpdate(symbol, ts_ms, number, changes_v2, symbol not in seen))
            seen.add(symbol)
        else:
            side, (price, qty), event_id = body
            frame = {
                "type": "trade",
                "symbol": venue_symbol,
                "event_id": event_id,
                "timestamp": ts_ms - 5,
                "price": price,
                "quantity": qty,
                "side": side,
            }
            expected.append(
                TradePrint(symbol, ts_ms, number, event_id, price, qty, side, ts_ms - 5)
            )
        lines.append(received(ts_ms, frame))
    capture = parse_lines(lines)
    assert capture.venue == "gemini"
    assert capture.messages == expected
    assert capture.lines_skipped == 0


# --- Kraken --------------------------------------------------------------------------------------

KRAKEN_PAIRS = {"XBT/USD": "BTCUSD", "ETH/XBT": "ETHBTC", "ETH/USD": "ETHUSD"}
KRAKEN_FRAME = st.one_of(
    st.tuples(st.just("book"), st.booleans(), LEVELS, LEVELS),
    st.tuples(st.just("trade"), st.lists(st.tuples(LEVEL, st.sampled_from(["b", "s"])), min_size=1, max_size=3)),
)  # fmt: skip


@EXAMPLES
@given(st.lists(st.tuples(TS_MS, st.sampled_from(sorted(KRAKEN_PAIRS)), KRAKEN_FRAME), max_size=10))
def test_kraken_frames_become_their_updates_and_trades(frames: list[Any]) -> None:
    lines = ["wss://ws.kraken.com <-> 1617580000.1", received(1, {"event": "heartbeat"})]
    expected: list[CaptureMessage] = []
    for number, (ts_ms, pair, body) in enumerate(frames, start=3):
        symbol = KRAKEN_PAIRS[pair]
        if body[0] == "book":
            _, is_snapshot, asks, bids = body
            keys = ("as", "bs") if is_snapshot else ("a", "b")
            parts = {keys[0]: [[p, q, "1617580000.1"] for p, q in asks]}
            second = {keys[1]: [[p, q, "1617580000.1"] for p, q in bids], "c": "12345"}
            frame: list[Any] = [42, parts, second, "book-10", pair]
            changes = tuple(("sell", p, q) for p, q in asks) + tuple(("buy", p, q) for p, q in bids)
            expected.append(BookUpdate(symbol, ts_ms, number, changes, is_snapshot))
        else:
            entries = [[p, q, "1617580000.123456", side, "l", ""] for (p, q), side in body[1]]
            frame = [42, entries, "trade", pair]
            expected += [
                TradePrint(
                    symbol,
                    ts_ms,
                    number,
                    number * 1000 + index,
                    p,
                    q,
                    "buy" if side == "b" else "sell",
                    1617580000123,
                )
                for index, ((p, q), side) in enumerate(body[1])
            ]
        lines.append(received(ts_ms, frame))
    capture = parse_lines(lines, venue="kraken")
    assert capture.messages == expected
    assert capture.lines_skipped == 0 and capture.lines_ignored == 1


# --- Binance and Binance.US ----------------------------------------------------------------------

DIFF = st.tuples(st.integers(1, 200), LEVELS, LEVELS)  # (final update id u, bids, asks)


@EXAMPLES
@given(
    st.lists(DIFF, max_size=5),
    st.integers(1, 200),
    LEVELS,
    LEVELS,
    st.lists(DIFF, max_size=5),
    st.sampled_from(
        [
            ("binance", "https://www.binance.com", "BTCUSD"),
            ("binance_us", "https://api.binance.us", "BTCUSDT"),
        ]
    ),
)
def test_binance_diffs_follow_the_snapshot_only_when_newer(
    before: list[Any],
    last_update_id: int,
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]],
    after: list[Any],
    venue_host_symbol: tuple[Any, str, str],
) -> None:
    venue, host, symbol = venue_host_symbol
    ts_ms = 1617580000000

    def diff_line(index: int, diff: Any) -> str:
        u, diff_bids, diff_asks = diff
        data = {
            "e": "depthUpdate",
            "s": "BTCUSDT",
            "U": 1,
            "u": u,
            "b": [[p, q] for p, q in diff_bids],
            "a": [[p, q] for p, q in diff_asks],
        }
        return received(ts_ms + index, {"stream": "btcusdt@depth", "data": data})

    lines = [diff_line(index, diff) for index, diff in enumerate(before)]
    snapshot = {
        "lastUpdateId": last_update_id,
        "bids": [[p, q] for p, q in bids],
        "asks": [[p, q] for p, q in asks],
    }
    url = f"{host}/api/v1/depth?symbol=BTCUSDT&limit=1000"
    lines.append(rest(url, ts_ms + 100, snapshot))
    snapshot_line = len(lines)
    lines += [diff_line(200 + index, diff) for index, diff in enumerate(after)]
    capture = parse_lines(lines, venue=venue)

    expected = [BookUpdate(symbol, ts_ms + 100, snapshot_line, changes_of(bids, asks), True)]
    expected += [  # held back, then stamped with the snapshot's time and line
        BookUpdate(symbol, ts_ms + 100, snapshot_line, changes_of(b, a), False)
        for u, b, a in before
        if u > last_update_id
    ]
    expected += [
        BookUpdate(symbol, ts_ms + 200 + index, snapshot_line + 1 + index, changes_of(b, a), False)
        for index, (u, b, a) in enumerate(after)
        if u > last_update_id
    ]
    assert capture.messages == expected
    assert capture.lines_skipped == 0
    assert capture.lines_ignored == len(before) + sum(u <= last_update_id for u, _, _ in after)


@EXAMPLES
@given(st.lists(st.tuples(LEVEL, st.booleans(), st.integers(1, 10**9)), max_size=6))
def test_binance_agg_trades_keep_id_price_and_taker(trades: list[Any]) -> None:
    lines = [
        received(
            1617580000000 + index,
            {
                "e": "aggTrade",
                "s": "BTCUSDT",
                "a": trade_id,
                "p": p,
                "q": q,
                "m": buyer_is_maker,
                "T": 1617580000000 - index,
            },
        )
        for index, ((p, q), buyer_is_maker, trade_id) in enumerate(trades)
    ]
    capture = parse_lines(lines, venue="binance")
    assert capture.messages == [
        TradePrint(
            "BTCUSD",
            1617580000000 + index,
            index + 1,
            trade_id,
            p,
            q,
            "sell" if buyer_is_maker else "buy",
            1617580000000 - index,
        )
        for index, ((p, q), buyer_is_maker, trade_id) in enumerate(trades)
    ]


# --- Bitstamp ------------------------------------------------------------------------------------


@EXAMPLES
@given(
    st.integers(10**15, 2 * 10**15),
    LEVELS,
    LEVELS,
    st.lists(st.tuples(st.integers(-5, 5), LEVELS, LEVELS), max_size=6),
    st.lists(st.tuples(LEVEL, st.sampled_from([0, 1]), st.integers(1, 10**9)), max_size=3),
)
def test_bitstamp_diffs_newer_than_the_snapshot_and_trades(
    snapshot_micros: int,
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]],
    diffs: list[Any],
    trades: list[Any],
) -> None:
    ts_ms = 1618677000000
    diff_before = {
        "event": "data",
        "channel": "diff_order_book_btcusd",
        "data": {"microtimestamp": "1", "bids": [], "asks": []},
    }
    lines = [received(ts_ms, diff_before)]  # before any snapshot: ignored
    snapshot = {
        "microtimestamp": str(snapshot_micros),
        "bids": [[p, q] for p, q in bids],
        "asks": [[p, q] for p, q in asks],
    }
    lines.append(rest("https://www.bitstamp.net/api/v2/order_book/btcusd", ts_ms + 1, snapshot))
    expected: list[Any] = [BookUpdate("BTCUSD", ts_ms + 1, 2, changes_of(bids, asks), True)]
    for index, (offset, diff_bids, diff_asks) in enumerate(diffs):
        data = {
            "microtimestamp": str(snapshot_micros + offset),
            "bids": [[p, q] for p, q in diff_bids],
            "asks": [[p, q] for p, q in diff_asks],
        }
        lines.append(
            received(
                ts_ms + 2 + index,
                {"event": "data", "channel": "diff_order_book_btcusd", "data": data},
            )
        )
        if offset > 0:
            changes = changes_of(diff_bids, diff_asks)
            expected.append(BookUpdate("BTCUSD", ts_ms + 2 + index, len(lines), changes, False))
    for (price, amount), kind, trade_id in trades:
        data = {
            "id": trade_id,
            "price_str": price,
            "amount_str": amount,
            "type": kind,
            "microtimestamp": str(snapshot_micros + 7_000),
        }
        lines.append(
            received(ts_ms + 50, {"event": "trade", "channel": "live_trades_btcusd", "data": data})
        )
        taker: TakerSide = "buy" if kind == 0 else "sell"
        expected.append(
            TradePrint(
                "BTCUSD",
                ts_ms + 50,
                len(lines),
                trade_id,
                price,
                amount,
                taker,
                (snapshot_micros + 7_000) // 1000,
            )
        )
    capture = parse_lines(lines, venue="bitstamp")
    assert capture.messages == expected
    assert capture.lines_skipped == 0
    assert capture.lines_ignored == 1 + sum(offset <= 0 for offset, _, _ in diffs)
