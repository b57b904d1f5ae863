"""The reference time the ingest checks event times against: "now" on the feed's clock.

The live feed's reference is the receive time itself (the wall clock), checked both ways. A
simulator feed runs on the simulator's clock (a history replay is years behind the wall clock):
its reference is the simulator's ``simulated_time_ms`` from ``GET /_sim/status``
(:mod:`rtcrypto.exchange.feedclock`), re-read every ``RTC_FEED_CLOCK_RESYNC_S`` seconds and extrapolated
at the replay's speed in between. Only event times ahead of it by more than the window are
refused (the ingest may lag the simulator's queue; a late event cannot move Spark's watermark),
and such a miss re-reads the simulator at once (at most every ``refresh_min_s``, apart from the
regular re-reads): a speed-0 replay or a halt jumps the simulator's clock further than the
extrapolation can know. Times are epoch milliseconds (UTC).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from rtcrypto.exchange.feedclock import (
    SimulatorTime,
    extrapolate_ms,
    http_status_reader,
    parse_status,
    status_url,
)

if TYPE_CHECKING:
    from rtcrypto.config import Settings

log = logging.getLogger(__name__)


class EventTimeReference(Protocol):
    """The reference time (epoch ms) for a frame received at ``receive_ms``, or None when the
    feed's clock cannot be read (the check is skipped). ``refresh`` asks for a fresh reading
    because an event time missed the window. ``checks_past`` False: only event times ahead of
    the reference are refused."""

    checks_past: bool

    def __call__(self, receive_ms: int, refresh: bool) -> int | None: ...


class SimulatorReference:
    """The simulator's time, read through ``read_status`` (one per reader thread: not shared).

    Only the future side is checked: the simulator's time is that of the newest message it has
    queued, so it bounds every event time from above, while the ingest may lag behind it by
    whatever the queue and the socket hold (hours of feed in a speed-0 replay). An old event
    time cannot move Spark's watermark; a future one can.

    With ``background`` the regular re-reads run in a short-lived thread, so the reader never
    waits for the simulator (busy pushing frames, it may take a while to answer); the first
    reading and a re-read after a miss are taken at once.
    """

    checks_past = False

    def __init__(
        self,
        read_status: Callable[[], Any],
        *,
        resync_s: float = 5.0,
        refresh_min_s: float = 0.25,
        url: str = "",
        monotonic: Callable[[], float] = time.monotonic,
        background: bool = True,
    ) -> None:
        self._read_status = read_status
        self.background = background
        self.resync_s = resync_s
        self.refresh_min_s = refresh_min_s
        self.url = url
        self._monotonic = monotonic
        self._state: tuple[SimulatorTime, float] | None = None  # reading, when (one assignment)
        self._in_flight = threading.Event()  # a background re-read is running
        self._last_attempt_s: float | None = None
        self._last_refresh_s: float | None = None  # the last re-read asked for by a miss
        self._failing = False

    def __call__(self, receive_ms: int, refresh: bool) -> int | None:
        now_s = self._monotonic()
        last, last_refresh = self._last_attempt_s, self._last_refresh_s
        if refresh and (last_refresh is None or now_s - last_refresh >= self.refresh_min_s):
            self._last_refresh_s = now_s
            self._read(now_s)
        elif last is None or now_s - last >= self.resync_s:
            if self._state is None:
                self._read(now_s)  # nothing to check against yet: wait for the first reading
            else:
                self._resync(now_s)
        state = self._state
        if state is None:
            return None
        reading, read_at_s = state
        return extrapolate_ms(reading, read_at_s, now_s)

    def _resync(self, now_s: float) -> None:
        if not self.background:
            self._read(now_s)
            return
        if self._in_flight.is_set():
            return
        self._in_flight.set()
        self._last_attempt_s = now_s

        def read() -> None:
            try:
                self._read(None)
            finally:
                self._in_flight.clear()

        threading.Thread(target=read, name="ingest-simulator-clock", daemon=True).start()

    def _read(self, now_s: float | None) -> None:
        """Read the simulator's status; ``now_s`` None: stamp the reading when it arrives."""
        if now_s is not None:
            self._last_attempt_s = now_s
        try:
            reading = parse_status(self._read_status())
        except Exception as error:  # noqa: BLE001 - any failure: keep the last reading
            if not self._failing:
                self._failing = True
                log.warning(
                    "ingest cannot read the simulator's clock at %s (%s): event times are %s",
                    self.url,
                    error,
                    "checked against its last reading" if self._state else "not checked yet",
                )
            return
        if self._failing:
            log.info("ingest reads the simulator's clock again at %s", self.url)
            self._failing = False
        self._state = (reading, self._monotonic() if now_s is None else now_s)


def event_time_reference(settings: Settings) -> EventTimeReference | None:
    """The reference of ``settings.feed``: None (the receive time) for the live feed, else the
    simulator's clock."""
    from rtcrypto.config import Feed

    if settings.feed is Feed.live:
        return None
    url = status_url(settings)
    reader = http_status_reader(url, settings.feed_clock_timeout_s)
    return SimulatorReference(reader, resync_s=settings.feed_clock_resync_s, url=url)
