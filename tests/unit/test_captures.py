"""Capture parsing on the real recorded files, and the v2 -> v1 mapping contract."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

import pytest

from rtcrypto.market.captures import (
    BookUpdate,
    CaptureError,
    TradePrint,
    load_capture,
    load_rest_symbols,
    parse_lines,
)
from rtcrypto.market.captures.gemini_v1 import (
    LevelBook,
    level_ops,
    replay_v1_change_events,
    v2_change_to_v1_event,
)
from rtcrypto.market.captures.reader import epoch_seconds_to_ms

ORDERBOOK_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "orderbook"
GEMINI = ORDERBOOK_DIR / "gemini_2021-04-17__GEMINI.ws.36.0.gz"
GEMINI_SYMBOLS = ORDERBOOK_DIR / "gemini_2021-04-17__GEMINI.0.gz"
KRAKEN = ORDERBOOK_DIR / "kraken_2021-04-05__KRAKEN-c197c0.0_book.gz"
BINANCE = ORDERBOOK_DIR / "binance_2021-04-04__BINANCE-ee25be.0.gz"
BINANCE_US = ORDERBOOK_DIR / "binance_us_2021-04-05__BINANCE_US-63b290.0.gz"
BITSTAMP = ORDERBOOK_DIR / "bitstamp_2021-04-17__BITSTAMP.ws.19.0.gz"

assert GEMINI.exists(), (
    f"the real recorded captures are required: {ORDERBOOK_DIR} (see ../shared/data)"
)


def btc_books(path: Path) -> list[BookUpdate]:
    capture = load_capture(path)
    return [m for m in capture.messages if isinstance(m, BookUpdate) and m.symbol == "BTCUSD"]


def raw_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        return stream.read().splitlines()


# --- Gemini v2 ---------------------------------------------------------------------------------


def test_gemini_capture_parses_whole_file() -> None:
    capture = load_capture(GEMINI)
    assert capture.venue == "gemini"
    assert capture.lines_skipped == 0
    assert set(capture.symbols) == {
        "ETHUSD", "ETHBTC", "AMPUSD", "BALUSD", "MKRUSD",
        "OXTUSD", "BTCUSD", "BCHBTC", "ZECBTC", "LTCUSD",
    }  # fmt: skip
    books = [m for m in capture.for_symbol("BTCUSD") if isinstance(m, BookUpdate)]
    trades = [m for m in capture.for_symbol("BTCUSD") if isinstance(m, TradePrint)]
    assert len(books) == 200 and len(trades) == 18
    assert [m.is_snapshot for m in books].count(True) == 1 and books[0].is_snapshot


def test_gemini_first_btcusd_message_is_the_full_book() -> None:
    snapshot = btc_books(GEMINI)[0]
    assert len(snapshot.changes) == 6614
    bids = [Decimal(p) for side, p, _ in snapshot.changes if side == "buy"]
    asks = [Decimal(p) for side, p, _ in snapshot.changes if side == "sell"]
    assert max(bids) == Decimal("60696.02") and min(asks) == Decimal("60720.31")
    assert snapshot.changes[0] == ("buy", "60696.02", "0.02")  # the capture's strings, unchanged
    assert snapshot.ts_receive_ms == 1618677942634
    assert len(snapshot.trades) > 0  # Gemini lists recent trades with the book


def test_gemini_trades_keep_taker_side_and_ids() -> None:
    capture = load_capture(GEMINI)
    first = next(m for m in capture.for_symbol("BTCUSD") if isinstance(m, TradePrint))
    assert (first.trade_id, first.price, first.quantity) == (34359636714, "60720.31", "0.03277419")
    assert first.taker_side == "buy" and first.maker_side == "ask"
    assert first.ts_exchange_ms == 1618677946588 and first.ts_receive_ms == 1618677946579


def test_gemini_rest_symbols_file() -> None:
    symbols = load_rest_symbols(GEMINI_SYMBOLS)
    assert len(symbols) == 57 and "btcusd" in symbols and all(s == s.lower() for s in symbols)


# --- re-encoded venues -------------------------------------------------------------------------


def test_kraken_xbtusd_becomes_btcusd_with_snapshot_then_updates() -> None:
    capture = load_capture(KRAKEN)
    assert capture.venue == "kraken" and capture.lines_skipped == 0
    assert "FILBTC" in capture.symbols and "ALGOBTC" in capture.symbols  # XBT -> BTC everywhere
    books = btc_books(KRAKEN)
    assert books[0].is_snapshot and not any(m.is_snapshot for m in books[1:])
    assert len(books) == 1 + 5788
    sides = [side for side, _, _ in books[0].changes]
    assert sides.count("sell") == 1000 and sides.count("buy") == 1000  # depth 1000
    assert books[0].changes[0] == ("sell", "58729.40000", "0.45000000")
    assert books[0].ts_receive_ms == 1617666424207


def test_binance_btcusdt_snapshot_and_diffs_newer_than_it() -> None:
    capture = load_capture(BINANCE)
    assert capture.venue == "binance" and capture.lines_skipped == 0
    books = btc_books(BINANCE)
    snapshot = books[0]
    assert snapshot.is_snapshot and len(snapshot.changes) == 2000
    assert snapshot.ts_receive_ms == 1617566592339  # the REST line's time
    # Recount independently: BTCUSDT depth diffs whose last update id is newer than the snapshot.
    last_update_id, newer = None, 0
    for line in raw_lines(BINANCE):
        body = line.split(": ", 1)[-1]
        if "depth?symbol=BTCUSDT" in line:
            last_update_id = json.loads(body)["lastUpdateId"]
        elif '"btcusdt@depth@100ms"' in line:
            data = json.loads(body)["data"]
            newer += last_update_id is not None and data["u"] > last_update_id
    assert len(books) - 1 == newer == 889
    trades = [m for m in capture.for_symbol("BTCUSD") if isinstance(m, TradePrint)]
    assert len(trades) == 1227
    assert all((t.taker_side == "sell") == (t.maker_side == "bid") for t in trades)


def test_binance_us_and_bitstamp_btcusd_books() -> None:
    for path in (BINANCE_US, BITSTAMP):
        capture = load_capture(path)
        assert capture.lines_skipped == 0
        books = btc_books(path)
        assert books[0].is_snapshot and len(books) > 40
        assert not any(m.is_snapshot for m in books[1:])
    assert load_capture(BITSTAMP).sources[1].endswith("BITSTAMP.http.18.0.gz")  # sibling snapshot


# --- robustness --------------------------------------------------------------------------------

GEMINI_LINES = [
    "wss://api.gemini.com/v2/marketdata/ <-> 1618677942.3390841",
    'wss://api.gemini.com/v2/marketdata/ <- 1618677942.462008: {"type":"subscribe"}',
    '1618677942.5: {"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","100.5","1"],'
    '["sell","101","2"]],"trades":[]}',
    '1618677943.25: {"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","100.5","0.4"]]}',
    '1618677944: {"type":"trade","symbol":"BTCUSD","event_id":7,"timestamp":1618677943999,'
    '"price":"101","quantity":"0.5","side":"sell"}',
    '1618677944.5: {"type":"heartbeat","timestamp":1618677944500}',
]
GARBAGE_LINES = [
    "this is not a capture line",
    "1618677943.3: {not json",
    '1618677943.4: {"type":"l2_updates","symbol":"BTCUSD"}',  # no changes
    '1618677943.5: {"type":"l2_updates","symbol":"BTCUSD","changes":[["up","1","1"]]}',
    '1618677943.6: {"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","x","1"]]}',
    '1618677943.7: {"type":"trade","symbol":"BTCUSD","price":"1"}',
    "12abc: {}",
    "\x00\x01\x02 binary \xff",
]


def test_unparseable_lines_are_skipped_and_counted() -> None:
    lines = GEMINI_LINES[:3] + GARBAGE_LINES + GEMINI_LINES[3:] + ["", "   "]
    capture = parse_lines(lines)
    assert capture.venue == "gemini"
    assert capture.lines_skipped == len(GARBAGE_LINES)
    assert [type(m).__name__ for m in capture.messages] == [
        "BookUpdate",
        "BookUpdate",
        "TradePrint",
    ]
    assert capture.messages[1].ts_receive_ms == 1618677943250
    assert capture.lines_ignored == 1  # the heartbeat


def test_plain_text_and_truncated_gzip_files(tmp_path: Path) -> None:
    plain = tmp_path / "gemini_plain.txt"
    plain.write_text("\n".join(GEMINI_LINES) + "\n")
    assert len(load_capture(plain).messages) == 3
    truncated = tmp_path / "gemini_cut.gz"
    truncated.write_bytes(GEMINI.read_bytes()[:100_000])
    capture = load_capture(truncated)
    assert capture.venue == "gemini" and len(capture.messages) >= 5
    assert capture.lines_skipped == 1  # the line cut in half


def test_unusable_captures_raise_capture_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="not found"):
        load_capture(tmp_path / "missing.gz")
    unknown = tmp_path / "mystery.txt"
    unknown.write_text("wss://example.org/feed <-> 1618677942.1\n")
    with pytest.raises(CaptureError, match="exchange"):
        load_capture(unknown)


def test_receive_time_truncates_to_milliseconds_exactly() -> None:
    assert epoch_seconds_to_ms("1618677942.5862669") == 1618677942586
    assert epoch_seconds_to_ms("1618677944") == 1618677944000
    assert epoch_seconds_to_ms("1618677944.9") == 1618677944900
    for line in raw_lines(GEMINI)[2:200]:
        stamp = line.split(": ", 1)[0]
        assert epoch_seconds_to_ms(stamp) == int(float(stamp) * 1000)


# --- the v2 -> v1 mapping ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "quantity", "previous", "is_snapshot", "expected"),
    [
        ("buy", "0.02", "0", True, ("bid", "0.02", "initial")),
        ("sell", "1.5", "0", False, ("ask", "1.5", "place")),
        ("buy", "1.5", "2.00", False, ("bid", "-0.50", "cancel")),
        ("sell", "0", "0.25000000", False, ("ask", "-0.25000000", "cancel")),
        ("buy", "0.2982", "0.2982", False, ("bid", "0.0000", "place")),  # unchanged level resent
        ("sell", "0", "0", False, ("ask", "0", "cancel")),  # removal of an absent level
        ("buy", "0.00000001", "0", False, ("bid", "0.00000001", "place")),  # no exponent
    ],
)
def test_v2_change_to_v1_event(
    side: str, quantity: str, previous: str, is_snapshot: bool, expected: tuple[str, str, str]
) -> None:
    event = v2_change_to_v1_event(side, "60696.02", quantity, Decimal(previous), is_snapshot)
    assert list(event) == ["type", "side", "price", "remaining", "delta", "reason"]
    assert event["type"] == "change" and event["price"] == "60696.02"
    assert event["remaining"] == quantity
    assert (event["side"], event["delta"], event["reason"]) == expected


def test_later_snapshot_becomes_changes_and_removals() -> None:
    book = LevelBook("BTCUSD")
    first = BookUpdate("BTCUSD", 1, 1, (("buy", "100", "1"), ("sell", "101", "2")), True)
    assert [e["reason"] for e in book.apply(first)] == ["initial", "initial"]
    again = BookUpdate("BTCUSD", 2, 2, (("buy", "100", "1"), ("buy", "99", "3")), True)
    events = book.apply(again)
    assert [(e["side"], e["price"], e["remaining"], e["delta"], e["reason"]) for e in events] == [
        ("bid", "100", "1", "0", "place"),
        ("bid", "99", "3", "3", "place"),
        ("ask", "101", "0", "-2", "cancel"),
    ]
    assert book.quantities() == ({Decimal(100): "1", Decimal(99): "3"}, {})


def test_fast_level_ops_give_the_same_book_as_the_mapping() -> None:
    capture = load_capture(KRAKEN)
    mapped, fast = LevelBook("BTCUSD"), LevelBook("BTCUSD")
    for message in capture.for_symbol("BTCUSD"):
        assert isinstance(message, BookUpdate)
        mapped.apply(message)
        fast.apply_levels(level_ops(message.changes), message.is_snapshot)
    assert mapped.quantities() == fast.quantities()
    best_bid, best_ask = mapped.best_bid(), mapped.best_ask()
    assert best_bid is not None and best_ask is not None
    assert Decimal(best_bid.price) < Decimal(best_ask.price)


def test_snapshot_events_list_the_book_best_first() -> None:
    book = LevelBook("BTCUSD")
    book.apply(btc_books(GEMINI)[0])
    events = book.snapshot_events()
    assert len(events) == 6614
    assert all(e["reason"] == "initial" and e["delta"] == e["remaining"] for e in events)
    assert events[0]["price"] == "60696.02"
    first_ask = next(e for e in events if e["side"] == "ask")
    assert first_ask["price"] == "60720.31"


def test_replay_events_recompute_every_change_of_the_file() -> None:
    """Every BTCUSD change of every line, once, remaining = quantity, at that line's time."""
    expected: list[tuple[int, str, str, str]] = []
    for line in raw_lines(GEMINI):
        stamp, _, body = line.partition(": ")
        if not stamp[:1].isdigit() or '"symbol":"BTCUSD"' not in body:
            continue
        message = json.loads(body)
        if message["type"] == "l2_updates":
            for side, price, quantity in message["changes"]:
                side_v1 = "bid" if side == "buy" else "ask"
                expected.append((int(float(stamp) * 1000), side_v1, price, quantity))
    capture = load_capture(GEMINI)
    produced = [
        (ts, e["side"], e["price"], e["remaining"])
        for ts, e in replay_v1_change_events(capture.messages, "BTCUSD")
    ]
    assert produced == expected


def test_shift_by_whole_minutes_keeps_each_message_in_its_window_position() -> None:
    from rtcrypto.market.captures import shift_capture, whole_minutes_until

    capture = load_capture(GEMINI)
    shift = whole_minutes_until(capture.first_ms, 1_795_000_000_123)
    assert shift % 60_000 == 0 and capture.first_ms + shift <= 1_795_000_000_123
    shifted = shift_capture(capture, shift)
    assert len(shifted.messages) == len(capture.messages)
    for before, after in zip(capture.messages, shifted.messages, strict=True):
        assert after.ts_receive_ms - before.ts_receive_ms == shift
        assert after.ts_receive_ms % 60_000 == before.ts_receive_ms % 60_000
    assert capture.messages[0].ts_receive_ms == capture.first_ms  # the original is untouched
