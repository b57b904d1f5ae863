"""Airflow of the cluster topology: PostgreSQL, Redis, the CeleryExecutor and Celery workers.

Each component is a managed process of its own (``rtc down`` stops every one):
``postgres`` and ``redis`` (``rtcrypto/stack/postgres.py``, ``redis_server.py``), then
``airflow-api-server``, ``airflow-scheduler``, ``airflow-dag-processor``, ``airflow-triggerer``
and ``airflow-worker-1`` .. ``airflow-worker-N`` (``airflow celery worker``, one per port of
``RTC_CLUSTER_CELERY_WORKER_LOG_PORTS``). They share the standalone's configuration
(:func:`rtcrypto.stack.airflow.airflow_env`: the repo's DAGs and plugins, the admin user and
password file, the api-server's port, the Connections), with the executor, database and broker
changed (:func:`cluster_env`).

Secrets: the metadata database, broker and result-backend URLs hold passwords, so they are
written to 0600 files (``<airflow home>/secrets/``) and Airflow reads them with
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD``, ``AIRFLOW__CELERY__BROKER_URL_CMD`` and
``AIRFLOW__CELERY__RESULT_BACKEND_CMD`` (``cat <file>``; Airflow 3.3 runs ``_CMD`` for its
sensitive options): no password is in a command line or in an environment value.

A worker that dies mid-task: its task's supervisor stops heartbeating, the scheduler fails that
try after ``RTC_CLUSTER_AIRFLOW_TASK_HEARTBEAT_TIMEOUT_S`` and the DAG's ``retries`` queue it
again, for any live worker. ``RTC_CLUSTER_AIRFLOW_RETRY_DELAY_MAX_S`` caps every task's retry
delay (a cluster policy in ``<airflow home>/config/airflow_local_settings.py``).
"""

from __future__ import annotations

import importlib.util
import logging
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rtcrypto.config import Settings
from rtcrypto.stack import airflow, cluster_secrets, postgres, process, redis_server
from rtcrypto.stack.airflow_connections import connection_env
from rtcrypto.stack.errors import ServiceStartError

logger = logging.getLogger(__name__)

