"""The feed clock: "now" on the market data's own time, the one clock of trading and review.

- Live feed (``RTC_FEED=live``): the wall clock.
- Simulator feed: the simulator's clock. ``GET /_sim/status`` gives ``simulated_time_ms``,
  ``speed``, ``started`` and ``shift_ms``; between two reads the time is extrapolated locally at
  the replay's speed (``speed`` simulated seconds per wall second; held still before the replay
  starts, and at speed 0 until the replay is over). It is read again every
  ``RTC_FEED_CLOCK_RESYNC_S`` seconds and never goes backwards: a read behind the extrapolation
  holds the clock until the simulator catches up. A history replay runs on the bars' historical
  time (``shift_ms`` 0); a capture replay with ``--shift-to-now`` runs shifted to now
  (``shift_ms`` > 0, which is also how far the feed is ahead of the forecast).

The pure core (:func:`parse_status`, :func:`extrapolate_ms`, :class:`ClockState`) does no I/O;
:class:`FeedClock` adds the HTTP reads; :func:`feed_now_ms` is the one-shot form. If the simulator
does not answer when a :class:`FeedClock` starts, :class:`FeedClockError` names the setting; a
later outage keeps extrapolating and is logged once. Times are epoch milliseconds (UTC).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rtcrypto.config import Settings

log = logging.getLogger(__name__)

WALL = "wall"  # clock sources, as FeedTime.source says
SIMULATOR = "simulator"


class FeedClockError(RuntimeError):
    """The feed's clock cannot be read; the message names what to start or set."""


# --- pure core -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimulatorTime:
    """One reading of the simulator's ``/_sim/status``."""

    simulated_time_ms: int
    speed: float  # simulated seconds per wall second; 0: as fast as the clients read
    started: bool
    done: bool
    shift_ms: int  # how far the replay's clock is ahead of the data's own time
    history: str | None = None  # the history replay's source, when the status names one

    @property
    def rate(self) -> float:
        """Simulated ms per wall ms between two reads: 0 before the start and while a speed-0
        replay runs (its clock jumps with the messages), 1 after a speed-0 replay is over."""
        if not self.started:
            return 0.0
        if self.speed > 0:
            return self.speed
        return 1.0 if self.done else 0.0

    def describe(self) -> str:
        """``historical replay at 60x`` / ``capture replay shifted to now by 1234 min at 1x``."""
        speed = "as fast as possible" if self.speed == 0 else f"at {self.speed:g}x"
        if self.history:
            kind = f"historical replay of {self.history}"
        elif self.shift_ms > 0:
            kind = f"capture replay shifted to now by {self.shift_ms // 60_000} min"
        else:
            kind = "historical replay"
        state = "" if self.started else ", not started yet"
        return f"{kind} {speed}{state}"


def parse_status(body: Any) -> SimulatorTime:
    """The clock fields of a ``/_sim/status`` body; ``ValueError`` saying what is wrong."""
    if not isinstance(body, Mapping):
        raise ValueError(f"the simulator's status is not a JSON object: {type(body).__name__}")
    try:
        simulated = body["simulated_time_ms"]
        speed = body.get("speed", 1.0)
        shift = body.get("shift_ms", 0) or 0
    except KeyError:
        raise ValueError("the simulator's status has no simulated_time_ms") from None
    if isinstance(simulated, bool) or not isinstance(simulated, int) or simulated < 0:
        raise ValueError(f"simulated_time_ms must be epoch ms >= 0, got {simulated!r}")
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not math.isfinite(speed):
        raise ValueError(f"speed must be a finite number, got {speed!r}")
    if speed < 0:
        raise ValueError(f"speed must be >= 0, got {speed!r}")
    if isinstance(shift, bool) or not isinstance(shift, int):
        raise ValueError(f"shift_ms must be an integer, got {shift!r}")
    history = body.get("history")
    if isinstance(history, Mapping):
        history = history.get("source") or history.get("name")
    return SimulatorTime(
        simulated_time_ms=simulated,
        speed=float(speed),
        started=bool(body.get("started", True)),
        done=bool(body.get("done", False)),
        shift_ms=shift,
        history=str(history) if history else None,
    )


def extrapolate_ms(reading: SimulatorTime, read_at_s: float, wall_s: float) -> int:
    """The simulator's time at local monotonic ``wall_s``, from ``reading`` taken at ``read_at_s``."""
    elapsed_s = max(0.0, wall_s - read_at_s)
    return reading.simulated_time_ms + int(elapsed_s * 1000 * reading.rate)


@dataclass(slots=True)
class ClockState:
    """The last reading, when it was taken, and the newest time handed out (monotonic)."""

    reading: SimulatorTime
    read_at_s: float
    last_ms: int

    @classmethod
    def first(cls, reading: SimulatorTime, read_at_s: float) -> ClockState:
        return cls(reading, read_at_s, reading.simulated_time_ms)

    def resync(self, reading: SimulatorTime, read_at_s: float) -> None:
        """Take a newer reading; the clock never goes back (``now_ms`` keeps ``last_ms``)."""
        self.reading = reading
        self.read_at_s = read_at_s

    def now_ms(self, wall_s: float) -> int:
        self.last_ms = max(self.last_ms, extrapolate_ms(self.reading, self.read_at_s, wall_s))
        return self.last_ms


