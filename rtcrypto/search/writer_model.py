"""The search writer's value types: a document as queued and spooled, the writer's counters,
which refusals are retried, and how a spool file's lines read back (rtcrypto/search/writer.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from rtcrypto.search.documents import SearchAction
from rtcrypto.search.spool_files import spool_line

SPOOL_PREFIX = "spool-"
SPOOL_SUFFIX = ".jsonl"
DEAD_LETTER_FILE = "dead-letter.jsonl"
LOCK_FILE = ".lock"
SPOOL_FILE_MAX_DOCS = 20_000  # then a new spool file starts (re-sent one file at a time)
# Refused for a reason that is not the document's: configuration, overload, a missing index.
RETRYABLE_STATUSES = frozenset({401, 403, 404, 408, 429})


class SpoolInUseError(RuntimeError):
    """Another live writer holds the same spool folder."""


class WriterClosedError(RuntimeError):
    """``add`` after ``close``."""


class QueuedDoc(NamedTuple):
    """A document ready to send: its index, ``_id`` and ``_source`` as JSON bytes."""

    index_name: str
    doc_id: str
    body: bytes


@dataclass(frozen=True)
class WriterStats:
    """Counters since the writer started (documents), for heartbeats and logs."""

    indexed: int  # acknowledged by Elasticsearch, re-sent spool included
    spooled: int  # written to the spool (each time: a document spooled twice counts twice)
    resent: int  # spooled documents acknowledged later
    dead: int  # refused for good, in the dead-letter file
    buffered: int  # in memory now
    pending_spool: int  # in spool files now
    bulk_requests: int
    failed_requests: int  # bulk requests that did not reach Elasticsearch or were refused whole
    last_error: str | None
    spool_bytes: int = 0  # size of the spool files now
    alerts: tuple[str, ...] = ()  # spool full, credentials refused (rtcrypto/search/spool_guard.py)


def is_retryable(status: int | None) -> bool:
    """True if a document refused with ``status`` may succeed later unchanged."""
    if status is None or status == 0:
        return True
    return status in RETRYABLE_STATUSES or status >= 500


def queued_doc(action: SearchAction) -> QueuedDoc:
    """The document of ``action`` with its source serialised once."""
    return QueuedDoc(action.index, action.id, orjson.dumps(action.source))


def doc_spool_line(doc: QueuedDoc) -> bytes:
    return spool_line(doc.index_name, doc.doc_id, doc.body)


def bulk_op(doc: QueuedDoc) -> tuple[dict[str, Any], bytes]:
    # The body is already JSON: the client forwards bytes as they are.
    return {"index": {"_index": doc.index_name, "_id": doc.doc_id}}, doc.body


def read_spool_lines(lines: list[bytes]) -> Iterator[tuple[int, QueuedDoc | Exception, bytes]]:
    """``(line number, document or the error that made it unreadable, raw line)`` of each
    non-empty spool line, in file order."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
            yield (
                number,
                QueuedDoc(record["_index"], record["_id"], orjson.dumps(record["_source"])),
                line,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError) as error:
            yield number, error, line
