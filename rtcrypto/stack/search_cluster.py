"""Elasticsearch in the cluster topology: N local nodes forming one cluster, one replica per index.

One node per port of ``RTC_CLUSTER_SEARCH_HTTP_PORTS`` (default 3), each a managed process
``elasticsearch-<i>`` (i from 1) built like the single node (rtcrypto/stack/search_home.py: the
same Maven jars, launcher and modules) with its own home:

- ``<run_dir>/search-cluster/node-<i>``: ``config/``, ``modules/``, ``lib/platform/``, ``tmp/``
  and ``data/``; the compiled launcher is shared, in ``<run_dir>/search-cluster/launcher``;
- ``<log_dir>/elasticsearch-<i>/``: the node's own log; ``<log_dir>/elasticsearch-<i>.log``: its
  stdout/stderr under the process manager.

Every node is master-eligible and holds data. ``discovery.seed_hosts`` lists every node's
transport address; ``cluster.initial_master_nodes`` (every node name) is written only while no
node formed the cluster yet (the marker ``<run_dir>/search-cluster/formed``), i.e. for the first
formation: a node that restarts joins the cluster it knew. Three nodes keep a master majority (2 of 3 votes) when one is lost; with two,
losing the elected master stops the cluster until it is back. Replicas are set per index by the
templates (rtcrypto/search/indices.py, ``RTC_CLUSTER_SEARCH_REPLICAS``).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtcrypto.config import Settings
from rtcrypto.stack import maven, process, search, search_disk, search_home
from rtcrypto.stack.errors import ServiceStartError
from rtcrypto.stack.search_home import SearchPaths

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]  # receives one line of text per step

CLUSTER_NAME = "rtc-cluster"
PROCESS_PREFIX = "elasticsearch"
NODE_PREFIX = "rtc-node"
CLUSTER_DIR = "search-cluster"
_PORT_HINT = "set RTC_CLUSTER_SEARCH_HTTP_PORTS / RTC_CLUSTER_SEARCH_TRANSPORT_PORTS to free ports"


@dataclass(frozen=True)
class ClusterHealth:
    """``GET /_cluster/health`` of the cluster, as one node answered it."""

    status: str  # green | yellow | red
    number_of_nodes: int
    active_primary_shards: int
    active_shards: int
    relocating_shards: int
    initializing_shards: int
    unassigned_shards: int
    answered_by: str  # the URL of the node that answered

    @classmethod
    def from_body(cls, body: dict[str, Any], url: str) -> ClusterHealth:
        return cls(
            status=str(body.get("status", "red")),
            number_of_nodes=int(body.get("number_of_nodes", 0)),
            active_primary_shards=int(body.get("active_primary_shards", 0)),
            active_shards=int(body.get("active_shards", 0)),
            relocating_shards=int(body.get("relocating_shards", 0)),
            initializing_shards=int(body.get("initializing_shards", 0)),
            unassigned_shards=int(body.get("unassigned_shards", 0)),
            answered_by=url,
        )


@dataclass(frozen=True)
class SearchClusterStart:
    """Outcome of :func:`start_search_cluster`."""

    urls: list[str]
    pids: dict[str, int | None]  # process name -> pid
    started: list[str]  # process names started by this call (the others ran already)
    first_formation: bool
    seconds_to_healthy: float
    health: ClusterHealth


# --- members and paths (pure) ------------------------------------------------------------------


def node_numbers(settings: Settings) -> range:
    """1 .. N, one per HTTP port of the cluster."""
    return range(1, settings.cluster.search_nodes + 1)


def node_process(number: int) -> str:
    """The managed process of node ``number``: ``elasticsearch-<number>``."""
    return f"{PROCESS_PREFIX}-{number}"


def node_name(number: int) -> str:
    """``node.name`` of node ``number``: ``rtc-node-<number>``."""
    return f"{NODE_PREFIX}-{number}"


def node_url(settings: Settings, number: int) -> str:
    """The HTTP address of node ``number``."""
    return settings.cluster.search_urls[number - 1]


def transport_addresses(settings: Settings) -> list[str]:
    """``host:port`` of every node's transport (the seed hosts)."""
    cluster = settings.cluster
    return [f"{cluster.host}:{port}" for port in cluster.search_transport_ports]


