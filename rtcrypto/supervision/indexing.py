"""What the supervisor writes to Elasticsearch, and the heartbeats its checks judged.

:func:`write_actions` sends a few documents through the project's ``SearchWriter`` (one
short-lived writer per call, under a lock per writer name: its spool folder takes one writer at a
time). When Elasticsearch does not answer, the documents are spooled under
``<search_spool_path>/<name>/`` and re-sent by the next writer of the same name.

:func:`index_heartbeats` is how the heartbeats a health check read and judged reach
``<search_index_prefix>-heartbeat`` (the ``heartbeat`` index template). Each document has the
deterministic ``_id`` ``<service>:<instance>:<ts_ms>``
(:func:`rtcrypto.search.documents.heartbeat_document`), so a heartbeat checked twice is one
document. It never raises: the supervisor's verdict does not depend on Elasticsearch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rtcrypto.config import Settings
from rtcrypto.stack import process

if TYPE_CHECKING:  # rtcrypto.search (and the elasticsearch client) load on first use only
    from rtcrypto.search.documents import SearchAction
    from rtcrypto.search.writer import WriterStats

logger = logging.getLogger(__name__)

HEARTBEATS_WRITER = "heartbeats"  # spool folder <search_spool_path>/heartbeats/
HEARTBEAT_INDEX_TIMEOUT_S = 2.0  # per request; the check waits at most twice this


def write_actions(
    actions: Sequence[SearchAction],
    settings: Settings,
    *,
    name: str,
    timeout_s: float,
    batch_size: int = 1,
) -> WriterStats:
    """Send ``actions`` with a ``SearchWriter`` named ``name``; its stats once it is closed.

    Raises whatever the client or the writer raises (callers decide how soft to fail).
    """
    from rtcrypto.search.client import search_client
    from rtcrypto.search.writer import SearchWriter

    # One writer of this name at a time (its spool folder takes one): concurrent callers queue.
    with process.exclusive_lock(f"{name}-index", settings):
        client = search_client(settings, request_timeout_s=timeout_s, max_retries=0)
        writer = SearchWriter(
            client,
            spool_dir=settings.search_spool_path,
            name=name,
            batch_size=batch_size,
            flush_interval_s=0.1,
            retry_initial_s=0.2,
        )
        writer.add_many(actions)
        return writer.close(timeout_s=timeout_s * 2)


def heartbeat_actions(beats: Iterable[Mapping[str, Any]], prefix: str) -> list[SearchAction]:
    """``<prefix>-heartbeat`` documents of ``beats``, one per ``_id``, in order of first sight.

    A record the document builder refuses (no service, a count that is not a number) is skipped
    with a debug line: a heartbeat is evidence, never a reason to fail a check.
    """
    from rtcrypto.search.documents import heartbeat_document

    actions: dict[str, SearchAction] = {}
    for beat in beats:
        try:
            action = heartbeat_document(beat, prefix=prefix)
        except (KeyError, TypeError, ValueError, OverflowError) as error:
            logger.debug("heartbeat not indexed (%s: %s): %r", type(error).__name__, error, beat)
            continue
        actions.setdefault(action.id, action)
    return list(actions.values())


def index_heartbeats(
    beats: Iterable[Mapping[str, Any]],
    settings: Settings,
    timeout_s: float = HEARTBEAT_INDEX_TIMEOUT_S,
) -> int:
    """Index ``beats`` into ``<search_index_prefix>-heartbeat``; how many were acknowledged.

    Idempotent (deterministic ``_id``); never raises. When Elasticsearch does not answer, the
    documents are spooled and re-sent by the next check, with a warning.
    """
    actions = heartbeat_actions(beats, settings.search_index_prefix)
    if not actions:
        return 0
    try:
        stats = write_actions(
            actions,
            settings,
            name=HEARTBEATS_WRITER,
            timeout_s=timeout_s,
            batch_size=len(actions),
        )
    except Exception as error:  # any writer or client error: warn, never fail the check
        logger.warning(
            "%d heartbeat(s) not indexed in %s: %s",
            len(actions),
            actions[0].index,
            type(error).__name__,
        )
        return 0
    if stats.spooled or stats.dead:
        logger.warning(
            "%d heartbeat(s) not indexed in %s (spooled or dead-lettered under %s; the spool is "
            "re-sent by the next check): %s",
            stats.spooled + stats.dead,
            actions[0].index,
            settings.search_spool_path / HEARTBEATS_WRITER,
            stats.last_error or "Elasticsearch did not acknowledge",
        )
    return int(stats.indexed)
