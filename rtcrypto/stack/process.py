"""A small manager for local background processes: start detached, track by pid file, stop.

Every managed process has a name. Its pid is in ``<run_dir>/<name>.pid``, a JSON sidecar
``<run_dir>/<name>.json`` keeps the command, ports and start time, and its stdout and stderr go
to ``<log_dir>/<name>.log``. Each process runs in its own session and process group, so a stop
reaches its children too and a Ctrl-C in the starting terminal does not. Generic on purpose:
Kafka uses it now; the simulator, ingest, the Spark job and the trader use it later.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rtcrypto.config import Settings, get_settings
from rtcrypto.locks import exclusive_file_lock
from rtcrypto.stack.errors import (
    PortInUseError,
    ProcessAlreadyRunningError,
    ServiceStartError,
    StackError,
)

logger = logging.getLogger(__name__)

_POLL_INTERVAL_S = 0.1


@dataclass(frozen=True)
class ProcessStatus:
    """What is known about one managed process."""

    name: str
    pid: int | None
    running: bool
    ports: tuple[int, ...]
    log_path: Path
    started_at_s: float | None  # unix time, seconds
    command: tuple[str, ...]


# --- paths -------------------------------------------------------------------------------------


def pid_path(name: str, settings: Settings | None = None) -> Path:
    """``<run_dir>/<name>.pid``: the pid of the process (its process group id too)."""
    return (settings or get_settings()).run_dir / f"{name}.pid"


def meta_path(name: str, settings: Settings | None = None) -> Path:
    """``<run_dir>/<name>.json``: command, ports and start time of the process."""
    return (settings or get_settings()).run_dir / f"{name}.json"


def log_path(name: str, settings: Settings | None = None) -> Path:
    """``<log_dir>/<name>.log``: stdout and stderr of the process, appended across starts and
    rotated past ``log_max_bytes`` into ``<name>.log.1`` ... (``log_backup_count`` of them)."""
    return (settings or get_settings()).log_dir / f"{name}.log"


LOGPIPE_SCRIPT = Path(__file__).with_name("logpipe.py")


def with_log_rotation(command: Sequence[str], log_file: Path, settings: Settings) -> list[str]:
    """``command`` run behind :mod:`rtcrypto.stack.logpipe`: same pid, output rotated by size."""
    return [
        sys.executable,
        "-S",  # no site-packages: the wrapper needs the standard library only
        str(LOGPIPE_SCRIPT),
        "--log",
        str(log_file),
        "--max-bytes",
        str(settings.log_max_bytes),
        "--backups",
        str(settings.log_backup_count),
        "--",
        *command,
    ]


# --- liveness ----------------------------------------------------------------------------------


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state first), None if unreadable."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces or parentheses.
    return raw[raw.rfind(")") + 2 :].split()


def _start_ticks(pid: int) -> int | None:
    """Start time of the process in clock ticks since boot (Linux), None where unknown."""
    fields = _proc_stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def _reap_if_child(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own exited child, so it is no zombie."""
    with suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists and is not a zombie."""
    _reap_if_child(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    fields = _proc_stat_fields(pid)
    return not (fields and fields[0] == "Z")


def _group_alive(pgid: int) -> bool:
    """True if any process (zombies included) is left in the process group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_pid(name: str, settings: Settings | None = None) -> int | None:
    """The pid recorded for ``name``, or None when there is no readable pid file."""
    try:
        return int(pid_path(name, settings).read_text().strip())
    except (OSError, ValueError):
        return None


