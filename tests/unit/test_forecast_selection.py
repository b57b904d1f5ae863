"""The retrain's source rule (``rtcrypto.forecast.selection``): pure on minute arrays, then on the
real files `rtc up` imports (../shared/data/minute) in a scratch history store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcrypto.forecast.selection import (
    MINUTE_MS,
    NoSourceQualifies,
    UnknownSourceError,
    best_coverage,
    holdout_days_for,
    latest_full_window,
    load_minute_times,
    select_source,
    select_training_window,
)
from rtcrypto.history import import_file
from rtcrypto.platform.bootstrap import shared_minute_files

DAY_MS = 86_400_000
T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC, a minute boundary


def days_of_minutes(first_day: float, days: float) -> np.ndarray:
    start = T0 + int(first_day * DAY_MS)
    return np.arange(start, start + int(days * DAY_MS), MINUTE_MS, dtype=np.int64)


def pick(times: dict[str, np.ndarray], **kwargs: object) -> str:
    arguments = {
        "training_days": 10,
        "holdout_days": 2.0,
        "min_coverage": 0.9,
        "feed_source": "gemini-feed",
        **kwargs,
    }
    return select_source(times, **arguments).source  # type: ignore[arg-type]


def test_holdout_is_the_setting_but_at_most_half_the_window() -> None:
    assert holdout_days_for(30, 7.0) == 7.0
    assert holdout_days_for(4, 7.0) == 2.0


def test_a_contiguous_source_gives_its_last_window() -> None:
    minutes = days_of_minutes(0, 12)
    window = latest_full_window(minutes, 10, 2.0, 0.9)
    assert window is not None
    assert window.end_ms == int(minutes[-1]) + MINUTE_MS
    assert window.start_ms == window.end_ms - 10 * DAY_MS
    assert window.holdout_start_ms == window.end_ms - 2 * DAY_MS
    assert window.minutes_present == 10 * 1440


def test_too_short_and_too_holey_sources_have_no_full_window() -> None:
    assert latest_full_window(days_of_minutes(0, 8.5), 10, 2.0, 0.9) is None  # 81 %
    assert (
        latest_full_window(np.array([T0 + i * MINUTE_MS for i in range(10)]), 2, 1.0, 0.9) is None
    )
    holey = np.concatenate([days_of_minutes(0, 4), days_of_minutes(6, 4)])  # 20 % missing
    assert latest_full_window(holey, 10, 2.0, 0.9) is None
    assert latest_full_window(holey, 10, 2.0, 0.75) is not None


def test_a_short_halt_does_not_disqualify_but_an_empty_holdout_does() -> None:
    halted = days_of_minutes(0, 12)
    halted = halted[(halted < T0 + 5 * DAY_MS) | (halted >= T0 + 5 * DAY_MS + 434 * MINUTE_MS)]
    assert latest_full_window(halted, 10, 2.0, 0.9) is not None
    # training is full, but the held-out part has only one day of two: 50 % < 90 %
    late = np.concatenate([days_of_minutes(0, 11), days_of_minutes(12, 1)])
    window = latest_full_window(late, 10, 2.0, 0.9)
    assert window is not None and window.end_ms == T0 + 11 * DAY_MS  # the end before the gap
    assert best_coverage(np.array([T0]), 10, 2.0)[1] == pytest.approx(1 / 2880)


def test_the_latest_full_window_is_chosen_not_the_latest_minute() -> None:
    # a full old stretch, then a few scattered minutes much later
    minutes = np.concatenate([days_of_minutes(0, 11), days_of_minutes(40, 0.01)])
    window = latest_full_window(minutes, 10, 2.0, 0.9)
    assert window is not None and window.end_ms == T0 + 11 * DAY_MS


def test_rule_order_feed_then_newest_full_window_never_too_short() -> None:
    old_full = days_of_minutes(0, 12)
    newer_full = days_of_minutes(100, 11)
    newest_short = days_of_minutes(200, 10 / 1440)  # 10 minutes, like the 2025 Bitstamp files
    times = {"binance": old_full, "kaggle": newer_full, "bitstamp": newest_short}
    assert pick(times) == "kaggle"
    assert pick({**times, "gemini-feed": days_of_minutes(300, 5)}) == "kaggle"  # feed too short
    assert pick({**times, "gemini-feed": days_of_minutes(50, 10)}) == "gemini-feed"  # older, full
    assert pick(times, forced="binance") == "binance"
    tie = {"b": days_of_minutes(0, 12), "a": days_of_minutes(0, 12)}
    assert pick(tie) == "a"


def test_nothing_qualifies_names_every_source_and_how_close_it_came() -> None:
    times = {"bitstamp": days_of_minutes(200, 10 / 1440), "kaggle_bitstamp": days_of_minutes(0, 7)}
    with pytest.raises(NoSourceQualifies) as raised:
        pick(times)
    message = str(raised.value)
    assert "bitstamp: 10 minutes" in message
    assert "kaggle_bitstamp: 10,080 minutes" in message
    assert "full 10-day window (8 training + 2 held-out days" in message
    with pytest.raises(NoSourceQualifies, match="forced-by-test"):
        pick(times, forced="kaggle_bitstamp", forced_by="forced-by-test")
    with pytest.raises(NoSourceQualifies, match="nothing imported"):
        pick({})


def test_an_unknown_forced_source_is_a_configuration_error() -> None:
    with pytest.raises(UnknownSourceError, match="RTC_FORECAST_SOURCE names source 'nope'"):
        pick({"binance": days_of_minutes(0, 12)}, forced="nope")
    assert pick({"binance": days_of_minutes(0, 12)}, forced="  ") == "binance"  # blank: unset


def test_bad_rule_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="min_coverage"):
        latest_full_window(days_of_minutes(0, 1), 10, 2.0, 0.0)
    with pytest.raises(ValueError, match="holdout_days"):
        latest_full_window(days_of_minutes(0, 1), 2, 2.0, 0.9)


@st.composite
def minute_sets(draw: st.DrawFn) -> list[int]:
    """Timestamps (epoch ms, any ms within a minute, duplicate minutes too) scattered over five
    days, sometimes with a long contiguous stretch, where windows can be full."""
    count = draw(st.integers(0, 600))
    present = draw(st.lists(st.integers(0, 5 * 1440 - 1), min_size=count, max_size=count))
    if draw(st.booleans()):
        stretch = draw(st.integers(0, 3 * 1440))
        present += range(stretch, stretch + draw(st.integers(1, 4400)))
    within_ms = draw(st.lists(st.integers(0, MINUTE_MS - 1), min_size=1, max_size=5))
    return [T0 + m * MINUTE_MS + within_ms[i % len(within_ms)] for i, m in enumerate(present)]


def test_latest_full_window_matches_a_brute_force_count() -> None:
    """Random minute sets against a direct count at every candidate end: the same end and
    counts, or None when no window is full (and both outcomes are well exercised)."""
    outcomes = {"full": 0, "none": 0}

    @settings(max_examples=200, deadline=None, derandomize=True, database=None)
    @given(
        ts_ms=minute_sets(),
        window_days=st.sampled_from([1.0, 2.0, 3.0]),
        coverage=st.one_of(st.floats(0.9, 1.0), st.floats(0.001, 1.0), st.floats(0.001, 0.02)),
    )
    def check(ts_ms: list[int], window_days: float, coverage: float) -> None:
        holdout_days = window_days / 2
        found = latest_full_window(ts_ms, window_days, holdout_days, coverage)
        minutes = np.array(sorted({t - t % MINUTE_MS for t in ts_ms}), dtype=np.int64)
        window_ms, holdout_ms = int(window_days * DAY_MS), int(holdout_days * DAY_MS)
        need_training = max(1, int(np.ceil(coverage * (window_ms - holdout_ms) / MINUTE_MS - 1e-9)))
        need_holdout = max(1, int(np.ceil(coverage * holdout_ms / MINUTE_MS - 1e-9)))
        expected = None
        for minute in minutes[::-1]:
            end = int(minute) + MINUTE_MS
            training = int(np.sum((minutes >= end - window_ms) & (minutes < end - holdout_ms)))
            holdout = int(np.sum((minutes >= end - holdout_ms) & (minutes < end)))
            if training >= need_training and holdout >= need_holdout:
                expected = (end - window_ms, end, end - holdout_ms, training, holdout)
                break
        outcomes["none" if expected is None else "full"] += 1
        assert found is None if expected is None else found is not None
        if found is not None:
            assert expected == (
                found.start_ms,
                found.end_ms,
                found.holdout_start_ms,
                found.training_minutes_present,
                found.holdout_minutes_present,
            )

    check()
    total = outcomes["full"] + outcomes["none"]
    assert min(outcomes.values()) > total // 10, outcomes


@pytest.fixture(scope="module")
def imported_like_rtc_up(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The history `rtc up` imports: every file of ../shared/data/minute, default sources."""
    history_dir = tmp_path_factory.mktemp("history")
    for path in shared_minute_files():
        import_file(path, history_dir=history_dir)
    return history_dir


