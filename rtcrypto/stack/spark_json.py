"""The JSON of a Spark standalone master and worker (their UIs' ``/json/``), as values.

Pure parsers: text in, dataclasses out, :class:`SparkStatusError` (naming the field) for
anything that is not what Spark 4's daemons answer. ``rtcrypto.stack.spark_cluster`` reads the
UIs and turns these values into ``rtc status`` lines. Memory figures are MiB, as Spark gives them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rtcrypto.stack.errors import StackError

ALIVE = "ALIVE"  # the state of a live master and of a registered, heartbeating worker


class SparkStatusError(StackError):
    """The master's or a worker's JSON is not what a Spark standalone daemon answers."""


@dataclass(frozen=True)
class WorkerInfo:
    """One worker as the master sees it; memory in MiB."""

    worker_id: str
    host: str
    port: int
    state: str
    cores: int
    cores_used: int
    memory_mb: int
    memory_used_mb: int


@dataclass(frozen=True)
class AppInfo:
    """One running application (a job's driver) as the master sees it; memory in MiB."""

    app_id: str
    name: str
    state: str
    cores: int
    memory_per_executor_mb: int


@dataclass(frozen=True)
class MasterState:
    """The master's ``/json/``: its URL and status, the workers and the running applications."""

    url: str
    status: str
    workers: tuple[WorkerInfo, ...]
    active_apps: tuple[AppInfo, ...]

    def alive_workers(self) -> list[WorkerInfo]:
        return [worker for worker in self.workers if worker.state == ALIVE]


@dataclass(frozen=True)
class ExecutorInfo:
    """One executor running on a worker (from the worker's ``/json/``); memory in MiB."""

    executor_id: int
    app_id: str
    app_name: str
    cores: int
    memory_mb: int


def _field(record: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    value = record.get(name)
    # bool is an int to Python; no count or port of Spark's is a boolean
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SparkStatusError(
            f"{where}: field {name!r} must be {kind.__name__}, got {type(value).__name__}"
        )
    return value


def _objects(record: Mapping[str, Any], name: str, where: str) -> list[Mapping[str, Any]]:
    items = _field(record, name, list, where)
    for item in items:
        if not isinstance(item, dict):
            raise SparkStatusError(f"{where}: {name!r} must hold objects, got {item!r:.60}")
    return items


def _json_object(text: str | bytes, where: str) -> dict[str, Any]:
    try:
        loaded = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise SparkStatusError(f"{where}: not JSON ({error})") from None
    if not isinstance(loaded, dict):
        raise SparkStatusError(f"{where}: expected a JSON object, got {type(loaded).__name__}")
    return loaded


def parse_master_json(text: str | bytes) -> MasterState:
    """The master's ``/json/`` answer, or :class:`SparkStatusError` saying what is wrong."""
    where = "Spark master /json/"
    record = _json_object(text, where)
    workers = tuple(
        WorkerInfo(
            worker_id=_field(item, "id", str, where),
            host=_field(item, "host", str, where),
            port=_field(item, "port", int, where),
            state=_field(item, "state", str, where),
            cores=_field(item, "cores", int, where),
            cores_used=_field(item, "coresused", int, where),
            memory_mb=_field(item, "memory", int, where),
            memory_used_mb=_field(item, "memoryused", int, where),
        )
        for item in _objects(record, "workers", where)
    )
    apps = tuple(
        AppInfo(
            app_id=_field(item, "id", str, where),
            name=_field(item, "name", str, where),
            state=_field(item, "state", str, where),
            cores=_field(item, "cores", int, where),
            memory_per_executor_mb=_field(item, "memoryperexecutor", int, where),
        )
        for item in _objects(record, "activeapps", where)
    )
    return MasterState(
        url=_field(record, "url", str, where),
        status=_field(record, "status", str, where),
        workers=workers,
        active_apps=apps,
    )


def parse_worker_json(text: str | bytes) -> list[ExecutorInfo]:
    """The running executors of a worker's ``/json/``, or :class:`SparkStatusError`."""
    where = "Spark worker /json/"
    record = _json_object(text, where)
    executors = []
    for item in _objects(record, "executors", where):
        app = _field(item, "appdesc", dict, where)
        executors.append(
            ExecutorInfo(
                executor_id=_field(item, "id", int, where),
                app_id=_field(item, "appid", str, where),
                app_name=_field(app, "name", str, where),
                cores=_field(app, "cores", int, where),
                memory_mb=_field(item, "memory", int, where),
            )
        )
    return executors
