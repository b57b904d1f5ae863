"""The Trade review page's query validation (rtcrypto.review.request): every bad symbol, mode or
range is a ReviewRequestError naming the parameter, never another exception."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtcrypto.config import Settings
from rtcrypto.report.clock import ReviewClock
from rtcrypto.report.model import MINUTE_MS
from rtcrypto.review import ReviewRequestError, parse_request

NOW_MS = int(datetime(2024, 10, 28, 13, 0, tzinfo=UTC).timestamp() * 1000)
CLOCK = ReviewClock(NOW_MS, 123, "simulator", "feed clock: test", speed=60.0)
SETTINGS = Settings(symbols=["BTCUSD", "ETHUSD"], trader_symbol="BTCUSD", report_durations="feed")


def parse(**values: str | None) -> object:
    arguments = {"since": None, "until": None, "symbol": None, "mode": None, **values}
    return parse_request(SETTINGS, None, clock=CLOCK, **arguments)


def test_defaults_are_the_last_hour_of_the_traders_symbol_in_every_mode() -> None:
    request = parse()
    assert (request.start_ms, request.end_ms) == (NOW_MS - 60 * MINUTE_MS, NOW_MS)
    assert request.symbol == "BTCUSD" and request.mode is None and request.live
    assert request.span.clock.forecast_offset_ms == 123


def test_a_past_iso_range_is_not_live_and_a_symbol_is_case_insensitive() -> None:
    request = parse(
        since="2024-10-28T10:00Z", until="2024-10-28T11:00Z", symbol="ethusd", mode="paper"
    )
    assert request.end_ms - request.start_ms == 60 * MINUTE_MS
    assert (request.symbol, request.mode, request.live) == ("ETHUSD", "paper", False)


def test_wall_time_durations_are_scaled_by_the_replay_speed() -> None:
    settings = SETTINGS.model_copy(update={"report_durations": "wall"})
    request = parse_request(
        settings, None, clock=CLOCK, since="1h", until="now", symbol=None, mode=None
    )
    assert request.end_ms - request.start_ms == 60 * 60 * MINUTE_MS
    assert "durations in wall time x60" in request.span.description


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"symbol": "DOGEUSD"}, "unknown symbol 'DOGEUSD': this platform streams BTCUSD, ETHUSD"),
        ({"mode": "demo"}, "unknown mode 'demo': use one of all, live, paper, sandbox"),
        ({"since": "yesterday"}, "since/until: cannot read the time 'yesterday'"),
        ({"since": "2024-10-28T12:00Z", "until": "2024-10-28T11:00Z"}, "the range is empty"),
        ({"since": "40d"}, "the range is longer than 31 days (RTC_REVIEW_MAX_RANGE_DAYS)"),
        ({"symbol": "B" * 65}, "symbol must be at most 64 printable ASCII characters"),
        ({"until": "now\n"}, None),  # surrounding whitespace is trimmed: valid
        ({"mode": "pa\x00per"}, "mode must be at most 64 printable ASCII characters"),
    ],
)
def test_bad_parameters_get_a_message_naming_them(
    values: dict[str, str], message: str | None
) -> None:
    if message is None:
        parse(**values)
        return
    with pytest.raises(ReviewRequestError) as raised:
        parse(**values)
    assert message in str(raised.value)


@given(
    since=st.none() | st.text(max_size=80),
    until=st.none() | st.text(max_size=80),
    symbol=st.none() | st.text(max_size=30),
    mode=st.none() | st.text(max_size=12),
)
def test_any_text_is_a_request_or_a_review_request_error(
    since: str | None, until: str | None, symbol: str | None, mode: str | None
) -> None:
    try:
        request = parse(since=since, until=until, symbol=symbol, mode=mode)
    except ReviewRequestError as error:
        assert str(error)
    else:
        assert 0 < request.end_ms - request.start_ms <= 31 * 1440 * MINUTE_MS
        assert request.symbol in ("BTCUSD", "ETHUSD")