def cluster_dir(settings: Settings) -> Path:
    """``<run_dir>/search-cluster``: the nodes' homes and their shared launcher."""
    return settings.run_dir / CLUSTER_DIR


def node_paths(settings: Settings, number: int) -> SearchPaths:
    """Home, configuration, data and logs of node ``number``."""
    home_dir = cluster_dir(settings) / f"node-{number}"
    config_dir = home_dir / "config"
    logs_dir = settings.log_dir / node_process(number)
    return SearchPaths(
        home_dir=home_dir,
        config_dir=config_dir,
        elasticsearch_yml=config_dir / "elasticsearch.yml",
        log4j_config=config_dir / "log4j2.properties",
        modules_dir=home_dir / "modules",
        launcher_dir=cluster_dir(settings) / "launcher",
        native_dir=home_dir / "lib" / "platform",
        tmp_dir=home_dir / "tmp",
        data_dir=home_dir / "data",
        logs_dir=logs_dir,
        server_log=logs_dir / f"{CLUSTER_NAME}.log",
        process_log=process.log_path(node_process(number), settings),
    )


def cluster_node_settings(
    settings: Settings, number: int, paths: SearchPaths, *, first_formation: bool
) -> dict[str, str]:
    """``elasticsearch.yml`` entries of node ``number`` (lists are comma-separated strings)."""
    cluster = settings.cluster
    entries = {
        "cluster.name": CLUSTER_NAME,
        "node.name": node_name(number),
        "path.data": str(paths.data_dir),
        "path.logs": str(paths.logs_dir),
        "network.host": cluster.host,
        "http.port": str(cluster.search_http_ports[number - 1]),
        "transport.port": str(cluster.search_transport_ports[number - 1]),
        "discovery.seed_hosts": ",".join(transport_addresses(settings)),
        **search_disk.disk_watermarks(settings),
    }
    if first_formation:
        names = [node_name(other) for other in node_numbers(settings)]
        entries["cluster.initial_master_nodes"] = ",".join(names)
    return entries


def formed_marker(settings: Settings) -> Path:
    """``<run_dir>/search-cluster/formed``: written once the cluster formed the first time."""
    return cluster_dir(settings) / "formed"


def is_first_formation(settings: Settings) -> bool:
    """True until the cluster formed once (its marker) with data on some node: only then do
    the nodes get ``cluster.initial_master_nodes``."""
    if not formed_marker(settings).is_file():
        return True
    data_dirs = [node_paths(settings, number).data_dir for number in node_numbers(settings)]
    return not any(folder.is_dir() and any(folder.iterdir()) for folder in data_dirs)


def write_node_config(settings: Settings, number: int, *, first_formation: bool) -> SearchPaths:
    """Write ``elasticsearch.yml`` and ``log4j2.properties`` of node ``number``."""
    paths = node_paths(settings, number)
    folders = (paths.config_dir, paths.modules_dir, paths.native_dir, paths.tmp_dir, paths.data_dir)
    for folder in (*folders, paths.logs_dir, paths.launcher_dir):
        folder.mkdir(parents=True, exist_ok=True)
    entries = cluster_node_settings(settings, number, paths, first_formation=first_formation)
    paths.elasticsearch_yml.write_text(search.render_yaml(entries))
    paths.log4j_config.write_text(
        search.log4j2_properties(
            paths.server_log, settings.log_max_bytes, settings.log_backup_count
        )
    )
    return paths


# --- health over HTTP --------------------------------------------------------------------------


def _get_json(url: str, path: str, timeout_s: float) -> Any:
    request = urllib.request.Request(url.rstrip("/") + path, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())


def _first_answer(settings: Settings, path: str, timeout_s: float) -> tuple[str, Any] | None:
    """``(url, body)`` of the first node that answers ``GET path`` with JSON, or None."""
    for url in settings.cluster.search_urls:
        try:
            return url, _get_json(url, path, timeout_s)
        except (urllib.error.URLError, OSError, ValueError):
            continue  # down, 503 while no master is elected, or not JSON
    return None


