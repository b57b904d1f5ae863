"""The published forecast as the trader sees it: side per minute, hot-reloaded on a new version.

The trader polls the ``current`` pointer (cheap: one small file) every
``forecast_reload_interval_s``; when it names a new version, the new forecast is loaded and
swapped in between two decisions, without a restart. A broken new version is logged and the old
one kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from rtcrypto.forecast.publish import NoCurrentForecastError, current_version, load_current
from rtcrypto.trading.strategy import Side

log = logging.getLogger(__name__)

MINUTE_MS = 60_000


class ForecastSides:
    """Sides of one forecast version, looked up by minute (epoch ms, UTC)."""

    def __init__(self, version: str, forecast: pd.DataFrame) -> None:
        ds = pd.to_datetime(forecast["ds"], utc=True)
        self.version = version
        self.frame = forecast
        self.minutes_ms = (ds.astype("int64") // 1_000_000).to_numpy(dtype=np.int64)
        self.sides = forecast["side"].astype(str).to_numpy()
        order = np.argsort(self.minutes_ms, kind="stable")
        self.minutes_ms, self.sides = self.minutes_ms[order], self.sides[order]

    @property
    def first_ms(self) -> int | None:
        return int(self.minutes_ms[0]) if len(self.minutes_ms) else None

    @property
    def last_ms(self) -> int | None:
        return int(self.minutes_ms[-1]) if len(self.minutes_ms) else None

    def side_at(self, ts_ms: int) -> Side | None:
        """The side of the minute holding ``ts_ms``; None if the forecast does not cover it."""
        minute = ts_ms - ts_ms % MINUTE_MS
        index = int(np.searchsorted(self.minutes_ms, minute))
        if index < len(self.minutes_ms) and self.minutes_ms[index] == minute:
            return Side(self.sides[index])
        return None


class ForecastSource:
    """The current forecast, reloaded when the pointer moves."""

    def __init__(
        self,
        forecast_dir: Path,
        reload_interval_s: float,
        clock_s: Callable[[], float],
    ) -> None:
        self.forecast_dir = Path(forecast_dir)
        self.reload_interval_s = reload_interval_s
        self._clock_s = clock_s
        self._checked_at: float | None = None
        self.current: ForecastSides | None = None
        self.reloads = 0

    @property
    def version(self) -> str | None:
        return self.current.version if self.current else None

    def refresh(self, *, force: bool = False) -> bool:
        """Load a newer current version if the interval has passed; True if it changed."""
        now = self._clock_s()
        recent = self._checked_at is not None and now - self._checked_at < self.reload_interval_s
        if recent and not force:
            return False
        self._checked_at = now
        version = current_version(self.forecast_dir)
        if version is None or version == self.version:
            return False
        try:
            loaded = load_current(self.forecast_dir)
            sides = ForecastSides(loaded.version, loaded.forecast)
        except NoCurrentForecastError:
            return False
        except Exception as error:  # a half-written or broken version must not stop trading
            log.error(
                "forecast version=%s could not be loaded, keeping %s: %s",
                version,
                self.version,
                error,
            )
            return False
        previous = self.version
        self.current = sides
        self.reloads += 1
        log.info(
            "forecast loaded version=%s previous=%s minutes=%d first=%s last=%s",
            sides.version,
            previous,
            len(sides.minutes_ms),
            pd.Timestamp(sides.first_ms, unit="ms", tz="UTC") if sides.first_ms else None,
            pd.Timestamp(sides.last_ms, unit="ms", tz="UTC") if sides.last_ms else None,
        )
        return True

    def side_at(self, ts_ms: int) -> Side | None:
        return self.current.side_at(ts_ms) if self.current else None