API_SERVER = "airflow-api-server"
SCHEDULER = "airflow-scheduler"
DAG_PROCESSOR = "airflow-dag-processor"
TRIGGERER = "airflow-triggerer"
COMPONENTS = (API_SERVER, SCHEDULER, DAG_PROCESSOR, TRIGGERER)
# the api-server's health document names the others so
HEALTH_NAMES = {SCHEDULER: "scheduler", DAG_PROCESSOR: "dag_processor", TRIGGERER: "triggerer"}
SQL_ALCHEMY_CONN_SECRET = "sql_alchemy_conn"
BROKER_URL_SECRET = "celery_broker_url"
RESULT_BACKEND_SECRET = "celery_result_backend"
ASYNC_CONN_SECRET = "sql_alchemy_conn_async"
POLICY_FILE = "airflow_local_settings.py"
_PORT_HINT = (
    "set RTC_AIRFLOW_PORT, RTC_AIRFLOW_TRIGGER_LOG_PORT, RTC_CLUSTER_CELERY_WORKER_LOG_PORTS"
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class AirflowClusterStart:
    """Outcome of :func:`start_airflow_cluster`; every figure in seconds."""

    url: str
    seconds: dict[str, float] = field(default_factory=dict)
    password_file: Path | None = None


def worker_name(index: int) -> str:
    """``airflow-worker-<index>`` (1-based)."""
    return f"airflow-worker-{index}"


def worker_names(settings: Settings) -> list[str]:
    """Every Celery worker's process name."""
    return [worker_name(index) for index in range(1, settings.cluster.celery_workers + 1)]


def celery_hostname(settings: Settings, index: int) -> str:
    """The Celery node name of worker ``index``: ``airflow-worker-<index>@<host>``."""
    return f"{worker_name(index)}@{settings.cluster.host}"


def process_names(settings: Settings) -> list[str]:
    """Every managed process of the cluster's Airflow, in start order."""
    return [
        postgres.POSTGRES_PROCESS,
        redis_server.REDIS_PROCESS,
        *COMPONENTS,
        *worker_names(settings),
    ]


# --- URLs (secrets) and environment -------------------------------------------------------------


def database_url(settings: Settings, password: str) -> str:
    """Airflow's metadata database on the cluster's PostgreSQL (holds a password)."""
    cluster = settings.cluster
    return (
        f"postgresql+psycopg2://{postgres.AIRFLOW_ROLE}:{password}@{cluster.host}:"
        f"{cluster.postgres_port}/{postgres.AIRFLOW_DATABASE}"
    )


def broker_url(settings: Settings, password: str) -> str:
    """Celery's broker: the cluster's Redis, database 0 (holds a password)."""
    return f"redis://:{password}@{settings.cluster.host}:{settings.cluster.redis_port}/0"


def result_backend_url(settings: Settings, password: str) -> str:
    """Celery's result backend: the ``celery_results`` database (holds a password)."""
    cluster = settings.cluster
    return (
        f"db+postgresql+psycopg2://{postgres.CELERY_ROLE}:{password}@{cluster.host}:"
        f"{cluster.postgres_port}/{postgres.CELERY_DATABASE}"
    )


def asyncpg_installed() -> bool:
    """True if the asyncpg driver (Airflow's async sessions on PostgreSQL) is importable."""
    return importlib.util.find_spec("asyncpg") is not None


def write_url_files(settings: Settings) -> None:
    """The URL files Airflow's ``_CMD`` options read (0600), from the password files."""
    read = cluster_secrets.read_secret
    database = database_url(settings, read(settings, postgres.AIRFLOW_SECRET))
    async_database = database.replace("postgresql+psycopg2://", "postgresql+asyncpg://", 1)
    for name, url in (
        (SQL_ALCHEMY_CONN_SECRET, database),
        (ASYNC_CONN_SECRET, async_database),
        (BROKER_URL_SECRET, broker_url(settings, read(settings, redis_server.REDIS_SECRET))),
        (
            RESULT_BACKEND_SECRET,
            result_backend_url(settings, read(settings, postgres.CELERY_SECRET)),
        ),
    ):
        cluster_secrets.write_secret(cluster_secrets.secret_path(settings, name), url)


def _cat(settings: Settings, name: str) -> str:
    return f"cat {shlex.quote(str(cluster_secrets.secret_path(settings, name)))}"


def cluster_env(settings: Settings) -> dict[str, str]:
    """The environment of every component (pure, no secret: the URLs are read by ``_CMD``)."""
    env = airflow.airflow_env(settings)
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    cluster = settings.cluster
    if asyncpg_installed():
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC_CMD"] = _cat(settings, ASYNC_CONN_SECRET)
    else:
        # Airflow derives postgresql+asyncpg:// and fails at start without asyncpg: empty turns
        # its async sessions off (only the dag-run "wait" and state-store endpoints use them)
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = ""
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD": _cat(settings, SQL_ALCHEMY_CONN_SECRET),
            "AIRFLOW__CELERY__BROKER_URL_CMD": _cat(settings, BROKER_URL_SECRET),
            "AIRFLOW__CELERY__RESULT_BACKEND_CMD": _cat(settings, RESULT_BACKEND_SECRET),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(cluster.celery_worker_concurrency),
            # a worker takes only what it runs: a dead worker strands no prefetched message
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(
                cluster.airflow_task_heartbeat_timeout_s
            ),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": str(
                max(5, min(10, cluster.airflow_task_heartbeat_timeout_s // 3))
            ),
        }
    )
    return env


