"""The feed clock: extrapolation between reads, speed, resync, monotonicity, outages, errors."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcrypto.config import Settings
from rtcrypto.exchange.feedclock import (
    ClockState,
    FeedClock,
    FeedClockError,
    SimulatorTime,
    extrapolate_ms,
    feed_now_ms,
    parse_status,
)
from rtcrypto.report.clock import review_clock
from rtcrypto.trader.service import TraderConfigError, forecast_offset_ms, start_feed_clock
from tests.helpers import free_port

T_HIST = 1_730_120_400_000  # 2024-10-28 13:00 UTC


def status(sim_ms: int, speed: float = 60.0, **extra: Any) -> dict[str, Any]:
    return {"simulated_time_ms": sim_ms, "speed": speed, "started": True, "shift_ms": 0, **extra}


class FakeSimulator:
    """A scripted ``/_sim/status`` and a hand-moved monotonic clock."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body: dict[str, Any] | Exception = body
        self.wall_s = 100.0
        self.reads = 0

    def read(self) -> Any:
        self.reads += 1
        if isinstance(self.body, Exception):
            raise self.body
        return dict(self.body)

    def clock(self, resync_s: float = 5.0) -> FeedClock:
        return FeedClock(
            self.read,
            resync_s=resync_s,
            url="http://sim/_sim/status",
            monotonic=lambda: self.wall_s,
        )


def test_extrapolates_at_the_replays_speed_between_reads() -> None:
    sim = FakeSimulator(status(T_HIST, speed=60))
    clock = sim.clock(resync_s=1000).start()
    assert clock.now_ms() == T_HIST
    sim.wall_s += 1.5
    assert clock.now_ms() == T_HIST + 90_000  # 1.5 wall s at 60x = 90 simulated s
    sim.wall_s += 10
    assert clock.now_ms() == T_HIST + 690_000
    assert sim.reads == 1, "no read before the resync interval"


def test_a_replay_not_started_holds_still_and_speed_zero_moves_only_when_done() -> None:
    waiting = SimulatorTime(T_HIST, 60.0, started=False, done=False, shift_ms=0)
    assert extrapolate_ms(waiting, 0.0, 30.0) == T_HIST
    racing = SimulatorTime(T_HIST, 0.0, started=True, done=False, shift_ms=0)
    assert extrapolate_ms(racing, 0.0, 30.0) == T_HIST
    over = SimulatorTime(T_HIST, 0.0, started=True, done=True, shift_ms=0)
    assert extrapolate_ms(over, 0.0, 2.0) == T_HIST + 2000  # runs free at 1x


def test_resyncs_every_interval_and_never_goes_back() -> None:
    sim = FakeSimulator(status(T_HIST, speed=60))
    clock = sim.clock(resync_s=5).start()
    sim.wall_s += 4
    assert clock.now_ms() == T_HIST + 240_000  # handed out: the clock cannot go below it now
    sim.wall_s += 1  # resync due; the simulator lags (a busy replay): +200 s, not +300 s
    sim.body = status(T_HIST + 200_000, speed=60)
    assert clock.now_ms() == T_HIST + 240_000, "held, not moved back"
    assert sim.reads == 2
    sim.wall_s += 0.5  # the new line (+200 s + 30 s) is still behind what was handed out
    assert clock.now_ms() == T_HIST + 240_000
    sim.wall_s += 1.5  # +200 s + 120 s: ahead again, the clock moves on from the new reading
    assert clock.now_ms() == T_HIST + 320_000
    sim.wall_s += 3  # 5 s after the last read: read again; a jump forward (a halt) is taken
    sim.body = status(T_HIST + 3_600_000, speed=60)
    assert clock.now_ms() == T_HIST + 3_600_000
    assert sim.reads == 3


