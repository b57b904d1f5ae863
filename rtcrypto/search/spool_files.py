"""File helpers of the search writer's spool and dead-letter files (rtcrypto/search/writer.py).

Appends are fsync'ed (and the folder too when a file is new), rewrites are atomic (temporary
file, fsync, rename), so a crash leaves either the old or the new content, never a mix.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson


def spool_line(index_name: str, doc_id: str, body: bytes) -> bytes:
    """One spool line: ``{"_index", "_id", "_source"}`` with the body as it is (already JSON)."""
    record = {"_index": index_name, "_id": doc_id, "_source": orjson.Fragment(body)}
    return orjson.dumps(record) + b"\n"


def dead_letter_line(**fields: Any) -> bytes:
    """One dead-letter line: ``ts_ms`` (now) and ``fields`` (reason, the document or raw text)."""
    return orjson.dumps({"ts_ms": time.time_ns() // 1_000_000, **fields}) + b"\n"


def fsync_dir(folder: Path) -> None:
    """Make a folder's entries (a new or renamed file) survive a crash."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def append_fsynced(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` and fsync it (and its folder when the file is new)."""
    created = not path.exists()
    with path.open("ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    if created:
        fsync_dir(path.parent)  # the new file's name must survive a crash too


def rewrite_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a temporary file, fsync'ed, renamed over it."""
    temporary = path.with_suffix(".tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_dir(path.parent)


def count_lines(path: Path) -> int:
    """Non-empty lines of a file."""
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def bulk_reason(error: object) -> str:
    """A one-line reason from a bulk item's ``error`` (a dict from Elasticsearch, or text)."""
    if isinstance(error, dict):
        kind = error.get("type", "error")
        reason = error.get("reason", "")
        caused = error.get("caused_by")
        if isinstance(caused, dict) and caused.get("reason"):
            reason = f"{reason} (caused by {caused.get('type')}: {caused.get('reason')})"
        return f"{kind}: {reason}"
    return str(error)


def iter_dead_letters(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a dead-letter file (for tools and tests)."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                yield orjson.loads(line)
