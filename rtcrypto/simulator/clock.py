"""The simulated exchange clock, shared by every client of one simulator (pure but for ``wall``)."""

from __future__ import annotations

import time
from collections.abc import Callable


class SimulatedClock:
    """Simulated epoch milliseconds derived from wall-clock time.

    - Before :meth:`start`: frozen at ``origin_ms`` (the capture's first receive time).
    - ``speed > 0``: ``origin_ms + wall seconds since start x speed x 1000``.
    - ``speed == 0`` (as fast as possible): the time of the last replayed message
      (:meth:`advance_to`); after :meth:`run_free` (the capture ended) it runs at 1x wall speed
      from there, so heartbeats keep advancing and downstream windows can close.
    """

    def __init__(
        self, origin_ms: int, speed: float, wall: Callable[[], float] = time.monotonic
    ) -> None:
        if speed < 0:
            raise ValueError(f"speed must be >= 0, got {speed}")
        self.origin_ms = origin_ms
        self.speed = speed
        self._wall = wall
        self._wall_origin: float | None = None
        self._anchor_ms = origin_ms  # speed 0: last replayed time
        self._free_since: float | None = None

    @property
    def started(self) -> bool:
        return self._wall_origin is not None

    def start(self) -> None:
        if self._wall_origin is None:
            self._wall_origin = self._wall()

    def now_ms(self) -> int:
        """The current simulated time in epoch milliseconds."""
        if self._wall_origin is None:
            return self.origin_ms
        if self.speed > 0:
            return self.origin_ms + int((self._wall() - self._wall_origin) * 1000 * self.speed)
        if self._free_since is not None:
            return self._anchor_ms + int((self._wall() - self._free_since) * 1000)
        return self._anchor_ms

    def advance_to(self, ts_ms: int) -> None:
        """Speed 0: the replay reached ``ts_ms`` (no effect at other speeds)."""
        if ts_ms > self._anchor_ms:
            self._anchor_ms = ts_ms

    def run_free(self) -> None:
        """Speed 0: the replay is over; from now on advance at wall speed."""
        if self.speed == 0 and self._free_since is None:
            self._free_since = self._wall()

    def jump_to(self, ts_ms: int) -> None:
        """Resume from ``ts_ms`` now (an exchange halt was skipped): the clock reads ``ts_ms``
        at this wall instant and runs on from there at its speed. Never moves backwards."""
        ts_ms = max(ts_ms, self.now_ms())
        self.origin_ms = ts_ms
        self._anchor_ms = ts_ms
        if self._wall_origin is not None:
            self._wall_origin = self._wall()
        self._free_since = None

    def wall_delay_s(self, ts_ms: int) -> float:
        """Wall seconds until the simulated clock reaches ``ts_ms`` (0 if reached or speed 0)."""
        if self.speed == 0 or self._wall_origin is None:
            return 0.0
        return max(0.0, (ts_ms - self.now_ms()) / 1000 / self.speed)
