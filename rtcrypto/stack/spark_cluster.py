"""Spark standalone in the cluster topology: one master and N workers, from the pyspark package.

Started with the distribution's own launcher classes (``org.apache.spark.deploy.master.Master``
and ``org.apache.spark.deploy.worker.Worker``) on ``java -cp '<pyspark>/jars/*'``, each a
managed process of :mod:`rtcrypto.stack.process` (``spark-master``, ``spark-worker-1`` ...
``spark-worker-N``; N = ``len(RTC_CLUSTER_SPARK_WORKER_PORTS)``), so ``rtc down`` stops them.
An executor is a child of its worker, in the worker's process group: stopping (or kill -9 of
the group of) a worker ends its executors too.

- RPC: the master on ``RTC_CLUSTER_HOST:RTC_CLUSTER_SPARK_MASTER_PORT``, each worker on its
  ``RTC_CLUSTER_SPARK_WORKER_PORTS`` entry, offering ``RTC_CLUSTER_SPARK_WORKER_CORES`` cores
  and ``RTC_CLUSTER_SPARK_WORKER_MEMORY`` to executors; the daemons' own heap is
  ``RTC_CLUSTER_SPARK_DAEMON_MEMORY``.
- Web UIs (and their JSON, read by :func:`spark_cluster_status`, parsed by
  :mod:`rtcrypto.stack.spark_json`) on loopback only (``SPARK_LOCAL_IP=127.0.0.1``: Spark binds
  its UIs there), on the ``*_UI_PORT(S)`` settings.
- Work folders (executors' jars, stdout and stderr): ``<run_dir>/spark-cluster/worker-<n>``.

The jobs are submitted in client mode by ``rtcrypto.spark.submit`` (master ``spark://...``);
their checkpoints stay under ``<run_dir>/checkpoints``, a path every worker of this machine
reads and writes (the state stores are written by the executors). On several machines it would
have to be a shared file system.
"""

from __future__ import annotations

import importlib.util
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rtcrypto.config import Settings
from rtcrypto.stack import maven, process
from rtcrypto.stack.errors import ServiceStartError, StackError
from rtcrypto.stack.spark_json import (
    ALIVE,
    ExecutorInfo,
    MasterState,
    SparkStatusError,
    WorkerInfo,
    parse_master_json,
    parse_worker_json,
)

Progress = Callable[[str], None]  # receives one line of text per step

SPARK_MASTER_PROCESS = "spark-master"
MASTER_MAIN_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_MAIN_CLASS = "org.apache.spark.deploy.worker.Worker"
UI_HOST = "127.0.0.1"  # the master's and workers' web UIs: loopback whatever RTC_CLUSTER_HOST is
_PORT_HINT = "set the RTC_CLUSTER_SPARK_*_PORT(S) settings to free ports"
_HTTP_TIMEOUT_S = 3.0
_SPARK_CORE_JAR = re.compile(r"^spark-core_(\d+\.\d+)-.+\.jar$")
# Spark's daemons log at INFO to stderr (the managed log); what they print per heartbeat is DEBUG
_DAEMON_JAVA_OPTIONS = ("-XX:+UseG1GC", "-Djava.awt.headless=true")


# --- names and paths ---------------------------------------------------------------------------


def spark_worker_process(index: int) -> str:
    """``spark-worker-<index>`` (1-based): the managed process of one worker."""
    return f"spark-worker-{index}"


def spark_cluster_processes(settings: Settings) -> list[str]:
    """Every member's managed-process name: the master first, then the workers in order."""
    workers = range(1, settings.cluster.spark_workers + 1)
    return [SPARK_MASTER_PROCESS, *(spark_worker_process(index) for index in workers)]


def cluster_dir(settings: Settings) -> Path:
    """``<run_dir>/spark-cluster``: the members' work folders."""
    return settings.run_dir / "spark-cluster"


def worker_dir(settings: Settings, index: int) -> Path:
    """``<run_dir>/spark-cluster/worker-<index>``: one worker's executors (jars, logs)."""
    return cluster_dir(settings) / f"worker-{index}"


def spark_home() -> Path:
    """The installed pyspark package: its ``jars/`` hold Spark itself (SPARK_HOME of a worker)."""
    spec = importlib.util.find_spec("pyspark")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        if (Path(location) / "jars").is_dir():
            return Path(location)
    raise StackError(
        f"pyspark with its jars/ folder is not installed in this Python (looked in {locations}); "
        "install the project's requirements (pyspark) in this venv"
    )


