"""Fuzz target: the capture parsers (:func:`rtcrypto.market.captures.parse_lines` for every venue).

One input is a few capture lines (cryptofeed's text format); the first byte picks the venue.
Nothing may raise: a bad line must be counted as skipped (with its line number), never fail the
whole capture.
"""

from __future__ import annotations

from typing import get_args

from fuzz.seeds import ORDERBOOK_DATA, capture_lines
from rtcrypto.market.captures import Venue, parse_lines

VENUES: tuple[Venue, ...] = get_args(Venue)
LINES_PER_SEED = 8
SEED_FILES = {
    "gemini": "gemini_2021-04-17__GEMINI.ws.36.0.gz",
    "kraken": "kraken_2021-04-05__KRAKEN-c197c0.0_book.gz",
    "binance": "binance_2021-04-04__BINANCE-ee25be.0.gz",
    "binance_us": "binance_us_2021-04-05__BINANCE_US-63b290.0.gz",
    "bitstamp": "bitstamp_2021-04-17__BITSTAMP.ws.19.0.gz",
}


def test_one_input(data: bytes) -> None:
    if not data:
        return
    venue = VENUES[data[0] % len(VENUES)]
    text = data[1:].decode("utf-8", errors="replace")
    capture = parse_lines(text.split("\n"), venue=venue, source="fuzz")
    if capture.lines_skipped != sum(capture.skip_reasons.values()):
        raise AssertionError("skipped lines and their reasons disagree")


def seed_corpus() -> list[bytes]:
    """The first lines of each venue's real capture, a few lines per seed."""
    seeds: list[bytes] = []
    for venue, name in SEED_FILES.items():
        path = ORDERBOOK_DATA / name
        if not path.is_file():
            continue
        lines = capture_lines(path, 40)
        prefix = bytes([VENUES.index(venue)])
        for start in range(0, len(lines), LINES_PER_SEED):
            seeds.append(prefix + "\n".join(lines[start : start + LINES_PER_SEED]).encode())
    return seeds
