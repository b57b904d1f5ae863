"""One local service shared by every test session that needs it (the Kafka broker, the search node).

A session reuses a service that already answers (started by ``rtc stack up``, or by another test
session) and otherwise starts the managed one. Each session holds a lease file; the last session out
stops the service, but only if a test session started it: one that ``rtc stack up`` started keeps
running.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rtcrypto.config import Settings
from rtcrypto.stack import process
from rtcrypto.stack.errors import StackError


def _live_leases(lease_dir: Path) -> list[Path]:
    """Lease files of test sessions that still run; leases of dead sessions are removed."""
    live = []
    for lease in lease_dir.glob("*"):
        if lease.name.isdigit() and process.pid_alive(int(lease.name)):
            live.append(lease)
        else:
            lease.unlink(missing_ok=True)
    return live


@contextmanager
def shared_service(
    process_name: str,
    settings: Settings,
    *,
    healthy: Callable[[], bool],
    start: Callable[[], tuple[int, bool]],
    stop: Callable[[], object],
) -> Iterator[None]:
    """Hold a lease on ``process_name`` for the ``with`` block.

    ``start()`` returns (pid, already_running); ``stop()`` stops the managed service.
    """
    lease_dir = settings.run_dir / f"{process_name}-test-leases"
    lease = lease_dir / str(os.getpid())
    marker = settings.run_dir / f"{process_name}.started-by-tests"
    with process.exclusive_lock(f"{process_name}-tests", settings):
        if not healthy():
            try:
                pid, already_running = start()
            except StackError as error:
                pytest.fail(f"local {process_name} unavailable: {error}", pytrace=False)
            if not already_running:
                marker.write_text(f"{pid}\n")
        lease_dir.mkdir(parents=True, exist_ok=True)
        lease.touch()
    try:
        yield
    finally:
        with process.exclusive_lock(f"{process_name}-tests", settings):
            lease.unlink(missing_ok=True)
            if not _live_leases(lease_dir) and _started_by_tests(process_name, settings):
                stop()
                marker.unlink(missing_ok=True)


def _started_by_tests(process_name: str, settings: Settings) -> bool:
    """True if the managed process that runs now is the one a test session started."""
    try:
        recorded_pid = int((settings.run_dir / f"{process_name}.started-by-tests").read_text())
    except (OSError, ValueError):
        return False
    running = process.is_running(process_name, settings)
    return running and process.read_pid(process_name, settings) == recorded_pid
