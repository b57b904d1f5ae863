"""Hostile capture lines (issue 10): one bad line is an error for that line, with its line
number, never a failure of the whole file. Plus a property test of the parsers (hypothesis)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import get_args

from hypothesis import given, settings
from hypothesis import strategies as st

from rtcrypto.market.captures import Venue, load_capture, parse_lines
from tests.unit.test_captures import GEMINI, GEMINI_LINES

DEEP = "[" * 5000 + "]" * 5000


def test_a_line_nested_too_deep_is_skipped_with_its_line_number(tmp_path: Path) -> None:
    """Was: RecursionError out of the parser: the whole capture failed to load."""
    deep_line = f"1618677943.3: {DEEP}"
    deep_object = '1618677943.4: {"type":"l2_updates","symbol":"BTCUSD","changes":' + DEEP + "}"
    lines = GEMINI_LINES[:3] + [deep_line, deep_object] + GEMINI_LINES[3:]
    capture = parse_lines(lines, source="cut.txt")
    assert [type(m).__name__ for m in capture.messages] == [
        "BookUpdate",
        "BookUpdate",
        "TradePrint",
    ]
    assert capture.lines_skipped == 2 and capture.skip_reasons["json: bounds"] == 2
    assert capture.line_errors[0].startswith("cut.txt:4: json: bounds (JSON nested deeper")
    assert capture.line_errors[1].startswith("cut.txt:5: ")

    real = gzip.decompress(GEMINI.read_bytes()).decode().splitlines()
    spliced = tmp_path / "gemini_spliced.txt"
    spliced.write_text("\n".join(real[:50] + [deep_line] + real[50:]) + "\n")
    whole = load_capture(spliced)
    assert len(whole.messages) == len(load_capture(GEMINI).messages)
    assert whole.line_errors == [f"{spliced}:51: json: bounds (JSON nested deeper than 32 levels)"]


def test_unbounded_numbers_in_a_line_skip_that_line_only() -> None:
    bad = [
        '1618677943.3: {"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","1e999999999","1"]]}',
        '1618677943.4: {"type":"trade","symbol":"BTCUSD","event_id":8,"timestamp":1e400,'
        '"price":"101","quantity":"0.5","side":"sell"}',
        '1618677943.5: {"type":"trade","symbol":"BTCUSD","event_id":9,"timestamp":Infinity,'
        '"price":"101","quantity":"0.5","side":"sell"}',
        "9" * 5000 + ": {}",
    ]
    capture = parse_lines(GEMINI_LINES[:3] + bad + GEMINI_LINES[3:], source="x")
    assert len(capture.messages) == 3 and capture.lines_skipped == len(bad)
    assert sorted(int(error.split(":")[1]) for error in capture.line_errors) == [4, 5, 6, 7]


VENUES: tuple[Venue, ...] = get_args(Venue)
LINE_PARTS = st.sampled_from(
    [
        "1618677943.5: ",
        "wss://api.gemini.com/v2/marketdata/ <-> 1618677942.3",
        "https://www.bitstamp.net/api/v2/order_book/btcusd -> 1618677942.1: ",
        "configuration: ",
        '{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","1","1"]]}',
        '{"type":"trade","symbol":"BTCUSD","event_id":1,"price":"1","quantity":"1","side":"buy"}',
        '[1,{"a":["1","2"]},"book-10","XBT/USD"]',
        '{"e":"depthUpdate","s":"BTCUSDT","b":[["1","1"]],"a":[],"u":5,"U":1}',
        '{"event":"data","channel":"diff_order_book_btcusd","data":{"bids":[["1","1"]]}}',
        "[[[[",
        "1e999999999",
        "\x00\xff",
    ]
)
LINES = st.lists(LINE_PARTS | st.text(max_size=30), max_size=4).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(LINES, max_size=12), st.sampled_from(VENUES))
def test_no_line_raises_out_of_the_parsers(lines: list[str], venue: Venue) -> None:
    capture = parse_lines(lines, venue=venue, source="prop")
    assert capture.lines_skipped == sum(capture.skip_reasons.values())
    assert len(capture.line_errors) == min(capture.lines_skipped, 100)
    assert capture.lines_read == len(lines)
