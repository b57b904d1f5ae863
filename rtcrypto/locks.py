"""One blocking, exclusive file lock between processes (``flock``), for short critical sections.

Used where two processes may write the same state at once: history imports (the manifest), the
forecast publish (the current-version pointer) and the stack's starters. The lock file is created
(with its folder) when missing and left in place; the lock goes with the process if it dies.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_file_lock(path: Path) -> Iterator[None]:
    """Hold ``path`` locked exclusively (blocks until free) for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