def master_ui_url(settings: Settings) -> str:
    """``http://127.0.0.1:<RTC_CLUSTER_SPARK_MASTER_UI_PORT>``."""
    return f"http://{UI_HOST}:{settings.cluster.spark_master_ui_port}"


def worker_ui_url(settings: Settings, index: int) -> str:
    """``http://127.0.0.1:<port>`` of worker ``index`` (1-based)."""
    return f"http://{UI_HOST}:{settings.cluster.spark_worker_ui_ports[index - 1]}"


# --- commands ----------------------------------------------------------------------------------


def daemon_command(
    java: Path,
    home: Path,
    settings: Settings,
    main_class: str,
    *args: str,
    java_options: Sequence[str] = (),
) -> list[str]:
    """``java -Xmx<daemon memory> <java_options> -cp '<pyspark>/jars/*' <main_class> <args>``."""
    return [
        str(java),
        f"-Xms{settings.cluster.spark_daemon_memory}",
        f"-Xmx{settings.cluster.spark_daemon_memory}",
        *_DAEMON_JAVA_OPTIONS,
        *java_options,
        "-cp",
        str(home / "jars" / "*"),
        main_class,
        *args,
    ]


def master_command(java: Path, home: Path, settings: Settings) -> list[str]:
    """The master: RPC on ``host:spark_master_port``, UI on ``spark_master_ui_port``."""
    cluster = settings.cluster
    return daemon_command(
        java,
        home,
        settings,
        MASTER_MAIN_CLASS,
        "--host",
        cluster.host,
        "--port",
        str(cluster.spark_master_port),
        "--webui-port",
        str(cluster.spark_master_ui_port),
    )


def worker_java_options(settings: Settings) -> list[str]:
    """A worker's Spark settings (``-D``): its executors' stdout/stderr rolled by size like the
    managed logs (``RTC_LOG_MAX_BYTES``, ``RTC_LOG_BACKUP_COUNT``), finished applications'
    folders cleaned up."""
    return [
        "-Dspark.executor.logs.rolling.strategy=size",
        f"-Dspark.executor.logs.rolling.maxSize={settings.log_max_bytes}",
        f"-Dspark.executor.logs.rolling.maxRetainedFiles={settings.log_backup_count}",
        "-Dspark.worker.cleanup.enabled=true",
    ]


def worker_command(java: Path, home: Path, settings: Settings, index: int) -> list[str]:
    """Worker ``index`` (1-based): its ports, cores, memory and work folder; the master's URL."""
    cluster = settings.cluster
    return daemon_command(
        java,
        home,
        settings,
        WORKER_MAIN_CLASS,
        "--host",
        cluster.host,
        "--port",
        str(cluster.spark_worker_ports[index - 1]),
        "--webui-port",
        str(cluster.spark_worker_ui_ports[index - 1]),
        "--cores",
        str(cluster.spark_worker_cores),
        "--memory",
        cluster.spark_worker_memory,
        "--work-dir",
        str(worker_dir(settings, index)),
        cluster.spark_master_url,
        java_options=worker_java_options(settings),
    )


def scala_version(jar_names: Iterable[str]) -> str:
    """Spark's Scala version from its core jar's name (``spark-core_2.13-4.2.0.jar`` -> ``2.13``).

    A worker's launcher needs it (``SPARK_SCALA_VERSION``) to build its executors' command;
    Spark's ``bin/load-spark-env.sh`` sets it, the launcher classes started directly do not.
    """
    for name in jar_names:
        match = _SPARK_CORE_JAR.match(name)
        if match:
            return match.group(1)
    raise StackError(
        "no spark-core_<scala version>-<version>.jar in the pyspark package's jars/ folder; "
        "reinstall pyspark in this venv"
    )


def daemon_env(home: Path) -> dict[str, str]:
    """What the daemons add to the environment: Spark's home and Scala version (a worker builds
    its executors' command from ``<SPARK_HOME>/jars``) and the loopback address the UIs bind to."""
    return {
        "SPARK_HOME": str(home),
        "SPARK_SCALA_VERSION": scala_version(path.name for path in (home / "jars").iterdir()),
        "SPARK_LOCAL_IP": UI_HOST,
    }


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT_S) as response:  # noqa: S310 (http)
        return bytes(response.read())