def test_on_what_rtc_up_imports_the_rule_picks_binance_never_bitstamp(
    imported_like_rtc_up: Path,
) -> None:
    times = load_minute_times(imported_like_rtc_up)
    assert set(times) == {"binance", "bitstamp", "kaggle_bitstamp"}
    assert len(times["bitstamp"]) == 10
    choice = select_source(
        times, training_days=30, holdout_days=7.0, min_coverage=0.9, feed_source="gemini-feed"
    )
    assert choice.source == "binance"
    end = np.datetime64("2024-11-04T20:20", "ms").astype(np.int64)
    assert choice.window.end_ms == end  # the minute after the newest Binance minute
    assert choice.window.minutes_present == 30 * 1440  # that segment has no gap
    assert choice.to_dict()["start"] == "2024-10-05T20:20:00+00:00"
    with pytest.raises(NoSourceQualifies, match="bitstamp: 10 minutes"):
        select_source(
            times,
            training_days=30,
            holdout_days=7.0,
            min_coverage=0.9,
            feed_source="gemini-feed",
            forced="bitstamp",
        )


def test_a_replay_never_trains_on_minutes_the_trader_has_not_reached(
    imported_like_rtc_up: Path,
) -> None:
    """`rtc up` replays binance from 2024-10-28: a retrain at replayed 02:00 ends there."""
    until = int(np.datetime64("2024-10-28T02:00", "ms").astype(np.int64))
    choice = select_training_window(
        training_days=21, history_dir=imported_like_rtc_up, until_ms=until
    )
    assert choice.source == "binance"
    assert choice.window.end_ms == until  # the minute before the trader's clock is the last one
    assert choice.to_dict()["start"] == "2024-10-07T02:00:00+00:00"
    # 30 days do not fit in the 27 days of the October segment before that clock: the newest
    # full window is then the one that ends with the Feb-Mar 2024 segment, never a later minute.
    older = select_training_window(
        training_days=30, history_dir=imported_like_rtc_up, until_ms=until
    )
    assert older.window.end_ms == int(np.datetime64("2024-03-17T20:20", "ms").astype(np.int64))
