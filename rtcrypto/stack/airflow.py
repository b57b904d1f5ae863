"""The local Airflow 3 in standalone mode (api-server, scheduler, dag-processor, triggerer).

``airflow standalone`` runs its four components as children of one process; the process manager
starts it in its own process group, so a stop reaches every component. Everything Airflow keeps
is under ``settings.airflow_home_dir`` (``<home>/airflow``): ``airflow.cfg`` (written by Airflow
on the first start, with its generated secrets), the SQLite metadata database, task logs and the
admin password file ``simple_auth_manager_passwords.json.generated``. The settings that matter are
passed as ``AIRFLOW__*`` environment variables (see :func:`airflow_env`), so they win over the
file: the repo's ``dags/`` and ``plugins/``, no examples, low parallelism, LocalExecutor, and the
api-server on ``127.0.0.1:<airflow_port>``. The Connections ``kafka_default``,
``elasticsearch_default`` and ``spark_default`` reach every component and task the same way, as
``AIRFLOW_CONN_*`` variables built from the settings (``rtcrypto/stack/airflow_connections.py``).

The password file is a secret: its path is reported, its content never logged.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from rtcrypto.config import PROJECT_ROOT, Settings, get_settings
from rtcrypto.stack import airflow_shim, process
from rtcrypto.stack.airflow_connections import connection_env
from rtcrypto.stack.errors import ServiceStartError, StackError, ToolMissingError

logger = logging.getLogger(__name__)

AIRFLOW_PROCESS = "airflow"
ADMIN_USER = "admin"
HEALTH_PATH = "/api/v2/monitor/health"
TOKEN_PATH = "/auth/token"
PASSWORD_FILE_NAME = "simple_auth_manager_passwords.json.generated"
# The alphabet SimpleAuthManager generates its passwords from (no look-alike characters).
_PASSWORD_ALPHABET = "abcdefghkmnpqrstuvwxyzABCDEFGHKMNPQRSTUVWXYZ23456789"
DAGS_FOLDER = PROJECT_ROOT / "dags"
PLUGINS_FOLDER = PROJECT_ROOT / "plugins"
_PORT_HINT = (
    "set RTC_AIRFLOW_PORT (RTC_AIRFLOW_WORKER_LOG_PORT, RTC_AIRFLOW_TRIGGER_LOG_PORT) to free ports"
)


@dataclass(frozen=True)
class AirflowPaths:
    """Where the local Airflow keeps its configuration, database, logs and admin password."""

    home_dir: Path
    config_file: Path
    database: Path
    logs_dir: Path
    password_file: Path
    dags_folder: Path
    plugins_folder: Path
    process_log: Path


@dataclass(frozen=True)
class AirflowStart:
    """Outcome of :func:`start_airflow`; times in seconds (0 where not waited for)."""

    url: str
    pid: int | None
    already_running: bool
    seconds_to_migrate: float
    seconds_to_healthy: float
    password_file: Path


def airflow_paths(settings: Settings | None = None) -> AirflowPaths:
    """The local Airflow's files: AIRFLOW_HOME, config, SQLite database, logs, password file."""
    settings = settings or get_settings()
    home_dir = settings.airflow_home_dir
    return AirflowPaths(
        home_dir=home_dir,
        config_file=home_dir / "airflow.cfg",
        database=home_dir / "airflow.db",
        logs_dir=home_dir / "logs",
        password_file=home_dir / PASSWORD_FILE_NAME,
        dags_folder=DAGS_FOLDER,
        plugins_folder=PLUGINS_FOLDER,
        process_log=process.log_path(AIRFLOW_PROCESS, settings),
    )


def airflow_bin() -> Path:
    """The ``airflow`` program of this Python environment (standalone re-runs it by bare name)."""
    candidate = Path(sys.executable).parent / "airflow"
    if not candidate.is_file():
        raise ToolMissingError(
            f"no `airflow` next to {sys.executable}: install the requirements "
            "(`pip install -r requirements.txt -c constraints.txt`)"
        )
    return candidate