def read_master_state(settings: Settings) -> MasterState:
    """The master's state now; :class:`SparkStatusError` when it does not answer as a master."""
    url = f"{master_ui_url(settings)}/json/"
    try:
        return parse_master_json(_get(url))
    except (OSError, urllib.error.URLError) as error:
        raise SparkStatusError(f"Spark master UI {url} does not answer: {error}") from None


def read_worker_executors(settings: Settings, index: int) -> list[ExecutorInfo]:
    """The executors running on worker ``index`` (1-based) now."""
    url = f"{worker_ui_url(settings, index)}/json/"
    try:
        return parse_worker_json(_get(url))
    except (OSError, urllib.error.URLError) as error:
        raise SparkStatusError(f"Spark worker UI {url} does not answer: {error}") from None


# --- start -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SparkClusterStart:
    """Outcome of :func:`start_spark_cluster`: pids by member, who already ran, seconds taken."""

    pids: Mapping[str, int]
    already_running: tuple[str, ...]
    seconds_to_ready: float


def _registered_alive(state: MasterState, settings: Settings) -> set[int]:
    """1-based indices of our workers the master lists as ALIVE (matched by RPC port)."""
    ports = settings.cluster.spark_worker_ports
    return {
        ports.index(worker.port) + 1
        for worker in state.alive_workers()
        if worker.port in ports and worker.host == settings.cluster.host
    }


def _master_alive(settings: Settings) -> bool:
    try:
        return read_master_state(settings).status == ALIVE
    except SparkStatusError:
        return False


def _start_member(
    name: str, command: list[str], ports: tuple[int, ...], env: dict[str, str], settings: Settings
) -> tuple[int, bool]:
    """Start one member unless it runs; return its pid and whether it already ran."""
    if process.is_running(name, settings):
        pid = process.read_pid(name, settings)
        return (pid or 0), True
    pid = process.start_process(
        name,
        command,
        ports=ports,
        host=settings.cluster.host,
        port_hint=_PORT_HINT,
        env=env,
        cwd=cluster_dir(settings),
        settings=settings,
    )
    return pid, False


def _wait_for_workers(settings: Settings, deadline: float) -> None:
    """Until the master lists every worker ALIVE; a member that exits meanwhile fails fast."""
    wanted = set(range(1, settings.cluster.spark_workers + 1))
    while True:
        for name in spark_cluster_processes(settings):
            if not process.is_running(name, settings):
                raise ServiceStartError(
                    f"{name} exited during start-up; see {process.log_path(name, settings)}. "
                    f"Last lines:\n{process.tail_log(name, 5, settings)}"
                )
        try:
            if _registered_alive(read_master_state(settings), settings) >= wanted:
                return
        except SparkStatusError:
            pass
        if time.monotonic() > deadline:
            raise ServiceStartError(
                f"the Spark master at {master_ui_url(settings)} did not list {len(wanted)} ALIVE "
                f"workers in time; see the spark-worker-*.log files in {settings.log_dir}"
            )
        time.sleep(0.25)


def start_spark_cluster(
    settings: Settings, progress: Progress, *, timeout_s: float = 120.0
) -> SparkClusterStart:
    """Start the master, then the workers (those not running), and wait until the master lists
    every worker ALIVE (``timeout_s`` seconds in all). Raises :class:`StackError` on failure."""
    started = time.monotonic()
    deadline = started + timeout_s
    java = maven.require_java()
    home = spark_home()
    cluster = settings.cluster
    env = daemon_env(home)
    cluster_dir(settings).mkdir(parents=True, exist_ok=True)
    pids: dict[str, int] = {}
    already: list[str] = []
    with process.exclusive_lock("spark-cluster", settings):
        progress(
            f"spark     starting the standalone master at {cluster.spark_master_url} "
            f"(UI {master_ui_url(settings)}) ..."
        )
        ports = (cluster.spark_master_port, cluster.spark_master_ui_port)
        pid, ran = _start_member(
            SPARK_MASTER_PROCESS, master_command(java, home, settings), ports, env, settings
        )
        pids[SPARK_MASTER_PROCESS] = pid
        already += [SPARK_MASTER_PROCESS] if ran else []
        process.wait_until_healthy(
            SPARK_MASTER_PROCESS,
            lambda: _master_alive(settings),
            service="the Spark master",
            target=f"{master_ui_url(settings)}/json/",
            logs=[process.log_path(SPARK_MASTER_PROCESS, settings)],
            timeout_s=max(1.0, deadline - time.monotonic()),
            settings=settings,
        )
        for index in range(1, cluster.spark_workers + 1):
            name = spark_worker_process(index)
            worker_dir(settings, index).mkdir(parents=True, exist_ok=True)
            ports = (
                cluster.spark_worker_ports[index - 1],
                cluster.spark_worker_ui_ports[index - 1],
            )
            command = worker_command(java, home, settings, index)
            pid, ran = _start_member(name, command, ports, env, settings)
            pids[name] = pid
            already += [name] if ran else []
        progress(
            f"spark     {cluster.spark_workers} workers ({cluster.spark_worker_cores} cores, "
            f"{cluster.spark_worker_memory} each) registering ..."
        )
        _wait_for_workers(settings, deadline)
    seconds = time.monotonic() - started
    progress(
        f"spark     master and {cluster.spark_workers} workers ALIVE after {seconds:.1f} s; "
        f"work dirs in {cluster_dir(settings)}"
    )
    return SparkClusterStart(pids, tuple(already), seconds)


