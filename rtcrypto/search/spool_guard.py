"""Bounds and alerts of the search writer's spool (rtcrypto/search/writer.py).

- **Spool cap** (``RTC_SEARCH_SPOOL_MAX_BYTES``): while Elasticsearch is down the spool grows;
  at the cap the oldest spooled documents are kept (they are re-sent first, and a later version
  of a document must not overtake an older one) and every newer document that does not fit is
  handed to the writer's *overflow* handler instead: the trader sends it to the Kafka dead-letter
  topic (``deadletter.v1``, reason ``search spool full``, the document as ``raw``), a writer
  without a handler appends it to its local ``dead-letter.jsonl``. Either way an alert is raised
  (``alerts()``: the trader's heartbeat and ``rtc status`` show it) and logged; it clears when the
  spool has drained empty. Stopping the trader was not chosen: the index is a record of what the
  trader did, not a reason to stop trading, and the dead-lettered documents can be re-indexed.
- **Refused credentials** (401/403 on a bulk request or item): retrying cannot help until
  someone fixes the credentials, so the writer stops retrying, keeps spooling (within the cap)
  and raises an alert, logged once. A restart of the service re-sends the spool.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger(__name__)

AUTH_STATUSES = frozenset({401, 403})
# One spooled/overflowing document: {"_index", "_id", "_source"} (``_source`` as a JSON fragment).
OverflowHandler = Callable[[Sequence[dict[str, Any]]], None]


def fit_under_cap(sizes: Sequence[int], used_bytes: int, max_bytes: int | None) -> int:
    """How many of the leading items of ``sizes`` (bytes each) still fit below ``max_bytes``.

    Pure; ``None`` means no cap. The first item that does not fit ends the run: order is kept.
    """
    if max_bytes is None:
        return len(sizes)
    count = 0
    for size in sizes:
        if used_bytes + size > max_bytes:
            break
        used_bytes += size
        count += 1
    return count


class SpoolGuard:
    """Thread-safe: spool size against the cap, and the writer's alerts."""

    def __init__(self, name: str, max_bytes: int | None, spool_bytes: int = 0) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._spool_bytes = spool_bytes
        self._overflowed = 0  # documents over the cap since the spool was last empty
        self._overflow_target = ""
        self._auth_error: str | None = None

    # --- spool size ------------------------------------------------------------------------------

    @property
    def spool_bytes(self) -> int:
        with self._lock:
            return self._spool_bytes

    def admit(self, sizes: Sequence[int]) -> int:
        """How many of these documents (spool-line sizes) may be spooled; reserves their bytes."""
        with self._lock:
            count = fit_under_cap(sizes, self._spool_bytes, self.max_bytes)
            self._spool_bytes += sum(sizes[:count])
            return count

    def set_spool_bytes(self, spool_bytes: int) -> None:
        """The spool's size after a re-send; an empty spool clears the spool-full alert."""
        with self._lock:
            self._spool_bytes = spool_bytes
            if spool_bytes == 0 and self._overflowed:
                logger.warning(
                    "search writer %s: spool drained; %d documents went to %s while it was full",
                    self.name,
                    self._overflowed,
                    self._overflow_target,
                )
                self._overflowed = 0

    def note_overflow(self, count: int, target: str) -> None:
        with self._lock:
            self._overflowed += count
            self._overflow_target = target
            total = self._overflowed
        logger.error(
            "search writer %s: spool full (cap %s bytes): %d documents sent to %s "
            "(%d since the spool filled)",
            self.name,
            self.max_bytes,
            count,
            target,
            total,
        )

    # --- credentials -----------------------------------------------------------------------------

    @property
    def auth_blocked(self) -> bool:
        with self._lock:
            return self._auth_error is not None

    def note_auth_failure(self, status: int, reason: str) -> None:
        with self._lock:
            first = self._auth_error is None
            self._auth_error = f"status {status}: {reason}"[:300]
        if first:
            logger.error(
                "search writer %s: Elasticsearch refused the credentials (status %d: %s); "
                "retries stopped, documents are spooled; fix the search credentials and restart "
                "the service",
                self.name,
                status,
                reason[:300],
            )

    # --- alerts ----------------------------------------------------------------------------------

    def alerts(self) -> list[str]:
        """Current alert lines (empty when all is well), for heartbeats and ``rtc status``."""
        lines = []
        with self._lock:
            if self._overflowed:
                lines.append(
                    f"search spool full ({self._spool_bytes:,} of {self.max_bytes:,} bytes): "
                    f"{self._overflowed:,} documents sent to {self._overflow_target}"
                )
            if self._auth_error is not None:
                lines.append(
                    f"Elasticsearch refused the credentials ({self._auth_error}); retries "
                    "stopped, documents spooled: fix them and restart the service"
                )
        return lines
