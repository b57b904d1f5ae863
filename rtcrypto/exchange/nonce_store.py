"""Gemini nonces that survive a restart and a clock stepped back.

Gemini refuses a nonce not greater than the last one it accepted for the key (``InvalidNonce``).
:class:`PersistentNonceSource` keeps the last nonce handed out in a small file (next to the
trader's journal) and hands out ``max(clock ms, last + 1)``: a process restarted after the clock
went back still starts above every nonce it sent before.

The file holds one number, zero-padded to a fixed width and rewritten in place (one 21-byte
write: no torn length), ``fsync``'d before the nonce is used. Every update holds ``flock`` on the
file, so two processes using the same key (the trader, a CLI call) stay in order, and a lock
serialises threads of one process.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

WIDTH = 20  # digits: epoch ms need 13, a signed 64-bit long 19


class NonceFileError(ValueError):
    """The nonce file cannot be used; the message names the file."""


class PersistentNonceSource:
    """Strictly increasing nonces persisted at ``path``; callable like ``signing.NonceSource``."""

    def __init__(self, path: Path, clock_ms: Callable[[], int] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._lock = threading.Lock()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self._last = self._read_locked()
        self._warned = False

    def _read(self) -> int:
        raw = os.pread(self._fd, WIDTH + 1, 0)
        text = raw.decode("ascii", errors="replace").strip()
        if not text:
            return 0
        if not text.isdigit():
            raise NonceFileError(
                f"nonce file {self.path} is corrupt ({text[:30]!r}): delete it only if the clock "
                "is not behind the last nonce sent with this API key"
            )
        return int(text)

    def _read_locked(self) -> int:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            return self._read()
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def __call__(self) -> int:
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                stored = self._read()  # another process may have moved it on
                nonce = max(self._clock_ms(), stored + 1, self._last + 1)
                written = os.pwrite(self._fd, f"{nonce:0{WIDTH}d}\n".encode("ascii"), 0)
                if written != WIDTH + 1:
                    raise NonceFileError(f"nonce file {self.path}: short write ({written} bytes)")
                os.fsync(self._fd)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            if not self._warned and nonce > self._clock_ms() + 60_000:
                self._warned = True  # once: every call runs ahead until the clock catches up
                log.warning("nonce %d is over a minute ahead of the clock: it went back", nonce)
            self._last = nonce
            return nonce

    @property
    def last(self) -> int:
        """The last nonce handed out or read from the file (0 for a new file)."""
        return self._last

    def close(self) -> None:
        os.close(self._fd)
