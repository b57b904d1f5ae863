"""Gemini candles: the parser (documented examples, bad bodies, any JSON), the roll-up the simulator
serves, and the pure rules of the download (resume floor, window, --since, symbols).

Fixtures (``tests/fixtures/gemini``), transcribed from Gemini's documentation:

- ``candles.json``: the ``Candle`` example of
  https://developer.gemini.com/rest-api/trading/market-data/list-derivative-candles (the same
  array layout as "List Candles", ``GET /v2/candles/{symbol}/{time_frame}``; both rows carry one
  time, so the parser must keep one);
- ``candles_derivatives.json``: the "Example Responses" body of the same page.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcrypto.history.venue_candles import (
    VenueError,
    candles_to_store,
    check_symbol,
    default_source,
    missing_minutes_before,
    parse_since,
)
from rtcrypto.market.candles import (
    MINUTE_MS,
    TIME_FRAMES_MS,
    Candle,
    CandleParseError,
    aggregate,
    candle_rows,
    parse_candles,
)
from rtcrypto.simulator.candles import (
    completed_minutes_end_ms,
    looped_trades,
    minute_candles_from_trades,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gemini"
CANDLES_DOC_URL = (
    "https://developer.gemini.com/rest-api/trading/market-data/list-derivative-candles"
)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# --- the documented examples ---------------------------------------------------------------------


def test_the_documented_candle_example_parses_and_a_repeated_time_keeps_the_first_row() -> None:
    candles = parse_candles(fixture("candles.json"))
    assert candles == [Candle(1559755800000, 7781.6, 7820.23, 7776.56, 7819.39, 34.7624802159)]


def test_the_documented_example_response_parses_oldest_first_with_numbers_as_floats() -> None:
    candles = parse_candles(fixture("candles_derivatives.json"))
    assert [candle.ts_ms for candle in candles] == [1714126680000, 1714126740000]
    assert all(isinstance(candle.open, float) and candle.volume == 0.0 for candle in candles)
    assert candles[0].row() == [1714126680000, 68038.0, 68038.0, 68038.0, 68038.0, 0.0]


# --- bad bodies: a clear error naming the row ----------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"result": "error", "reason": "InvalidSymbol", "message": "no"}, "InvalidSymbol"),
        ({"candles": []}, "expected an array of candles"),
        ("[]", "expected an array of candles"),
        ([[1559755800000, 1, 2, 1, 2]], "candle 0: expected [time, open"),
        ([[1559755800000, "7781.6", 7820.23, 7776.56, 7819.39, 1.0]], "open is not a number"),
        ([[True, 1.0, 1.0, 1.0, 1.0, 1.0]], "time is not an integer"),
        ([[1559755800001, 1.0, 1.0, 1.0, 1.0, 1.0]], "not on a 1-minute boundary"),
        ([[-60000, 1.0, 1.0, 1.0, 1.0, 1.0]], "outside the epoch-millisecond range"),
        ([[1559755800000, 2.0, 1.0, 1.5, 1.0, 1.0]], "prices are inconsistent"),
        ([[1559755800000, 1.0, 1.0, 0.0, 1.0, 1.0]], "prices are inconsistent"),
        ([[1559755800000, 1.0, 1.0, 1.0, 1.0, -1.0]], "volume -1.0 is negative"),
        ([[1559755800000, 1.0, math.inf, 1.0, 1.0, 1.0]], "high is not finite"),
        ([[1559755800000, 1.0, 1.0, 1.0, 1.0, math.nan]], "volume is not finite"),
        ([[0, 1.0, 1.0, 1.0, 1.0, 1.0], [60000, 1.0, 1.0, 1.0, 1.0]], "candle 1"),
    ],
)
def test_a_bad_body_raises_a_clear_error(payload: Any, fragment: str) -> None:
    with pytest.raises(CandleParseError) as raised:
        parse_candles(payload)
    assert fragment in str(raised.value)


def test_a_five_minute_candle_must_open_on_a_five_minute_boundary() -> None:
    with pytest.raises(CandleParseError, match="5-minute boundary"):
        parse_candles([[60_000, 1.0, 1.0, 1.0, 1.0, 1.0]], TIME_FRAMES_MS["5m"])
    assert parse_candles([[300_000, 1.0, 1.0, 1.0, 1.0, 1.0]], TIME_FRAMES_MS["5m"])


# --- property: any JSON in, candles out or a clear error -----------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=7) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=40,
)
MINUTES = st.integers(min_value=0, max_value=60_000_000)  # minutes since the epoch (till ~2084)
PRICES = st.floats(min_value=0.01, max_value=1e7, allow_nan=False)


@st.composite
def candle_rows_strategy(draw: st.DrawFn) -> list[list[Any]]:
    rows = []
    for minute in draw(st.lists(MINUTES, max_size=30)):
        low, a, b, high = sorted(draw(st.lists(PRICES, min_size=4, max_size=4)))
        open_, close = draw(st.permutations([a, b]))
        volume = draw(st.floats(min_value=0, max_value=1e6) | st.integers(0, 10**6))
        rows.append([minute * MINUTE_MS, open_, high, low, close, volume])
    return rows


@settings(max_examples=400, deadline=None)
@given(ANY_JSON | st.lists(st.lists(JSON_SCALARS, min_size=6, max_size=6), max_size=5))
def test_any_json_gives_candles_or_a_clear_error_never_a_crash(payload: Any) -> None:
    try:
        candles = parse_candles(payload)
    except CandleParseError as error:
        assert str(error)
        return
    assert all(isinstance(candle, Candle) for candle in candles)
    assert [c.ts_ms for c in candles] == sorted({c.ts_ms for c in candles})


@settings(max_examples=300, deadline=None)
@given(candle_rows_strategy())
def test_valid_rows_parse_to_one_candle_per_time_the_first_listed_winning(
    rows: list[list[Any]],
) -> None:
    candles = parse_candles(rows)
    first_by_time: dict[int, list[Any]] = {}
    for row in rows:
        first_by_time.setdefault(row[0], row)
    assert [c.ts_ms for c in candles] == sorted(first_by_time)
    for candle in candles:
        assert candle.row() == [
            float(v) if i else v for i, v in enumerate(first_by_time[candle.ts_ms])
        ]


# --- what the simulator serves --------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(candle_rows_strategy(), st.sampled_from(sorted(TIME_FRAMES_MS.values())))
def test_a_roll_up_keeps_the_first_open_last_close_extremes_and_the_volume(
    rows: list[list[Any]], frame_ms: int
) -> None:
    minutes = parse_candles(rows)
    rolled = aggregate(minutes, frame_ms)
    assert [c.ts_ms for c in rolled] == sorted({m.ts_ms - m.ts_ms % frame_ms for m in minutes})
    for candle in rolled:
        inside = [m for m in minutes if candle.ts_ms <= m.ts_ms < candle.ts_ms + frame_ms]
        assert (candle.open, candle.close) == (inside[0].open, inside[-1].close)
        assert candle.high == max(m.high for m in inside)
        assert candle.low == min(m.low for m in inside)
        assert candle.volume == pytest.approx(sum(m.volume for m in inside))
    assert parse_candles(candle_rows(rolled, len(rolled) + 1), frame_ms) == rolled


def test_the_body_is_newest_first_and_capped() -> None:
    minutes = [Candle(i * MINUTE_MS, 1.0, 2.0, 0.5, 1.5, float(i)) for i in range(5)]
    assert [row[0] for row in candle_rows(minutes, 3)] == [
        4 * MINUTE_MS,
        3 * MINUTE_MS,
        2 * MINUTE_MS,
    ]
    assert candle_rows(minutes, 0) == []


def test_trades_become_minute_candles_and_only_finished_minutes_count() -> None:
    trades = [(60_000, 10.0, 1.0), (61_000, 12.0, 0.5), (119_999, 9.0, 0.25), (180_500, 11.0, 2.0)]
    assert minute_candles_from_trades(trades) == [
        Candle(60_000, 10.0, 12.0, 9.0, 9.0, 1.75),
        Candle(180_000, 11.0, 11.0, 11.0, 11.0, 2.0),
    ]
    assert completed_minutes_end_ms(119_998) == 60_000  # 119,999 may still come
    assert completed_minutes_end_ms(119_999) == 120_000


# --- the download's pure rules ---------------------------------------------------------------------


def _minutes(*indexes: int) -> list[Candle]:
    return [Candle(i * MINUTE_MS, 1.0, 1.0, 1.0, 1.0, 1.0) for i in indexes]


def test_resume_keeps_the_newest_stored_minute_and_later_and_since_is_a_floor() -> None:
    candles = _minutes(10, 11, 12, 13)
    assert candles_to_store(candles, None, None) == candles
    assert candles_to_store(candles, None, 12 * MINUTE_MS) == _minutes(12, 13)
    assert candles_to_store(candles, 11 * MINUTE_MS, None) == _minutes(11, 12, 13)
    assert candles_to_store(candles, 13 * MINUTE_MS, 11 * MINUTE_MS) == _minutes(13)
    assert candles_to_store(candles, 20 * MINUTE_MS, None) == []


def test_minutes_older_than_the_venue_window_are_counted() -> None:
    candles = _minutes(10, 11)
    assert missing_minutes_before(candles, 4 * MINUTE_MS, None) == 6
    assert missing_minutes_before(candles, None, 7 * MINUTE_MS) == 2  # 8 and 9 are missing
    assert missing_minutes_before(candles, 4 * MINUTE_MS, 9 * MINUTE_MS) == 0
    assert missing_minutes_before(candles, None, None) == 0
    assert missing_minutes_before([], 0, None) == 0


def test_since_is_utc_rounded_to_the_minute_and_a_bad_one_names_the_flag() -> None:
    assert parse_since("2021-04-19") == 1618790400000
    assert parse_since("2021-04-19T10:00:59Z") == 1618826400000
    assert parse_since("2021-04-19T12:00+02:00") == 1618826400000
    for bad in ("yesterday", "2021-13-01", ""):
        with pytest.raises(VenueError, match="--since"):
            parse_since(bad)


def test_symbols_and_their_sources() -> None:
    assert check_symbol("btcusd") == "BTCUSD"
    assert default_source("BTCUSD") == "gemini-candles"
    assert default_source("ethusd") == "gemini-candles-ethusd"
    for bad in ("../x", "BT", "BTC USD"):
        with pytest.raises(VenueError, match="--symbol"):
            check_symbol(bad)


def test_a_looped_capture_counts_the_trades_of_every_pass_inside_the_window() -> None:
    from types import SimpleNamespace

    trades = [(1_000, 10.0, 1.0), (31_000, 11.0, 2.0)]
    engine: Any = SimpleNamespace(loop_shift_ms=31_000 + 1_000, loop_index=2)
    # passes at +0, +32 s and +64 s
    assert looped_trades(engine, trades, 0, 120_000) == [
        (1_000, 10.0, 1.0), (31_000, 11.0, 2.0), (33_000, 10.0, 1.0), (63_000, 11.0, 2.0),
        (65_000, 10.0, 1.0), (95_000, 11.0, 2.0),
    ]  # fmt: skip
    assert looped_trades(engine, trades, 60_000, 65_000) == [(63_000, 11.0, 2.0)]
    assert looped_trades(engine, [], 0, 120_000) == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_since_text_gives_a_whole_minute_or_an_error_naming_the_flag(text: str) -> None:
    try:
        since_ms = parse_since(text)
    except VenueError as error:
        assert "--since" in str(error)
        return
    assert since_ms % MINUTE_MS == 0