def _read_meta(name: str, settings: Settings | None) -> dict[str, object]:
    try:
        loaded = json.loads(meta_path(name, settings).read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _is_same_process(pid: int, meta: Mapping[str, object]) -> bool:
    """Guard against pid reuse: the live pid must have the start time recorded at launch."""
    recorded = meta.get("start_ticks")
    if not isinstance(recorded, int):
        return True
    current = _start_ticks(pid)
    return current is None or current == recorded


def is_running(name: str, settings: Settings | None = None) -> bool:
    """True if the process recorded under ``name`` is alive (and is the one we started)."""
    pid = read_pid(name, settings)
    if pid is None or not pid_alive(pid):
        return False
    return _is_same_process(pid, _read_meta(name, settings))


def process_status(name: str, settings: Settings | None = None) -> ProcessStatus:
    """Pid, liveness, ports, log file and command of one managed process."""
    meta = _read_meta(name, settings)
    raw_ports = meta.get("ports")
    raw_started = meta.get("started_at_s")
    raw_command = meta.get("command")
    return ProcessStatus(
        name=name,
        pid=read_pid(name, settings),
        running=is_running(name, settings),
        ports=tuple(int(port) for port in raw_ports) if isinstance(raw_ports, list) else (),
        log_path=log_path(name, settings),
        started_at_s=float(raw_started) if isinstance(raw_started, int | float) else None,
        command=tuple(str(part) for part in raw_command) if isinstance(raw_command, list) else (),
    )


def list_processes(settings: Settings | None = None) -> list[ProcessStatus]:
    """Every process with a pid file in ``run_dir``, oldest start first."""
    run_dir = (settings or get_settings()).run_dir
    if not run_dir.is_dir():
        return []
    statuses = [process_status(path.stem, settings) for path in sorted(run_dir.glob("*.pid"))]
    return sorted(statuses, key=lambda status: (status.started_at_s or 0.0, status.name))


# --- ports -------------------------------------------------------------------------------------


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if ``host:port`` cannot be bound because another socket holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Same option the JVM and most servers use, so TIME_WAIT leftovers do not count as busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise StackError(f"cannot check port {port} on {host}: {error}") from error
    return False


def ensure_ports_free(
    ports: Iterable[int], *, service: str, host: str = "127.0.0.1", hint: str = ""
) -> None:
    """Raise :class:`PortInUseError` naming the first busy port of ``ports``."""
    for port in ports:
        if port_in_use(port, host):
            raise PortInUseError(port, host, service, hint)


def port_accepts(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    """True if a TCP connection to ``host:port`` succeeds within ``timeout_s`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


# --- start and stop ----------------------------------------------------------------------------


def _remove_records(name: str, settings: Settings | None) -> None:
    for path in (pid_path(name, settings), meta_path(name, settings)):
        path.unlink(missing_ok=True)


def start_process(
    name: str,
    command: Sequence[str],
    *,
    ports: Sequence[int] = (),
    host: str = "127.0.0.1",
    port_hint: str = "",
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    settings: Settings | None = None,
) -> int:
    """Start ``command`` detached, in its own process group; return its pid.

    ``ports`` are checked free on ``host`` first (``port_hint`` tells the user how to pick another
    port) and recorded for ``status``. ``env`` entries are added to the current environment.
    Output goes to ``log_path(name)``, rotated by size (:func:`with_log_rotation`). Raises :class:`ProcessAlreadyRunningError` if ``name`` runs.
    """
    if is_running(name, settings):
        pid = read_pid(name, settings)
        raise ProcessAlreadyRunningError(f"{name} is already running (pid {pid})")
    _remove_records(name, settings)  # stale records of a process that died
    ensure_ports_free(ports, service=name, host=host, hint=port_hint)

    log_file = log_path(name, settings)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_path(name, settings).parent.mkdir(parents=True, exist_ok=True)
    started_at_s = time.time()
    with log_file.open("ab") as log_handle:
        stamp = datetime.fromtimestamp(started_at_s, UTC).isoformat(timespec="seconds")
        log_handle.write(f"\n=== {stamp} start: {' '.join(command)}\n".encode())
        log_handle.flush()
        child = subprocess.Popen(
            with_log_rotation(command, log_file, settings or get_settings()),
            stdin=subprocess.DEVNULL,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **env} if env else None,
            start_new_session=True,  # own session and process group: stop reaches children
            close_fds=True,
        )
    meta = {
        "name": name,
        "pid": child.pid,
        "command": list(command),
        "ports": list(ports),
        "started_at_s": started_at_s,
        "start_ticks": _start_ticks(child.pid),
        "log": str(log_file),
    }
    meta_path(name, settings).write_text(json.dumps(meta, indent=2))
    pid_path(name, settings).write_text(f"{child.pid}\n")
    logger.info("started %s pid=%d log=%s", name, child.pid, log_file)
    return child.pid


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _wait_for_exit(pid: int, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` seconds for ``pid`` to exit; True if it did."""
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL_S)
    return True


def _wait_for_group_exit(pgid: int, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` seconds for every process of group ``pgid`` to exit."""
    deadline = time.monotonic() + timeout_s
    while _group_alive(pgid):
        _reap_if_child(pgid)
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL_S)
    return True


def stop_process(name: str, *, timeout_s: float = 30.0, settings: Settings | None = None) -> bool:
    """Stop ``name``: SIGTERM its process group, wait ``timeout_s`` seconds, then SIGKILL.

    Returns True if a running process was stopped, False if none was running. The pid file and
    sidecar are removed either way.
    """
    pid = read_pid(name, settings)
    if pid is None or not is_running(name, settings):
        _remove_records(name, settings)
        return False
    # start_new_session made the process its group's leader: the pgid is the pid.
    logger.info("stopping %s pid=%d", name, pid)
    _signal_group(pid, signal.SIGTERM)
    if not _wait_for_exit(pid, timeout_s):
        logger.warning(
            "%s pid=%d ignored SIGTERM for %.0f s, sending SIGKILL", name, pid, timeout_s
        )
        _signal_group(pid, signal.SIGKILL)
        _wait_for_exit(pid, 5.0)
    # Children that outlived the leader get a short grace period, then SIGKILL.
    if not _wait_for_group_exit(pid, 2.0):
        _signal_group(pid, signal.SIGTERM)
        if not _wait_for_group_exit(pid, 5.0):
            _signal_group(pid, signal.SIGKILL)
            _wait_for_group_exit(pid, 5.0)
    _remove_records(name, settings)
    logger.info("stopped %s pid=%d", name, pid)
    return True


def tail_log(name: str, lines: int = 20, settings: Settings | None = None) -> str:
    """The last ``lines`` lines of the process log, or "" if there is none."""
    return tail_file(log_path(name, settings), lines)


def tail_file(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a text file, or "" if it does not exist."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@contextmanager
def exclusive_lock(name: str, settings: Settings | None = None) -> Iterator[None]:
    """Hold ``<run_dir>/<name>.lock`` exclusively (blocks), so two starters never race."""
    with exclusive_file_lock((settings or get_settings()).run_dir / f"{name}.lock"):
        yield


def wait_until_healthy(
    name: str,
    healthy: Callable[[], bool],
    *,
    service: str,
    target: str,
    logs: Sequence[Path],
    timeout_s: float,
    settings: Settings | None = None,
    poll_s: float = 0.25,
) -> float:
    """Block until ``healthy()``; return the seconds waited.

    Raises :class:`ServiceStartError` when the managed process ``name`` exits first, or after
    ``timeout_s`` seconds, naming ``logs`` (the last lines of each when it exited).
    """
    started = time.monotonic()
    where = " and ".join(str(log) for log in logs)
    while not healthy():
        if not is_running(name, settings):
            last = "\n".join(tail_file(log, 5) for log in logs)
            raise ServiceStartError(
                f"{service} exited during start-up; see {where}. Last lines:\n{last}"
            )
        if time.monotonic() - started > timeout_s:
            raise ServiceStartError(
                f"{service} did not answer on {target} within {timeout_s:.0f} s; see {where}"
            )
        time.sleep(poll_s)
    return time.monotonic() - started


STOPPING_MARKER = "stopping"


def stopping_marker(settings: Settings) -> Path:
    """``<run_dir>/stopping``: present while `rtc down` stops the platform (and until the next
    start), so that a supervisor task still in flight restarts nothing."""
    return settings.run_dir / STOPPING_MARKER