def iso_minute(ts_ms: int) -> str:
    return f"{datetime.fromtimestamp(ts_ms / 1000, UTC):%Y-%m-%d %H:%M} UTC"


# --- HTTP edge -----------------------------------------------------------------------------------


def wall_now_ms() -> int:
    return time.time_ns() // 1_000_000


def status_url(settings: Settings) -> str:
    return f"http://{settings.simulator_host}:{settings.simulator_port}/_sim/status"


def http_status_reader(url: str, timeout_s: float) -> Callable[[], Any]:
    """A function that GETs ``url`` and returns its JSON body (raises on any failure)."""
    import requests

    def read() -> Any:
        response = requests.get(url, timeout=timeout_s)
        response.raise_for_status()
        return response.json()

    return read


def unreachable_message(url: str, error: object) -> str:
    return (
        f"the feed clock cannot read the simulator's time from {url} ({error}). RTC_FEED is "
        "simulator: start the platform with `rtc up` (or the simulator with `rtc simulate`), "
        "check RTC_SIMULATOR_HOST / RTC_SIMULATOR_PORT, or set RTC_FEED=live"
    )


class FeedClock:
    """Now on the feed's clock: the simulator's (synced and extrapolated) or the wall clock.

    ``read_status`` None means the live feed (wall clock). Call :meth:`start` once; then
    :meth:`now_ms` any number of times (it re-reads the simulator every ``resync_s``).
    """

    def __init__(
        self,
        read_status: Callable[[], Any] | None,
        *,
        resync_s: float = 5.0,
        url: str = "",
        monotonic: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = wall_now_ms,
    ) -> None:
        self._read_status = read_status
        self.resync_s = resync_s
        self.url = url
        self._monotonic = monotonic
        self._wall_ms = wall_ms
        self._state: ClockState | None = None
        self._next_sync_s = 0.0
        self._outage: str | None = None  # the error of a failed resync, logged once

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedClock:
        from rtcrypto.config import Feed

        if settings.feed is Feed.live:
            return cls(None)
        url = status_url(settings)
        reader = http_status_reader(url, settings.feed_clock_timeout_s)
        return cls(reader, resync_s=settings.feed_clock_resync_s, url=url)

    @property
    def source(self) -> str:
        return WALL if self._read_status is None else SIMULATOR

    @property
    def reading(self) -> SimulatorTime | None:
        """The latest simulator reading (None on the wall clock or before :meth:`start`)."""
        return None if self._state is None else self._state.reading

    @property
    def shift_ms(self) -> int:
        """How far the feed's clock is ahead of the data's own time (0 on the wall clock)."""
        return 0 if self._state is None else self._state.reading.shift_ms

    def start(self) -> FeedClock:
        """Read the simulator once; :class:`FeedClockError` if it does not answer."""
        if self._read_status is None:
            return self
        try:
            reading = parse_status(self._read_status())
        except Exception as error:  # noqa: BLE001 - any failure: the message says what to do
            raise FeedClockError(unreachable_message(self.url, error)) from None
        now_s = self._monotonic()
        self._state = ClockState.first(reading, now_s)
        self._next_sync_s = now_s + self.resync_s
        log.info("feed clock: %s", self.describe())
        return self

    def now_ms(self) -> int:
        """Epoch ms on the feed's clock; never smaller than a value returned before."""
        if self._read_status is None:
            return self._wall_ms()
        if self._state is None:
            self.start()
        assert self._state is not None
        now_s = self._monotonic()
        if now_s >= self._next_sync_s:
            self._next_sync_s = now_s + self.resync_s
            self._resync(now_s)
        return self._state.now_ms(now_s)

    def _resync(self, now_s: float) -> None:
        assert self._state is not None and self._read_status is not None
        try:
            reading = parse_status(self._read_status())
        except Exception as error:  # noqa: BLE001 - an outage: keep extrapolating
            if self._outage is None:
                self._outage = str(error)
                log.warning(
                    "feed clock: the simulator does not answer at %s (%s); extrapolating from "
                    "its last time at %gx until it does",
                    self.url,
                    error,
                    self._state.reading.rate,
                )
            return
        if self._outage is not None:
            log.info("feed clock: the simulator answers again at %s", self.url)
            self._outage = None
        self._state.resync(reading, now_s)

    def describe(self) -> str:
        """``simulator, historical replay at 60x, now 2024-10-28 13:00 UTC`` or ``wall clock``."""
        if self._read_status is None:
            return f"wall clock (live feed), now {iso_minute(self._wall_ms())}"
        reading = self.reading
        if reading is None:
            return f"simulator at {self.url}, not read yet"
        return f"simulator, {reading.describe()}, now {iso_minute(self.now_ms())}"


def feed_now_ms(settings: Settings) -> int:
    """One read of the feed's clock now (the report, the DAG); :class:`FeedClockError` if the
    simulator feed's simulator does not answer."""
    return FeedClock.from_settings(settings).start().now_ms()