def test_an_outage_keeps_extrapolating_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    sim = FakeSimulator(status(T_HIST, speed=60))
    clock = sim.clock(resync_s=1).start()
    sim.body = ConnectionError("connection refused")
    caplog.set_level(logging.INFO, logger="rtcrypto.exchange.feedclock")
    times = []
    for _ in range(5):
        sim.wall_s += 2
        times.append(clock.now_ms())
    assert times == [T_HIST + 120_000 * (i + 1) for i in range(5)]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "does not answer" in warnings[0].getMessage()
    assert sim.reads == 6, "it keeps trying"
    sim.body = status(T_HIST + 600_000, speed=60)
    sim.wall_s += 2
    assert clock.now_ms() == T_HIST + 600_000
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_start_without_a_simulator_names_the_setting_and_rtc_up() -> None:
    sim = FakeSimulator(status(T_HIST))
    sim.body = ConnectionError("connection refused")
    with pytest.raises(FeedClockError) as raised:
        sim.clock().start()
    message = str(raised.value)
    assert "RTC_SIMULATOR_PORT" in message and "`rtc up`" in message and "RTC_FEED=live" in message


def test_the_trader_refuses_to_start_without_the_simulator(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(home=tmp_path, simulator_port=free_port(), feed_clock_timeout_s=1)
    with pytest.raises(TraderConfigError, match="RTC_SIMULATOR_PORT"):
        start_feed_clock(settings)
    with pytest.raises(FeedClockError, match="rtc up"):
        feed_now_ms(settings)
    assert forecast_offset_ms(settings.model_copy(update={"trader_forecast_offset_ms": 7})) == 7


def test_the_live_feed_is_the_wall_clock(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(home=tmp_path, feed="live")
    clock = FeedClock.from_settings(settings).start()
    assert clock.source == "wall" and clock.shift_ms == 0
    import time

    assert abs(clock.now_ms() - time.time() * 1000) < 5_000
    assert "wall clock" in clock.describe()


def test_the_review_without_simulator_nor_search_says_it_used_the_wall_clock(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    settings = Settings(home=tmp_path, simulator_port=port, feed_clock_timeout_s=1)
    clock = review_clock(settings, None)
    assert clock.source == "wall" and clock.forecast_offset_ms == 0
    assert f"does not answer at http://127.0.0.1:{port}/_sim/status" in clock.description


def test_descriptions_name_the_replay_kind_and_speed() -> None:
    sim = FakeSimulator(status(T_HIST, speed=60))
    assert sim.clock().start().describe() == (
        "simulator, historical replay at 60x, now 2024-10-28 13:00 UTC"
    )
    shifted = SimulatorTime(T_HIST, 1.0, True, False, shift_ms=90 * 60_000)
    assert shifted.describe() == "capture replay shifted to now by 90 min at 1x"
    history = parse_status(status(T_HIST, history={"source": "binance"}))
    assert history.describe() == "historical replay of binance at 60x"


# --- properties (hypothesis) ---------------------------------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, -1, 1, T_HIST, -T_HIST]),
    st.integers(-(10**15), 10**15),
    st.sampled_from([0.0, -0.5, 60.0, math.inf, -math.inf, math.nan]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "60", "x", "2024-10-28"]),
    st.text(max_size=5),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "speed", "source", "name"]), inner, max_size=2),
    ),
    max_leaves=6,
)


NEAR_MISSES = st.sampled_from([True, False, None, 0.0, 1.0, 60.0, 1.5e12, -1, -0.5, "60", math.nan])
FIELD_VALUES = {  # a valid value of each field
    "simulated_time_ms": st.integers(0, 4 * 10**12),
    "speed": st.one_of(st.sampled_from([0, 1, 60, 0.5]), st.floats(0, 1e6)),
    "shift_ms": st.integers(-(10**12), 10**12),
    "started": st.booleans(),
    "done": st.booleans(),
    "history": st.one_of(
        st.text(max_size=8),
        st.fixed_dictionaries({}, optional={"source": st.text(max_size=8), "name": JSON_VALUES}),
    ),
}


@st.composite
def status_bodies(draw: st.DrawFn) -> Any:
    """Hostile JSON bodies: any JSON value, or an object whose status fields are each valid,
    a near miss (a bool, a float, a string, a negative, NaN), any JSON value, or absent."""
    if draw(st.integers(0, 4)) == 0:
        return draw(JSON_VALUES)
    body: dict[str, Any] = {}
    for name, valid in FIELD_VALUES.items():
        kind = draw(st.sampled_from(["valid", "valid", "near miss", "any", "absent"]))
        if kind != "absent":
            body[name] = draw({"valid": valid, "near miss": NEAR_MISSES, "any": JSON_VALUES}[kind])
    return body