def airflow_env(settings: Settings | None = None) -> dict[str, str]:
    """The environment additions that configure the local Airflow (pure, no secrets).

    The venv's ``bin/`` comes first on PATH: ``airflow standalone`` starts its components with
    ``subprocess`` by the bare name ``airflow``. Before it, unless ``airflow_serve_logs``, the
    folder of the script that starts them without their log servers (``airflow_shim``).
    """
    settings = settings or get_settings()
    paths = airflow_paths(settings)
    bin_dir = str(Path(sys.executable).parent)
    if not settings.airflow_serve_logs:
        bin_dir = f"{airflow_shim.shim_dir(settings)}{os.pathsep}{bin_dir}"
    path = os.environ.get("PATH", "")
    return {
        "AIRFLOW_HOME": str(paths.home_dir),
        "PATH": f"{bin_dir}{os.pathsep}{path}" if path else bin_dir,
        "AIRFLOW__CORE__DAGS_FOLDER": str(paths.dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(paths.plugins_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # 32 LocalExecutor workers by default (about 5 GB) on a 2-core machine: keep it small.
        "AIRFLOW__CORE__PARALLELISM": str(settings.airflow_parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(settings.airflow_parallelism),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(paths.password_file),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{paths.database}",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(settings.airflow_port),
        "AIRFLOW__API__WORKERS": "1",
        # Task workers reach the api-server's execution API here (default: localhost:8080).
        "AIRFLOW__API__BASE_URL": f"{settings.airflow_url}/",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.airflow_url}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(settings.airflow_worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(settings.airflow_trigger_log_port),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(paths.logs_dir),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # The project's settings reach the DAGs' tasks (history folder, home) unchanged.
        "RTC_HOME": str(settings.home),
    }


def airflow_process_env(
    settings: Settings, extra_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The standalone's environment additions: :func:`airflow_env`, the Connections
    (``AIRFLOW_CONN_*``, holding secrets: environment only, never a command line or a log), then
    ``extra_env``. The same serves a shell's ``airflow connections get kafka_default``."""
    return {**airflow_env(settings), **connection_env(settings), **(extra_env or {})}


def airflow_ports(settings: Settings) -> tuple[int, ...]:
    """The TCP ports the local Airflow binds: the api-server's on 127.0.0.1; the log servers'
    (every interface) only with ``airflow_serve_logs``."""
    if not settings.airflow_serve_logs:
        return (settings.airflow_port,)
    return (
        settings.airflow_port,
        settings.airflow_worker_log_port,
        settings.airflow_trigger_log_port,
    )


# --- database ----------------------------------------------------------------------------------


def migrate_db(
    settings: Settings | None = None,
    *,
    timeout_s: float = 300.0,
    env: Mapping[str, str] | None = None,
    database: str = "",
) -> float:
    """``airflow db migrate`` (idempotent) on the local SQLite database; return the seconds taken.

    ``env`` replaces :func:`airflow_env` (the cluster's PostgreSQL), ``database`` names it."""
    settings = settings or get_settings()
    paths = airflow_paths(settings)
    paths.home_dir.mkdir(parents=True, exist_ok=True)
    database = database or str(paths.database)
    started = time.monotonic()
    try:
        completed = subprocess.run(
            [str(airflow_bin()), "db", "migrate"],
            env={**os.environ, **(airflow_env(settings) if env is None else env)},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise StackError(
            f"`airflow db migrate` on {database} did not finish in {timeout_s:.0f} s"
        ) from error
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip().splitlines()[-8:]
        raise StackError(
            f"`airflow db migrate` on {database} failed (exit {completed.returncode}): "
            + " | ".join(output)
        )
    return time.monotonic() - started


# --- health and REST ---------------------------------------------------------------------------


def health(url: str, timeout_s: float = 2.0) -> dict[str, object] | None:
    """The api-server's ``/api/v2/monitor/health`` document, or None unless it answers HTTP 200."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}{HEALTH_PATH}", timeout=timeout_s) as reply:
            if reply.status != 200:
                return None
            document = json.loads(reply.read())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def component_states(document: Mapping[str, object]) -> dict[str, str]:
    """``{"metadatabase": "healthy", "scheduler": "unhealthy", ...}`` from a health document."""
    states: dict[str, str] = {}
    for component, detail in document.items():
        if isinstance(detail, dict):
            states[component] = str(detail.get("status", "unknown"))
    return states


def wait_for_airflow(settings: Settings | None = None, *, timeout_s: float = 180.0) -> float:
    """Block until the api-server answers its health endpoint with 200; return the seconds waited.

    Raises :class:`ServiceStartError` if the process exits or ``timeout_s`` seconds pass.
    """
    settings = settings or get_settings()
    return process.wait_until_healthy(
        AIRFLOW_PROCESS,
        lambda: health(settings.airflow_url) is not None,
        service="Airflow",
        target=f"{settings.airflow_url}{HEALTH_PATH}",
        logs=[process.log_path(AIRFLOW_PROCESS, settings)],
        timeout_s=timeout_s,
        settings=settings,
        poll_s=0.5,
    )


def ensure_admin_password(settings: Settings | None = None) -> Path:
    """Create the admin password file (mode 0600) unless it holds one; return its path.

    Airflow would generate the password itself, but it prints it to stdout, which is the
    process log here: writing the file first keeps the password out of every log.
    """
    password_file = airflow_paths(settings).password_file
    try:
        existing = json.loads(password_file.read_text())
    except (OSError, ValueError):
        existing = None
    if isinstance(existing, dict) and isinstance(existing.get(ADMIN_USER), str):
        password_file.chmod(0o600)
        return password_file
    password_file.parent.mkdir(parents=True, exist_ok=True)
    password = "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(16))
    descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(json.dumps({ADMIN_USER: password}) + "\n")
    password_file.chmod(0o600)
    return password_file


def admin_password(settings: Settings | None = None) -> str:
    """The generated admin password (for REST clients and tests); never log the result."""
    password_file = airflow_paths(settings).password_file
    try:
        passwords = json.loads(password_file.read_text())
    except (OSError, ValueError) as error:
        raise StackError(f"no readable admin password file at {password_file}") from error
    password = passwords.get(ADMIN_USER) if isinstance(passwords, dict) else None
    if not isinstance(password, str):
        raise StackError(f"{password_file} holds no password for {ADMIN_USER!r}")
    return password


def api_token(url: str, username: str, password: str, timeout_s: float = 10.0) -> str:
    """A JWT for the REST API from ``POST /auth/token`` (SimpleAuthManager)."""
    body = json.dumps({"username": username, "password": password}).encode()
    request = urllib.request.Request(
        f"{url.rstrip('/')}{TOKEN_PATH}",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        document = _open_json(request, timeout_s)
    except urllib.error.HTTPError as error:
        raise StackError(f"Airflow refused a token for {username!r}: HTTP {error.code}") from error
    except (OSError, ValueError) as error:
        raise StackError(f"cannot get a token from {url}{TOKEN_PATH}: {error}") from error
    token = document.get("access_token") if isinstance(document, dict) else None
    if not isinstance(token, str):
        raise StackError(f"{url}{TOKEN_PATH} answered without an access_token")
    return token


def api_request(
    url: str,
    path: str,
    token: str,
    *,
    method: str = "GET",
    body: Mapping[str, object] | None = None,
    timeout_s: float = 10.0,
) -> object:
    """``<method> <url><path>`` on the REST API (``/api/v2/...``) with a bearer token; the JSON.

    A 5xx answer is retried a few times with backoff: on SQLite the api-server answers 500 while
    the scheduler or the DAG processor holds the database lock. Raises
    ``urllib.error.HTTPError`` on a client error or when the retries run out.
    """
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(
        f"{url.rstrip('/')}{path}", data=data, headers=headers, method=method
    )
    return _open_json(request, timeout_s)


def _open_json(request: urllib.request.Request, timeout_s: float) -> object:
    """The decoded JSON answer; 5xx answers retried with backoff (see ``api_request``)."""
    for attempt in Retrying(
        retry=retry_if_exception(_server_error),
        wait=wait_exponential(multiplier=0.5, max=4),
        stop=stop_after_attempt(6),
        reraise=True,
    ):
        with attempt, urllib.request.urlopen(request, timeout=timeout_s) as reply:
            return json.loads(reply.read() or b"null")
    raise AssertionError("unreachable: Retrying re-raises the last error")


def _server_error(error: BaseException) -> bool:
    return isinstance(error, urllib.error.HTTPError) and error.code >= 500


def api_get(url: str, path: str, token: str, timeout_s: float = 10.0) -> object:
    """``GET <url><path>`` on the REST API with a bearer token; the decoded JSON."""
    return api_request(url, path, token, timeout_s=timeout_s)


# --- lifecycle ---------------------------------------------------------------------------------


def start_airflow(
    settings: Settings | None = None,
    *,
    timeout_s: float = 180.0,
    wait: bool = True,
    extra_env: Mapping[str, str] | None = None,
) -> AirflowStart:
    """Start ``airflow standalone`` unless it runs already; wait for health unless ``wait`` is off.

    ``extra_env`` is added to the standalone's environment after :func:`airflow_env` (its
    entries win), and every component and task process inherits it: for example
    ``services.settings_env(settings)``, so that the DAGs' tasks see the same ``RTC_*`` settings
    (topics, bootstrap, heartbeat interval) as the caller. Ignored when Airflow runs already.

    Runs ``airflow db migrate`` first (idempotent): before the start when ``wait`` is on, else
    inside the managed process (``sh -c 'airflow db migrate && exec airflow standalone'``), so
    the call returns at once and the api-server answers about 25 s later. Raises :class:`StackError` subclasses with a
    message a user can act on (busy port, failed migration, exit during start-up).
    """
    settings = settings or get_settings()
    paths = airflow_paths(settings)
    with process.exclusive_lock(AIRFLOW_PROCESS, settings):
        if process.is_running(AIRFLOW_PROCESS, settings):
            seconds = wait_for_airflow(settings, timeout_s=timeout_s) if wait else 0.0
            pid = process.read_pid(AIRFLOW_PROCESS, settings)
            return AirflowStart(settings.airflow_url, pid, True, 0.0, seconds, paths.password_file)
        program = str(airflow_bin())
        ports = airflow_ports(settings)
        process.ensure_ports_free(ports, service="airflow", hint=_PORT_HINT)
        if wait:
            seconds_to_migrate = migrate_db(settings)
            command = [program, "standalone"]
        else:
            # In the background, the migration runs inside the managed process: no wait here.
            seconds_to_migrate = 0.0
            paths.home_dir.mkdir(parents=True, exist_ok=True)
            quoted = shlex.quote(program)
            command = ["/bin/sh", "-c", f"{quoted} db migrate && exec {quoted} standalone"]
        ensure_admin_password(settings)
        if not settings.airflow_serve_logs:
            airflow_shim.write_shim(settings, Path(program))
        pid = process.start_process(
            AIRFLOW_PROCESS,
            command,
            ports=ports,
            port_hint=_PORT_HINT,
            env=airflow_process_env(settings, extra_env),
            cwd=paths.home_dir,
            settings=settings,
        )
        seconds = 0.0  # not waited for: unknown yet
        if wait:
            try:
                seconds = wait_for_airflow(settings, timeout_s=timeout_s)
            except ServiceStartError:
                process.stop_process(AIRFLOW_PROCESS, settings=settings)
                raise
    logger.info(
        "airflow started url=%s pid=%d migrate=%.1f s healthy after %.1f s password file=%s",
        settings.airflow_url,
        pid,
        seconds_to_migrate,
        seconds,
        paths.password_file,
    )
    return AirflowStart(
        settings.airflow_url, pid, False, seconds_to_migrate, seconds, paths.password_file
    )


def stop_airflow(settings: Settings | None = None, *, timeout_s: float = 30.0) -> bool:
    """Stop the whole standalone process group (TERM, then KILL); True if it ran.

    Airflow runs each task in a process group of its own (its supervisor's ``setpgid``), which
    the standalone's group signal does not reach: a retrain's cmdstan fit would outlive the stop.
    Those groups, found under the standalone before it stops, get TERM then KILL as well.
    """
    return stop_with_task_groups(AIRFLOW_PROCESS, settings or get_settings(), timeout_s=timeout_s)


def stop_with_task_groups(name: str, settings: Settings, *, timeout_s: float = 30.0) -> bool:
    """Stop the managed process ``name`` and the task process groups under it (see
    :func:`stop_airflow`); True if it ran."""
    pid = process.read_pid(name, settings)
    groups = task_process_groups(pid) if pid and process.is_running(name, settings) else set()
    stopped = process.stop_process(name, timeout_s=timeout_s, settings=settings)
    for signum in (signal.SIGTERM, signal.SIGKILL):
        live = [group for group in groups if _signal_group(group, signum)]
        deadline = time.monotonic() + 5.0
        while live and time.monotonic() < deadline:
            time.sleep(0.2)
            live = [group for group in live if _group_running(group)]
        if not live:
            break
    return stopped


def _proc_table() -> dict[int, tuple[str, int, int]]:
    """``{pid: (state, parent pid, process group)}`` of every process (Linux ``/proc``)."""
    table: dict[int, tuple[str, int, int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        table[int(entry.name)] = (fields[0], int(fields[1]), int(fields[2]))
    return table


def task_process_groups(pid: int) -> set[int]:
    """Process groups of ``pid``'s descendants other than its own (Linux ``/proc``)."""
    table = _proc_table()
    tree, grew = {pid}, True
    while grew:
        children = {child for child, row in table.items() if row[1] in tree} - tree
        tree |= children
        grew = bool(children)
    own = table[pid][2] if pid in table else pid
    return {table[member][2] for member in tree if member in table} - {own}


def _group_running(pgid: int) -> bool:
    """True while a process of group ``pgid`` runs (zombies, awaiting their reaper, do not)."""
    return any(row[2] == pgid and row[0] != "Z" for row in _proc_table().values())


def _signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to group ``pgid`` (0: only probe); False once the group is gone."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # not ours: leave it
    return True