def cluster_health(settings: Settings, timeout_s: float = 3.0) -> ClusterHealth | None:
    """The cluster's health as the first answering node sees it, or None if none answers."""
    answer = _first_answer(settings, "/_cluster/health", timeout_s)
    if answer is None or not isinstance(answer[1], dict) or "status" not in answer[1]:
        return None
    return ClusterHealth.from_body(answer[1], answer[0])


def master_name(settings: Settings, timeout_s: float = 3.0) -> str | None:
    """``node.name`` of the elected master, or None when no node answers or none is elected."""
    answer = _first_answer(settings, "/_cluster/state/master_node,nodes", timeout_s)
    if answer is None or not isinstance(answer[1], dict):
        return None
    body = answer[1]
    node = body.get("nodes", {}).get(body.get("master_node") or "")
    return str(node["name"]) if isinstance(node, dict) and "name" in node else None


def cluster_formed(health: ClusterHealth | None, nodes: int) -> bool:
    """Every node joined and every primary is assigned (yellow or green)."""
    return (
        health is not None
        and health.number_of_nodes == nodes
        and health.status in search.HEALTHY_STATUSES
    )


def rss_megabytes(pid: int | None) -> float | None:
    """Resident memory of ``pid`` in MB (``VmRSS`` of /proc), None if it is not readable."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# --- lifecycle ---------------------------------------------------------------------------------


def _start_node(
    settings: Settings, number: int, tool: search_home.JavaTool, jars: list[Path], first: bool
) -> int:
    """Lay out node ``number``'s home and start it detached; return its pid."""
    cluster = settings.cluster
    ports = (cluster.search_http_ports[number - 1], cluster.search_transport_ports[number - 1])
    paths = write_node_config(settings, number, first_formation=first)
    classpath = search_home.server_classpath(jars)
    search_home.install_netty_module(jars, settings, paths)
    search_home.link_native_libraries(settings, paths)
    search_home.build_launcher(tool, classpath, settings, paths)  # compiled once, then shared
    command = search.java_command(tool.java, settings, classpath, paths, cluster.search_heap)
    return process.start_process(
        node_process(number),
        command,
        ports=ports,
        host=cluster.host,
        port_hint=_PORT_HINT,
        settings=settings,
    )


def wait_for_cluster(
    settings: Settings, *, timeout_s: float, progress: Progress | None = None
) -> tuple[float, ClusterHealth]:
    """Block until every node joined and the cluster is yellow or green; return seconds, health.

    Raises :class:`ServiceStartError` when a node's process exits or ``timeout_s`` passes,
    naming the node's log files.
    """
    started = time.monotonic()
    nodes = settings.cluster.search_nodes
    last: tuple[int, str] | None = None
    while True:
        health = cluster_health(settings, timeout_s=2.0)
        if health is not None and cluster_formed(health, nodes):
            return time.monotonic() - started, health
        seen = None if health is None else (health.number_of_nodes, health.status)
        if progress is not None and health is not None and seen != last:
            progress(f"search    {health.number_of_nodes}/{nodes} nodes, {health.status}")
        last = seen
        for number in node_numbers(settings):
            if not process.is_running(node_process(number), settings):
                paths = node_paths(settings, number)
                logs = (paths.server_log, paths.process_log)
                tails = "\n".join(process.tail_file(log, 5) for log in logs)
                raise ServiceStartError(
                    f"Elasticsearch node {node_name(number)} ({node_process(number)}) exited; see "
                    f"{paths.server_log} and {paths.process_log}. Last lines:\n{tails}"
                )
        if time.monotonic() - started > timeout_s:
            state = "no node answers" if health is None else f"{health.number_of_nodes} nodes"
            raise ServiceStartError(
                f"the Elasticsearch cluster did not form {nodes} nodes within {timeout_s:.0f} s "
                f"({state}); see the logs in {settings.log_dir}/elasticsearch-<n>/"
            )
        time.sleep(0.5)