# --- status ------------------------------------------------------------------------------------


def _executors_by_worker(settings: Settings) -> dict[int, list[ExecutorInfo] | str]:
    """Each running worker's executors, or why they could not be read."""
    found: dict[int, list[ExecutorInfo] | str] = {}
    for index in range(1, settings.cluster.spark_workers + 1):
        if process.is_running(spark_worker_process(index), settings):
            try:
                found[index] = read_worker_executors(settings, index)
            except SparkStatusError as error:
                found[index] = str(error)
    return found


def _worker_line(
    settings: Settings,
    index: int,
    registered: WorkerInfo | None,
    executors: list[ExecutorInfo] | str | None,
) -> str:
    name = spark_worker_process(index)
    status = process.process_status(name, settings)
    if not status.running:
        state = registered.state if registered else "not registered"
        return f"{name:<15} not running (master: {state}; log {status.log_path})"
    if registered is None:
        return f"{name:<15} running (pid {status.pid}) but not registered with the master"
    if isinstance(executors, str):
        running = f"executors unknown ({executors})"
    else:
        listed = ", ".join(f"{e.app_id}/{e.executor_id} ({e.app_name})" for e in executors or [])
        running = f"executors: {listed or '-'}"
    return (
        f"{name:<15} {registered.state} {registered.host}:{registered.port} (pid {status.pid}), "
        f"cores {registered.cores_used}/{registered.cores} used, memory "
        f"{registered.memory_used_mb}/{registered.memory_mb} MiB used; {running}"
    )


def spark_cluster_status(settings: Settings) -> list[str]:
    """Lines for ``rtc status``: the master (status, URL, alive workers), each worker (state,
    cores and memory used/total, its executors) and each running application with the workers
    its executors run on. A member that is down gets a line too."""
    master = process.process_status(SPARK_MASTER_PROCESS, settings)
    try:
        state = read_master_state(settings)
    except SparkStatusError as error:
        running = f"running (pid {master.pid})" if master.running else "not running"
        lines = [f"{SPARK_MASTER_PROCESS:<15} {running}: {error}"]
        lines += [
            _worker_line(settings, index, None, None)
            for index in range(1, settings.cluster.spark_workers + 1)
        ]
        return lines
    ports = settings.cluster.spark_worker_ports
    # the latest registration per port (a restarted worker leaves its old entry DEAD)
    registered = {
        ports.index(worker.port) + 1: worker
        for worker in sorted(state.workers, key=lambda worker: worker.state == ALIVE)
        if worker.port in ports
    }
    alive = len(_registered_alive(state, settings))
    lines = [
        f"{SPARK_MASTER_PROCESS:<15} {state.status} {state.url} (pid {master.pid}, UI "
        f"{master_ui_url(settings)}), {alive}/{settings.cluster.spark_workers} workers alive, "
        f"{len(state.active_apps)} running applications"
    ]
    executors = _executors_by_worker(settings)
    for index in range(1, settings.cluster.spark_workers + 1):
        lines.append(_worker_line(settings, index, registered.get(index), executors.get(index)))
    for app in state.active_apps:
        hosts = [
            f"{spark_worker_process(index)}#{executor.executor_id}"
            for index, found in sorted(executors.items())
            if not isinstance(found, str)
            for executor in found
            if executor.app_id == app.app_id
        ]
        lines.append(
            f"{'spark-app':<15} {app.app_id} {app.name} {app.state}, {app.cores} cores, "
            f"{app.memory_per_executor_mb} MiB per executor; executors: {', '.join(hosts) or '-'}"
        )
    return lines