def valid_status(body: Any) -> bool:
    """Independently of ``parse_status``: does ``body`` carry a usable clock reading?"""
    if not isinstance(body, dict):
        return False
    simulated = body.get("simulated_time_ms")
    speed = body.get("speed", 1.0)
    shift = body.get("shift_ms", 0) or 0  # an absent, null or zero shift is no shift
    return (
        type(simulated) is int
        and simulated >= 0
        and type(speed) in (int, float)
        and math.isfinite(speed)
        and speed >= 0
        and type(shift) is int
    )


def test_parse_status_reads_a_status_or_says_what_is_wrong() -> None:
    """Any JSON body: ``parse_status`` raises nothing but a ``ValueError`` with a message, and
    accepts exactly the bodies that carry a valid time, speed and shift, reading them as sent."""
    outcomes = {"accepted": 0, "refused": 0}

    @settings(max_examples=2000, deadline=None, derandomize=True, database=None)
    @given(body=status_bodies())
    def check(body: Any) -> None:
        try:
            reading = parse_status(body)
        except ValueError as error:  # never any other exception
            assert str(error)
            assert not valid_status(body), body
            outcomes["refused"] += 1
            return
        assert valid_status(body), body
        outcomes["accepted"] += 1
        assert reading.simulated_time_ms == body["simulated_time_ms"] >= 0
        assert reading.speed == body.get("speed", 1.0) and math.isfinite(reading.speed)
        assert reading.speed >= 0 and reading.rate >= 0
        assert reading.shift_ms == (body.get("shift_ms") or 0)
        assert reading.started == bool(body.get("started", True))
        assert reading.done == bool(body.get("done", False))
        history = body.get("history")
        if isinstance(history, dict):
            history = history.get("source") or history.get("name")
        assert reading.history == (str(history) if history else None)

    check()
    total = outcomes["accepted"] + outcomes["refused"]
    assert min(outcomes.values()) > total // 10, outcomes  # both kinds are well exercised


READINGS = st.builds(
    SimulatorTime,
    simulated_time_ms=st.integers(T_HIST - 10**7, T_HIST + 10**7),
    speed=st.one_of(st.sampled_from([0.0, 1.0, 60.0]), st.floats(0, 500)),
    started=st.integers(0, 9).map(lambda n: n > 0),  # started 90 % of the time
    done=st.integers(0, 9).map(lambda n: n == 0),  # done 10 % of the time
    shift_ms=st.just(0),
)
STEPS = st.tuples(
    st.one_of(st.sampled_from([0.0, 0.001]), st.floats(0, 30)),  # wall seconds that pass
    st.one_of(st.none(), READINGS),  # a resync with this reading, or an outage (no reading)
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(steps=st.lists(STEPS, min_size=1, max_size=30))
def test_the_clock_never_goes_backwards_and_follows_each_reading(
    steps: list[tuple[float, SimulatorTime | None]],
) -> None:
    """Under any resyncs and outages the clock never goes back, and otherwise it follows the
    newest reading extrapolated to the wall time."""
    wall_s = read_at_s = 0.0
    newest = SimulatorTime(T_HIST, 60.0, True, False, 0)
    state = ClockState.first(newest, wall_s)
    previous = state.now_ms(wall_s)
    assert previous == T_HIST
    for elapsed_s, reading in steps:
        wall_s += elapsed_s
        if reading is not None:
            state.resync(reading, wall_s)
            newest, read_at_s = reading, wall_s
        now = state.now_ms(wall_s)
        assert now >= previous
        assert now == max(previous, extrapolate_ms(newest, read_at_s, wall_s))
        previous = now


def test_record_age_budget_scales_with_the_replay_speed() -> None:
    from rtcrypto.exchange.feedclock import SimulatorTime
    from rtcrypto.trader.service import record_age_budget_ms

    def at(speed: float) -> SimulatorTime:
        return SimulatorTime(0, speed, started=True, done=False, shift_ms=0)

    assert record_age_budget_ms(None, at(60)) is None
    assert record_age_budget_ms(300, None) == 300_000  # the live feed: wall seconds
    assert record_age_budget_ms(300, at(1)) == 300_000
    assert record_age_budget_ms(300, at(0)) == 300_000  # as fast as possible: no scaling
    assert record_age_budget_ms(300, at(0.5)) == 300_000  # slower than real time: never less
    assert record_age_budget_ms(300, at(60)) == 18_000_000  # 300 wall s = 5 replayed hours
