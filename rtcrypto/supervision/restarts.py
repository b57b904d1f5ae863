"""Restarts: the journal, the restart itself, and its record in Elasticsearch.

A restart stops the process by its pid, starts it again through the process manager (or
``docker compose restart``), and is recorded: a log line, a line in the append-only journal
``<run_dir>/restarts.jsonl`` (service, reason, time, old and new pid, backend, the service's
restart count), and a document in the Elasticsearch index ``<search_index_prefix>-restarts``
when Elasticsearch answers (fail-soft). The journal also caps restarts per hour.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from rtcrypto.config import Settings
from rtcrypto.stack import process
from rtcrypto.stack.errors import StackError
from rtcrypto.supervision.indexing import write_actions
from rtcrypto.supervision.registry import Launch, get_service, start_service

logger = logging.getLogger(__name__)

JOURNAL_NAME = "restarts.jsonl"
RESTARTS_INDEX_SUFFIX = "restarts"
HOUR_MS = 3_600_000


class RestartLimitError(StackError):
    """A service was restarted too often in the last hour: a person has to look at it."""


class RestartBackend(StrEnum):
    """How a restart is carried out.

    ``local``: the process manager (pid files under ``run_dir``), the default and the only one
    ``rtc up`` uses. ``spark_submit``: the Spark job, its command built by the Airflow Spark
    provider's hook from an Airflow connection (``plugins/rtc_airflow/operators.py``), still
    owned by the process manager. ``compose``: ``docker compose restart <service>``.
    """

    local = "local"
    spark_submit = "spark_submit"
    compose = "compose"


@dataclass(frozen=True)
class RestartRecord:
    """One restart: what, why, when (UTC ms), the pids before and after, how, which one."""

    service: str
    reason: str
    ts_ms: int
    old_pid: int | None
    new_pid: int | None
    backend: str = RestartBackend.local.value
    count: int = 1  # this service's restarts in the journal, this one included

    @property
    def ts(self) -> str:
        """ISO 8601 UTC time of the restart."""
        return datetime.fromtimestamp(self.ts_ms / 1000, UTC).isoformat(timespec="milliseconds")

    @property
    def document_id(self) -> str:
        """Deterministic Elasticsearch ``_id``: a replay of the journal never duplicates."""
        return f"{self.service}:{self.ts_ms}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ts": self.ts}


def journal_path(settings: Settings) -> Path:
    """``<run_dir>/restarts.jsonl``: one JSON line per restart, appended, never rewritten."""
    return settings.run_dir / JOURNAL_NAME


def parse_journal(lines: Iterable[str]) -> list[RestartRecord]:
    """Restart records from journal lines; unreadable lines are skipped."""
    records = []
    for line in lines:
        try:
            data = json.loads(line)
            records.append(
                RestartRecord(
                    service=str(data["service"]),
                    reason=str(data["reason"]),
                    ts_ms=int(data["ts_ms"]),
                    old_pid=data.get("old_pid"),
                    new_pid=data.get("new_pid"),
                    backend=str(data.get("backend", RestartBackend.local.value)),
                    count=int(data.get("count", 1)),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return records


def read_journal(settings: Settings) -> list[RestartRecord]:
    """Every restart recorded in ``<run_dir>/restarts.jsonl`` (none if there is no journal)."""
    try:
        text = journal_path(settings).read_text()
    except OSError:
        return []
    return parse_journal(text.splitlines())


def restart_counts(records: Iterable[RestartRecord]) -> dict[str, int]:
    """Restarts per service."""
    return dict(Counter(record.service for record in records))


def restarts_since(records: Iterable[RestartRecord], service: str, since_ms: int) -> int:
    """Restarts of ``service`` at or after ``since_ms`` (UTC ms)."""
    return sum(1 for record in records if record.service == service and record.ts_ms >= since_ms)


def restart_allowed(
    records: Iterable[RestartRecord], service: str, now_ms: int, max_per_hour: int
) -> bool:
    """False once ``service`` was restarted ``max_per_hour`` times in the last hour."""
    return restarts_since(records, service, now_ms - HOUR_MS) < max_per_hour


def append_restart(
    settings: Settings,
    *,
    service: str,
    reason: str,
    old_pid: int | None,
    new_pid: int | None,
    backend: RestartBackend,
    ts_ms: int | None = None,
) -> RestartRecord:
    """Append one restart to the journal (under a lock, so counts stay exact); return it."""
    path = journal_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with process.exclusive_lock("restarts", settings):
        count = restart_counts(read_journal(settings)).get(service, 0) + 1
        record = RestartRecord(
            service=service,
            reason=reason,
            ts_ms=time.time_ns() // 1_000_000 if ts_ms is None else ts_ms,
            old_pid=old_pid,
            new_pid=new_pid,
            backend=backend.value,
            count=count,
        )
        with path.open("a") as journal:
            journal.write(json.dumps(record.as_dict(), sort_keys=True) + "\n")
    return record


def restarts_index(settings: Settings) -> str:
    """``<search_index_prefix>-restarts`` (``rtc-restarts`` by default)."""
    from rtcrypto.search.indices import index_name

    return index_name("restarts", settings.search_index_prefix)


def index_restart(record: RestartRecord, settings: Settings, timeout_s: float = 5.0) -> bool:
    """Index ``record`` into ``rtc-restarts`` (``_id`` service:ts_ms); True once acknowledged.

    Goes through the project's ``SearchWriter``: when Elasticsearch does not answer, the document
    is spooled under ``<search_spool_path>/restarts/`` and re-sent by the next restart's writer;
    this returns False with a warning. Never raises: the journal is the record of truth.
    The document holds service, reason, ts_ms and the new pid (the index's strict mapping);
    the old pid, backend and count are in the journal.
    """
    from rtcrypto.search.documents import restart_document

    action = restart_document(
        record.service,
        record.ts_ms,
        reason=record.reason,
        pid=record.new_pid,
        prefix=settings.search_index_prefix,
    )
    try:
        stats = write_actions([action], settings, name=RESTARTS_INDEX_SUFFIX, timeout_s=timeout_s)
    except Exception as error:  # any writer or client error: warn, never fail the restart
        logger.warning(
            "restart of %s not indexed in %s (journal has it): %s",
            record.service,
            action.index,
            type(error).__name__,
        )
        return False
    if stats.indexed >= 1 and stats.spooled == 0 and stats.dead == 0:
        return True
    logger.warning(
        "restart of %s not indexed in %s (journal has it; spooled under %s, re-sent by the "
        "next restart): %s",
        record.service,
        action.index,
        settings.search_spool_path / RESTARTS_INDEX_SUFFIX,
        stats.last_error or "Elasticsearch did not acknowledge",
    )
    return False


def compose_restart_command(
    compose_service: str, compose_file: Path | None = None, project_name: str | None = None
) -> list[str]:
    """``docker compose [-f FILE] [-p NAME] restart SERVICE``."""
    command = ["docker", "compose"]
    if compose_file is not None:
        command += ["-f", str(compose_file)]
    if project_name:
        command += ["-p", project_name]
    return [*command, "restart", compose_service]


def restart_service(
    name: str,
    reason: str,
    settings: Settings,
    *,
    backend: RestartBackend = RestartBackend.local,
    launch: Launch | None = None,
    compose_file: Path | None = None,
    stop_timeout_s: float = 30.0,
    enforce_limit: bool = True,
    index: bool = True,
) -> RestartRecord:
    """Restart ``name`` and record it (log line, journal, Elasticsearch when it answers).

    ``local`` / ``spark_submit``: stop by pid (a dead process only loses its pid file), then
    start through the process manager (``launch`` replaces the registry's command, e.g. the
    Spark provider's). ``compose``: ``docker compose restart`` (no pids). Raises
    :class:`RestartLimitError` after ``supervisor_max_restarts_per_hour`` restarts in an hour.
    """
    spec = get_service(name, settings)
    if process.stopping_marker(settings).exists():
        raise StackError(
            f"not restarting {name}: the platform is being stopped (`rtc down`; "
            f"{process.stopping_marker(settings)} is removed by the next `rtc up`)"
        )
    now_ms = time.time_ns() // 1_000_000
    if enforce_limit and not restart_allowed(
        read_journal(settings), name, now_ms, settings.supervisor_max_restarts_per_hour
    ):
        raise RestartLimitError(
            f"{name} was restarted {settings.supervisor_max_restarts_per_hour} times in the last "
            f"hour; not restarting it again. Read {process.log_path(name, settings)} and "
            f"{journal_path(settings)}, fix the cause, then start it (`rtc up` or the "
            "streaming_start DAG)"
        )
    old_pid: int | None
    new_pid: int | None
    if backend is RestartBackend.compose:
        if not spec.compose_service:
            raise StackError(f"{name} has no docker-compose service")
        command = compose_restart_command(spec.compose_service, compose_file)
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise StackError(
                f"`{' '.join(command)}` failed (exit {completed.returncode}): "
                f"{(completed.stderr or completed.stdout).strip()[-500:]}"
            )
        old_pid = new_pid = None
    else:
        old_pid = process.read_pid(name, settings)
        process.stop_process(name, timeout_s=stop_timeout_s, settings=settings)
        new_pid = start_service(spec, settings, launch=launch)
    record = append_restart(
        settings,
        service=name,
        reason=reason,
        old_pid=old_pid,
        new_pid=new_pid,
        backend=backend,
    )
    logger.warning(
        "restarted service=%s reason=%s old_pid=%s new_pid=%s backend=%s restarts=%d",
        name,
        reason,
        old_pid,
        new_pid,
        backend.value,
        record.count,
    )
    if index:
        index_restart(record, settings)
    return record
