"""``SearchWriter``: buffered bulk indexing that never loses or doubles a document.

- ``add(action)`` (thread-safe) serialises the document and appends it to an in-memory buffer;
  it blocks only while the buffer holds ``max_buffered`` documents (back-pressure, not loss).
- A background thread sends the buffer with ``elasticsearch.helpers.streaming_bulk`` every
  ``batch_size`` documents or ``flush_interval_s`` seconds. Every action is an ``index`` op with
  the document's deterministic ``_id`` (rtcrypto.search.documents), so a re-send overwrites.
- Elasticsearch unreachable, or a document refused with a retryable status (429, 5xx, 404,
  408): the documents are appended to a spool on disk (JSONL, fsync'ed) under
  ``<spool_dir>/<name>/`` and re-sent later, oldest first, with exponential backoff, until
  acknowledged; then the spool file is removed. While the spool holds anything, new batches are
  appended behind it instead of overtaking it: a later version of a document (an order's final
  status after its submission) is never overwritten by an older one.
- A document refused for good (any other 4xx, e.g. 400 ``mapper_parsing_exception``) goes to
  ``<spool_dir>/<name>/dead-letter.jsonl`` with the status and reason, and is logged.
- The spool is capped (``spool_max_bytes``) and 401/403 stop the retries; both raise an alert
  (``alerts()``): see rtcrypto/search/spool_guard.py for what happens to documents over the cap.
- ``close()`` sends or spools everything still buffered. A writer that starts and finds a spool
  (a crashed run) re-sends it first.

What can still be lost: on SIGKILL or power loss, the documents in memory (at most one flush
interval's worth, up to ``max_buffered``); everything spooled survives. Two writers must not
share a spool folder: a lock file refuses the second (give each its own ``name``).
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple, cast

import elastic_transport
import orjson
from elasticsearch import Elasticsearch, helpers

from rtcrypto.config import Settings, get_settings
from rtcrypto.search.documents import SearchAction
from rtcrypto.search.spool_files import (
    append_fsynced,
    bulk_reason,
    count_lines,
    dead_letter_line,
    fsync_dir,
    rewrite_atomically,
)
from rtcrypto.search.spool_files import iter_dead_letters as iter_dead_letters  # re-exported
from rtcrypto.search.spool_guard import AUTH_STATUSES, OverflowHandler, SpoolGuard
from rtcrypto.search.writer_model import (
    DEAD_LETTER_FILE,
    LOCK_FILE,
    SPOOL_FILE_MAX_DOCS,
    SPOOL_PREFIX,
    SPOOL_SUFFIX,
    QueuedDoc,
    SpoolInUseError,
    WriterClosedError,
    WriterStats,
    bulk_op,
    doc_spool_line,
    is_retryable,
    queued_doc,
    read_spool_lines,
)

logger = logging.getLogger(__name__)


class _Outcome(NamedTuple):
    acked: int
    retry: list[
        QueuedDoc
    ]  # refused for now or never reached Elasticsearch, in their original order
    dead: list[tuple[QueuedDoc, int | None, str]]


class SearchWriter:
    """Buffered, spooling bulk writer (see the module docstring). Use as a context manager."""

    def __init__(
        self,
        client: Elasticsearch,
        *,
        spool_dir: Path,
        name: str = "writer",
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
        max_buffered: int | None = None,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 30.0,
        spool_max_bytes: int | None = None,
        on_overflow: OverflowHandler | None = None,
        start: bool = True,
    ) -> None:
        if batch_size <= 0 or flush_interval_s <= 0:
            raise ValueError("batch_size and flush_interval_s must be > 0")
        self.client = client
        self.name = name
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_buffered = max_buffered or batch_size * 20
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.spool_dir = Path(spool_dir) / name
        self.dead_letter_path = self.spool_dir / DEAD_LETTER_FILE

        self._condition = threading.Condition()
        self._buffer: deque[QueuedDoc] = deque()
        self._added = 0  # documents accepted by add()
        self._handled = 0  # of those: acknowledged, spooled or dead-lettered
        self._flush_requested = False
        self._closing = False
        self._closed = False
        self._thread: threading.Thread | None = None

        # Touched by the background thread only (and by __init__ before it starts).
        self._next_retry = 0.0
        self._retry_delay = retry_initial_s
        self._tail: Path | None = None  # the spool file new batches are appended to
        self._tail_docs = 0
        self._spool_sequence = 0

        self._indexed = self._spooled = self._resent = self._dead = 0
        self._pending_spool = 0
        self._bulk_requests = self._failed_requests = 0
        self._last_error: str | None = None

        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._lock_handle = open(self.spool_dir / LOCK_FILE, "a+")  # noqa: SIM115 (held open)
        try:
            fcntl.flock(self._lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_handle.close()
            raise SpoolInUseError(
                f"another search writer uses the spool {self.spool_dir}; give each writer its "
                f"own name (or spool_dir)"
            ) from None
        existing = self._spool_files()
        self.on_overflow = on_overflow  # documents over the spool cap; None: dead-letter.jsonl
        self.overflow_target = "the overflow handler"  # where on_overflow sends them, for alerts
        self.guard = SpoolGuard(name, spool_max_bytes, sum(p.stat().st_size for p in existing))
        self._pending_spool = sum(count_lines(path) for path in existing)
        self._spool_sequence = len(existing)
        if existing:
            logger.warning(
                "search writer %s found %d spooled documents in %d file(s) under %s; re-sending",
                name,
                self._pending_spool,
                len(existing),
                self.spool_dir,
            )
        if start:
            self.start()

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        name: str = "writer",
        client: Elasticsearch | None = None,
        **options: Any,
    ) -> SearchWriter:
        """A writer with ``RTC_SEARCH_*`` settings: URL, spool folder, batch size, interval."""
        from rtcrypto.search.client import search_client

        settings = settings or get_settings()
        # No client-side retries: a failed bulk is spooled and re-sent by the writer itself.
        client = client or search_client(settings, request_timeout_s=30.0, max_retries=0)
        options.setdefault("batch_size", settings.search_bulk_batch_size)
        options.setdefault("flush_interval_s", settings.search_flush_interval_s)
        options.setdefault("spool_max_bytes", settings.search_spool_max_bytes)
        return cls(client, spool_dir=settings.search_spool_path, name=name, **options)

    # --- public API ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (done by the constructor unless ``start=False``)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"search-{self.name}", daemon=True)
        self._thread.start()

    def add(self, action: SearchAction) -> None:
        """Queue one document; blocks while ``max_buffered`` documents wait (back-pressure).

        Raises ``TypeError`` if its source is not JSON-serialisable (before anything is queued).
        """
        doc = queued_doc(action)
        with self._condition:
            if self._closing:
                raise WriterClosedError(f"search writer {self.name} is closed")
            while len(self._buffer) >= self.max_buffered and not self._closing:
                self._condition.wait(0.5)
            self._buffer.append(doc)
            self._added += 1
            if len(self._buffer) >= self.batch_size:
                self._condition.notify_all()

    def add_many(self, actions: Iterable[SearchAction]) -> int:
        """Queue every action; returns how many."""
        count = 0
        for action in actions:
            self.add(action)
            count += 1
        return count

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every document added so far is acknowledged, spooled or dead-lettered.

        Returns False if ``timeout_s`` ran out first. Spooled documents count as handled: they
        are safe on disk, not yet in Elasticsearch (see ``stats().pending_spool``).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._condition:
            target = self._added
            self._flush_requested = True
            self._condition.notify_all()
            while self._handled < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._condition.wait(remaining if remaining is not None else 1.0)
        return True

    def wait_for_spool_drained(self, timeout_s: float) -> bool:
        """Wait until the spool is empty (everything re-sent); False if ``timeout_s`` runs out."""
        deadline = time.monotonic() + timeout_s
        with self._condition:
            while self._pending_spool > 0 or self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._flush_requested = True
                self._condition.notify_all()
                self._condition.wait(min(remaining, 0.2))
        return True

    def close(self, timeout_s: float | None = 60.0) -> WriterStats:
        """Send or spool every buffered document, stop the thread; returns the final counters."""
        with self._condition:
            if self._closed:
                return self.stats()
            self._closing = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.error(
                    "search writer %s did not stop within %s s; %d documents still in memory",
                    self.name,
                    timeout_s,
                    len(self._buffer),
                )
        else:
            self._deliver_all(force=True)  # never started: still owe the buffer its delivery
        with self._condition:
            self._closed = True
        fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
        self._lock_handle.close()
        stats = self.stats()
        logger.info(
            "search writer %s closed: indexed=%d spooled=%d resent=%d dead=%d pending_spool=%d",
            self.name,
            stats.indexed,
            stats.spooled,
            stats.resent,
            stats.dead,
            stats.pending_spool,
        )
        return stats

    def stats(self) -> WriterStats:
        with self._condition:
            return WriterStats(
                indexed=self._indexed,
                spooled=self._spooled,
                resent=self._resent,
                dead=self._dead,
                buffered=len(self._buffer),
                pending_spool=self._pending_spool,
                bulk_requests=self._bulk_requests,
                failed_requests=self._failed_requests,
                last_error=self._last_error,
                spool_bytes=self.guard.spool_bytes,
                alerts=tuple(self.guard.alerts()),
            )

    def alerts(self) -> list[str]:
        """Current alerts (spool full, credentials refused); empty when all is well."""
        return self.guard.alerts()

    def __enter__(self) -> SearchWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- background thread ---------------------------------------------------------------------

    def _run(self) -> None:
        last_flush = time.monotonic()
        while True:
            with self._condition:
                while True:
                    now = time.monotonic()
                    interval_due = bool(self._buffer) and now - last_flush >= self.flush_interval_s
                    retry_due = self._retry_due(now)
                    if (
                        self._closing
                        or self._flush_requested
                        or len(self._buffer) >= self.batch_size
                        or interval_due
                        or retry_due
                    ):
                        break
                    waits = [self.flush_interval_s]
                    if self._pending_spool > 0 and not self.guard.auth_blocked:
                        waits.append(max(0.01, self._next_retry - now))
                    self._condition.wait(min(waits))
                closing = self._closing
                # Between intervals only full batches go: small bulk requests cost throughput.
                force = closing or self._flush_requested or interval_due
                self._flush_requested = False
            try:
                self._deliver_all(force=force)
                if closing:
                    return
            except Exception as error:  # keep the thread alive: a bug here must not stop indexing
                logger.exception("search writer %s: unexpected error, retrying later", self.name)
                self._note_failure(f"{type(error).__name__}: {error}")
                time.sleep(min(self._retry_delay, self.retry_max_s))
            if force:
                last_flush = time.monotonic()

    def _take_batch(self, *, force: bool) -> list[QueuedDoc]:
        """The next batch: a full one, or (``force``) whatever is buffered; [] if none is due."""
        with self._condition:
            if len(self._buffer) < self.batch_size and not force:
                return []
            count = min(self.batch_size, len(self._buffer))
            batch = [self._buffer.popleft() for _ in range(count)]
            self._condition.notify_all()  # add() may be waiting for room
            return batch

    def _mark_handled(self, count: int) -> None:
        with self._condition:
            self._handled += count
            self._condition.notify_all()

    def _deliver_all(self, *, force: bool) -> None:
        """Re-send the spool when due, then deliver the buffer in full batches (``force``: all)."""
        if self._retry_due(time.monotonic()):
            self._drain_spool()
        while True:
            batch = self._take_batch(force=force)
            if not batch:
                return
            try:
                self._deliver(batch)
            except BaseException:
                with self._condition:  # not handled: back to the front, in order
                    self._buffer.extendleft(reversed(batch))
                raise
            self._mark_handled(len(batch))

    def _deliver(self, batch: list[QueuedDoc]) -> None:
        if self._pending_spool > 0:
            # Never overtake older spooled documents: they may be older versions of these ids.
            if self._retry_due(time.monotonic()):
                self._drain_spool()
            if self._pending_spool > 0:
                self._append_to_spool(batch)
                return
        outcome = self._send(batch)
        self._dead_letter(outcome.dead)
        with self._condition:
            self._indexed += outcome.acked
        if outcome.retry:
            self._append_to_spool(outcome.retry)
            self._schedule_retry()

    def _retry_due(self, now: float) -> bool:
        """The spool is due for a re-send (never after refused credentials: that needs a fix)."""
        return self._pending_spool > 0 and now >= self._next_retry and not self.guard.auth_blocked

    # --- sending -------------------------------------------------------------------------------

    def _send(self, docs: list[QueuedDoc]) -> _Outcome:
        """One bulk request (the helper splits only beyond 100 MB); classify every document."""
        acked = 0
        retry: list[QueuedDoc] = []
        dead: list[tuple[QueuedDoc, int | None, str]] = []
        position = 0
        with self._condition:
            self._bulk_requests += 1
        results = helpers.streaming_bulk(
            self.client,
            cast(Iterable[Any], docs),
            chunk_size=len(docs),
            expand_action_callback=cast(Any, bulk_op),
            raise_on_error=False,
            raise_on_exception=False,
            max_retries=0,
            yield_ok=True,
        )
        request_error: str | None = None
        try:
            for ok, info in results:
                doc = docs[position]
                position += 1
                if ok:
                    acked += 1
                    continue
                item = next(iter(info.values()))
                status = item.get("status")
                reason = bulk_reason(item.get("error"))
                if status in AUTH_STATUSES:
                    self.guard.note_auth_failure(status, reason)
                if is_retryable(status):
                    retry.append(doc)
                    request_error = f"status {status}: {reason}"
                else:
                    dead.append((doc, status, reason))
        except (elastic_transport.TransportError, OSError) as error:
            # Not reached (refused, reset, timeout): every document not yet answered is retried.
            retry.extend(docs[position:])
            request_error = f"{type(error).__name__}: {error}"
        if request_error is not None:
            self._note_failure(request_error)
        elif acked:
            self._retry_delay = self.retry_initial_s
        return _Outcome(acked, retry, dead)

    def _note_failure(self, message: str) -> None:
        with self._condition:
            self._failed_requests += 1
            self._last_error = message[:500]
        logger.warning("search writer %s: bulk failed, spooling: %s", self.name, message[:500])

    def _schedule_retry(self) -> None:
        self._next_retry = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, self.retry_max_s)

    # --- dead letters --------------------------------------------------------------------------

    def _dead_letter(self, dead: list[tuple[QueuedDoc, int | None, str]]) -> None:
        if not dead:
            return
        lines = []
        for doc, status, reason in dead:
            logger.error(
                "search writer %s: document refused for good, dead-lettered index=%s id=%s "
                "status=%s reason=%s",
                self.name,
                doc.index_name,
                doc.doc_id,
                status,
                reason,
            )
            source = orjson.Fragment(doc.body)
            lines.append(
                dead_letter_line(
                    index=doc.index_name, id=doc.doc_id, status=status, reason=reason, source=source
                )
            )
        append_fsynced(self.dead_letter_path, b"".join(lines))
        with self._condition:
            self._dead += len(dead)

    # --- spool ---------------------------------------------------------------------------------

    def _spool_files(self) -> list[Path]:
        return sorted(self.spool_dir.glob(f"{SPOOL_PREFIX}*{SPOOL_SUFFIX}"))

    def _new_spool_path(self) -> Path:
        self._spool_sequence += 1
        stamp = time.time_ns()
        return (
            self.spool_dir / f"{SPOOL_PREFIX}{stamp:020d}-{self._spool_sequence:06d}{SPOOL_SUFFIX}"
        )

    def _append_to_spool(self, docs: list[QueuedDoc]) -> None:
        lines = [doc_spool_line(doc) for doc in docs]
        fit = self.guard.admit([len(line) for line in lines])
        if fit < len(docs):
            self._overflow(docs[fit:])
            docs, lines = docs[:fit], lines[:fit]
            if not docs:
                return
        if self._tail is None or not self._tail.exists() or self._tail_docs >= SPOOL_FILE_MAX_DOCS:
            self._tail, self._tail_docs = self._new_spool_path(), 0
        append_fsynced(self._tail, b"".join(lines))
        self._tail_docs += len(docs)
        with self._condition:
            self._spooled += len(docs)
            self._pending_spool += len(docs)

    def _overflow(self, docs: list[QueuedDoc]) -> None:
        """Documents over the spool cap: to ``on_overflow`` (the trader: Kafka), else the local
        dead-letter file; never silently (spool_guard logs and alerts)."""
        records = [
            {"_index": doc.index_name, "_id": doc.doc_id, "_source": orjson.Fragment(doc.body)}
            for doc in docs
        ]
        target = "the local dead-letter file"
        if self.on_overflow is not None:
            try:
                self.on_overflow(records)
                target = self.overflow_target
            except Exception:  # the handler failing must not lose them: local file instead
                logger.exception("search writer %s: overflow handler failed", self.name)
                self.on_overflow = None
        if self.on_overflow is None:
            lines = [dead_letter_line(**record, reason="search spool full") for record in records]
            append_fsynced(self.dead_letter_path, b"".join(lines))
        with self._condition:
            self._dead += len(docs)
        self.guard.note_overflow(len(docs), target)

    def _spool_size(self) -> int:
        return sum(path.stat().st_size for path in self._spool_files())

    def _read_spool(self, path: Path) -> list[QueuedDoc]:
        docs = []
        with path.open("rb") as handle:
            lines = handle.read().split(b"\n")
        for number, read, line in read_spool_lines(lines):
            if isinstance(read, QueuedDoc):
                docs.append(read)
                continue
            # Only a crash in the middle of an append leaves a torn line (its batch was
            # still in memory, so lost with the process); keep it visible, do not resend.
            logger.error(
                "search writer %s: unreadable spool line %s:%d (%s), dead-lettered",
                self.name,
                path.name,
                number,
                read,
            )
            raw = line.decode("utf-8", "replace")
            reason = f"unreadable spool line: {read}"
            letter = dead_letter_line(file=path.name, line=number, reason=reason, raw=raw)
            append_fsynced(self.dead_letter_path, letter)
            with self._condition:
                self._dead += 1
                self._pending_spool -= 1
        return docs

    def _drain_spool(self) -> bool:
        """Re-send spool files oldest first; True when the spool is empty."""
        for path in self._spool_files():
            docs = self._read_spool(path)
            for chunk_start in range(0, len(docs), self.batch_size):
                chunk = docs[chunk_start : chunk_start + self.batch_size]
                outcome = self._send(chunk)
                self._dead_letter(outcome.dead)
                done = outcome.acked + len(outcome.dead)
                with self._condition:
                    self._indexed += outcome.acked
                    self._resent += outcome.acked
                    self._pending_spool -= done
                if outcome.retry:
                    owed = outcome.retry + docs[chunk_start + len(chunk) :]
                    rewrite_atomically(path, b"".join(doc_spool_line(doc) for doc in owed))
                    if path == self._tail:
                        self._tail_docs = len(owed)
                    self._schedule_retry()
                    self.guard.set_spool_bytes(self._spool_size())
                    return False
            path.unlink()
            fsync_dir(self.spool_dir)
            if path == self._tail:
                self._tail, self._tail_docs = None, 0
            logger.info("search writer %s: re-sent spool file %s", self.name, path.name)
        self.guard.set_spool_bytes(0)  # before the waiters see an empty spool
        with self._condition:
            self._pending_spool = 0
            self._condition.notify_all()
        self._retry_delay = self.retry_initial_s
        return True