def component_env(
    settings: Settings, name: str, extra_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """:func:`cluster_env`, the Connections, ``extra_env``; a worker's own log-server port."""
    env = {**cluster_env(settings), **connection_env(settings), **(extra_env or {})}
    names = worker_names(settings)
    if name in names:
        port = settings.cluster.celery_worker_log_ports[names.index(name)]
        env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(port)
    return env


def component_command(settings: Settings, name: str, program: Path) -> list[str]:
    """The command line of component or worker ``name`` (no secret in it)."""
    skip_logs = [] if settings.airflow_serve_logs else ["--skip-serve-logs"]
    if name == API_SERVER:
        return [str(program), "api-server"]
    if name in (SCHEDULER, TRIGGERER):
        return [str(program), name.removeprefix("airflow-"), *skip_logs]
    if name == DAG_PROCESSOR:
        return [str(program), "dag-processor"]
    names = worker_names(settings)
    if name not in names:
        raise ValueError(f"unknown Airflow component {name!r}")
    index = names.index(name) + 1
    return [
        str(program),
        "celery",
        "worker",
        "--celery-hostname",
        celery_hostname(settings, index),
        "--concurrency",
        str(settings.cluster.celery_worker_concurrency),
        *skip_logs,
    ]


RESTART_MARKER = "rtc-restart-loop:"


def restart_loop(command: list[str], delay_s: int, name: str = "component") -> list[str]:
    """``command`` under a POSIX shell loop that starts it again ``delay_s`` seconds after it
    exits (the scheduler, dag-processor and triggerer exit when PostgreSQL is gone). A stop
    signals the whole process group: the component exits, then the shell (its trap)."""
    script = (
        "trap 'exit 143' TERM INT HUP\n"
        "while :; do\n"
        '  "$@"\n'
        f'  echo "{RESTART_MARKER} {name} exited with status $?; starting it again in {delay_s} s"\n'
        f"  sleep {delay_s}\n"
        "done\n"
    )
    return ["/bin/sh", "-c", script, "rtc-airflow-component", *command]


def component_ports(settings: Settings, name: str) -> tuple[int, ...]:
    """The TCP ports component ``name`` binds (log servers only when they are served)."""
    if name == API_SERVER:
        return (settings.airflow_port,)
    if not settings.airflow_serve_logs:
        return ()
    if name == TRIGGERER:
        return (settings.airflow_trigger_log_port,)
    names = worker_names(settings)
    if name in names:
        return (settings.cluster.celery_worker_log_ports[names.index(name)],)
    return ()


def policy_source(max_retry_delay_s: int) -> str:
    """``airflow_local_settings.py``: a task policy capping every task's retry delay."""
    return (
        '"""Written by rtcrypto/stack/airflow_cluster.py (RTC_CLUSTER_AIRFLOW_RETRY_DELAY_MAX_S)."""\n'
        "from datetime import timedelta\n\n"
        f"MAX_RETRY_DELAY = timedelta(seconds={max_retry_delay_s})\n\n\n"
        "def task_policy(task):\n"
        "    if task.retry_delay is not None and task.retry_delay > MAX_RETRY_DELAY:\n"
        "        task.retry_delay = MAX_RETRY_DELAY\n"
    )


def write_policy(settings: Settings) -> Path | None:
    """Write (or remove) the retry-delay policy in ``<airflow home>/config``."""
    path = settings.airflow_home_dir / "config" / POLICY_FILE
    cap = settings.cluster.airflow_retry_delay_max_s
    if cap is None:
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(policy_source(cap))
    return path


# --- health ------------------------------------------------------------------------------------


def celery_ping(settings: Settings, timeout_s: float = 2.0) -> set[str]:
    """Node names of the Celery workers that answer a ping through the broker."""
    from celery import Celery

    url = broker_url(settings, cluster_secrets.read_secret(settings, redis_server.REDIS_SECRET))
    app = Celery("rtc-ping", broker=url, set_as_current=False)
    try:
        replies = app.control.ping(timeout=timeout_s) or []
    except Exception:  # noqa: BLE001 (broker down: no worker answers)
        return set()
    finally:
        app.close()
    return {name for reply in replies for name in reply}


def components_healthy(settings: Settings) -> bool:
    """True once the api-server answers and reports every component healthy."""
    document = airflow.health(settings.airflow_url, timeout_s=10.0)
    if document is None:
        return False
    states = airflow.component_states(document)
    wanted = ("metadatabase", *HEALTH_NAMES.values())
    return all(states.get(name) == "healthy" for name in wanted)


def restarted_since_start(log_text: str) -> bool:
    """True if the restart loop started its component again since the log's last start line
    (``=== <time> start: <command>``). The marker counts at a line's start only: the start
    line's command (the loop's script) holds it after ``echo "``."""
    return f"\n{RESTART_MARKER}" in log_text[log_text.rfind("\n=== ") :]


def _ensure_all_running(settings: Settings, started: Sequence[str]) -> None:
    """Raise :class:`ServiceStartError` naming the first component or worker that exited (or,
    of those ``started`` now, went through its restart loop)."""
    for name in (*COMPONENTS, *worker_names(settings)):
        log = process.log_path(name, settings)
        restarted = name in started and restarted_since_start(process.tail_file(log, 400))
        if restarted or not process.is_running(name, settings):
            raise ServiceStartError(
                f"Airflow's {name} exited during start-up; see {log}. Last lines:\n"
                + process.tail_file(log, 8)
            )


def _wait(
    settings: Settings,
    name: str,
    check: Callable[[], bool],
    what: str,
    timeout_s: float,
    started: Sequence[str],
) -> float:
    def healthy() -> bool:
        _ensure_all_running(settings, started)
        return check()

    return process.wait_until_healthy(
        name,
        healthy,
        service=f"Airflow ({name})",
        target=what,
        logs=[process.log_path(name, settings)],
        timeout_s=timeout_s,
        settings=settings,
        poll_s=1.0,
    )


# --- lifecycle ---------------------------------------------------------------------------------


def start_airflow_cluster(
    settings: Settings,
    progress: Progress,
    *,
    timeout_s: float = 300.0,
    extra_env: Mapping[str, str] | None = None,
) -> AirflowClusterStart:
    """Start PostgreSQL, Redis, ``airflow db migrate``, the components and the workers (each
    unless it runs); wait until the api-server reports every component healthy and every worker
    answers a Celery ping. ``extra_env`` reaches every component and task (e.g. ``RTC_*``)."""
    seconds: dict[str, float] = {}
    started = time.monotonic()
    progress(f"postgres: {settings.cluster.host}:{settings.cluster.postgres_port}")
    seconds["postgres"] = postgres.start_postgres(settings, timeout_s=min(timeout_s, 120.0))
    progress(f"redis: {settings.cluster.host}:{settings.cluster.redis_port}")
    seconds["redis"] = redis_server.start_redis(settings, timeout_s=min(timeout_s, 60.0))
    write_url_files(settings)
    password_file = airflow.ensure_admin_password(settings)
    write_policy(settings)
    program = airflow.airflow_bin()
    with process.exclusive_lock("airflow-cluster", settings):
        if not process.is_running(API_SERVER, settings):
            progress("airflow: db migrate on PostgreSQL")
            seconds["migrate"] = airflow.migrate_db(
                settings,
                timeout_s=timeout_s,
                env=cluster_env(settings),
                database=f"postgresql {postgres.AIRFLOW_DATABASE}",
            )
        launched: list[str] = []
        for name in (*COMPONENTS, *worker_names(settings)):
            if process.is_running(name, settings):
                continue
            launched.append(name)
            progress(f"airflow: {name}")
            process.start_process(
                name,
                restart_loop(
                    component_command(settings, name, program),
                    settings.cluster.airflow_restart_delay_s,
                    name,
                ),
                ports=component_ports(settings, name),
                port_hint=_PORT_HINT,
                env=component_env(settings, name, extra_env),
                cwd=settings.airflow_home_dir,
                settings=settings,
            )
    try:
        remaining = max(10.0, timeout_s - (time.monotonic() - started))
        _wait(
            settings,
            API_SERVER,
            lambda: components_healthy(settings),
            f"{settings.airflow_url}{airflow.HEALTH_PATH}",
            remaining,
            launched,
        )
        seconds["components_healthy"] = time.monotonic() - started
        wanted = {celery_hostname(settings, i + 1) for i in range(settings.cluster.celery_workers)}
        remaining = max(10.0, timeout_s - (time.monotonic() - started))
        _wait(
            settings,
            worker_name(1),
            lambda: celery_ping(settings) >= wanted,
            f"a Celery ping of {', '.join(sorted(wanted))}",
            remaining,
            launched,
        )
    except ServiceStartError:
        stop_airflow_cluster(settings)
        raise
    seconds["total"] = time.monotonic() - started
    progress(f"airflow: healthy at {settings.airflow_url} after {seconds['total']:.0f} s")
    return AirflowClusterStart(settings.airflow_url, seconds, password_file)


def stop_airflow_cluster(settings: Settings, *, timeout_s: float = 30.0) -> list[str]:
    """Stop workers (and their tasks), components, Redis, PostgreSQL; the names that ran."""
    names = (*worker_names(settings), *reversed(COMPONENTS))
    # all at once: each waits for its own exit (a worker or the api-server takes 5-15 s)
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        ran = list(
            pool.map(
                lambda name: airflow.stop_with_task_groups(name, settings, timeout_s=timeout_s),
                names,
            )
        )
    stopped = [name for name, was_running in zip(names, ran, strict=True) if was_running]
    if process.stop_process(redis_server.REDIS_PROCESS, timeout_s=timeout_s, settings=settings):
        stopped.append(redis_server.REDIS_PROCESS)
    if postgres.stop_postgres(settings, timeout_s=timeout_s):
        stopped.append(postgres.POSTGRES_PROCESS)
    return stopped


def airflow_cluster_status(settings: Settings) -> list[str]:
    """Lines for ``rtc status``: PostgreSQL, Redis, each component's health, each worker."""
    lines = [postgres.postgres_status(settings), redis_server.redis_status(settings)]
    document = airflow.health(settings.airflow_url, timeout_s=10.0)
    states = airflow.component_states(document) if document else {}
    for name in COMPONENTS:
        status = process.process_status(name, settings)
        if not status.running:
            lines.append(f"{name}: not running")
            continue
        if name == API_SERVER:
            state = "healthy" if document else f"not answering {airflow.HEALTH_PATH}"
        else:
            state = states.get(HEALTH_NAMES[name], "unknown")
        lines.append(f"{name}: running pid {status.pid}, {state}")
    redis_up = process.is_running(redis_server.REDIS_PROCESS, settings)
    online = celery_ping(settings, timeout_s=1.0) if redis_up else set()
    for index, name in enumerate(worker_names(settings), start=1):
        status = process.process_status(name, settings)
        node = celery_hostname(settings, index)
        answer = "online" if node in online else "NOT answering a Celery ping"
        running = f"running pid {status.pid}" if status.running else "not running"
        lines.append(f"{name} ({node}): {running}, {answer}")
    return lines