def start_search_cluster(
    settings: Settings, progress: Progress, *, timeout_s: float = 180.0
) -> SearchClusterStart:
    """Start every node not running yet and wait until the cluster has all N nodes, yellow or
    green (green once replicas are allocated). Nodes started here are stopped again if the
    cluster does not form. Raises :class:`rtcrypto.stack.errors.StackError` subclasses."""
    cluster = settings.cluster
    tool = search_home.find_search_java(settings)
    started: list[str] = []
    with process.exclusive_lock(CLUSTER_DIR, settings):
        for number in node_numbers(settings):  # every busy port named before anything starts
            if not process.is_running(node_process(number), settings):
                ports = (
                    cluster.search_http_ports[number - 1],
                    cluster.search_transport_ports[number - 1],
                )
                process.ensure_ports_free(
                    ports, service=node_process(number), host=cluster.host, hint=_PORT_HINT
                )
        resolved = maven.resolve_jars(search_home.elasticsearch_jar_set(settings), settings)
        jars = sorted(resolved.jar_dir.glob("*.jar"))
        first = is_first_formation(settings)
        for number in node_numbers(settings):
            name = node_process(number)
            if process.is_running(name, settings):
                progress(
                    f"search    {name} already running (pid {process.read_pid(name, settings)})"
                )
                continue
            pid = _start_node(settings, number, tool, jars, first)
            started.append(name)
            progress(
                f"search    {name} ({node_name(number)}) started, pid {pid}, "
                f"{node_url(settings, number)}, heap {cluster.search_heap}"
                + (", first formation" if first else "")
            )
        try:
            seconds, health = wait_for_cluster(settings, timeout_s=timeout_s, progress=progress)
        except ServiceStartError:
            for name in started:
                process.stop_process(name, settings=settings)
            raise
        formed_marker(settings).write_text(f"{CLUSTER_NAME}\n")
    pids = {
        node_process(n): process.read_pid(node_process(n), settings) for n in node_numbers(settings)
    }
    progress(
        f"search    cluster {CLUSTER_NAME}: {health.number_of_nodes} nodes, {health.status}, "
        f"after {seconds:.1f} s"
    )
    return SearchClusterStart(list(cluster.search_urls), pids, started, first, seconds, health)


def stop_search_cluster(settings: Settings, *, timeout_s: float = 30.0) -> list[str]:
    """Stop every node (SIGTERM, SIGKILL after ``timeout_s`` s); return the names that ran."""
    return [
        node_process(number)
        for number in node_numbers(settings)
        if process.stop_process(node_process(number), timeout_s=timeout_s, settings=settings)
    ]


def search_cluster_status(settings: Settings) -> list[str]:
    """Lines for ``rtc status``: every node (pid, up or down, URL, master, RSS), then the
    cluster's health (status, nodes, active and unassigned shards, relocating, initializing)."""
    master = master_name(settings)
    lines = []
    for number in node_numbers(settings):
        status = process.process_status(node_process(number), settings)
        rss = rss_megabytes(status.pid) if status.running else None
        role = "master" if master == node_name(number) else "-"
        lines.append(
            f"search    {status.name:<16} {'up' if status.running else 'down':<4} "
            f"pid {status.pid if status.running else '-'}  {node_url(settings, number)}  "
            f"{node_name(number)} {role}" + (f"  RSS {rss:.0f} MB" if rss is not None else "")
        )
    health = cluster_health(settings)
    if health is None:
        lines.append(f"search    cluster {CLUSTER_NAME}: no node answers (or no master elected)")
    else:
        lines.append(
            f"search    cluster {CLUSTER_NAME}: {health.status}, {health.number_of_nodes}/"
            f"{settings.cluster.search_nodes} nodes, {health.active_shards} active shards "
            f"({health.active_primary_shards} primaries), {health.unassigned_shards} unassigned, "
            f"{health.relocating_shards} relocating, {health.initializing_shards} initializing"
        )
    return lines
