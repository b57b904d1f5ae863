"""One local Elasticsearch 9 node, from Maven Central jars, beside the local Kafka broker.

Elastic publishes the server (``org.elasticsearch:elasticsearch``) and the HTTP transport
(``org.elasticsearch.plugin:transport-netty4``) to Maven Central, but not the distribution's
launcher, its other modules or x-pack. A small launcher of ours (``services/elasticsearch``,
compiled with the node's ``javac`` on the first start) builds the node with
``new Node(Environment, PluginsLoader)`` from a home folder laid out as Elasticsearch expects:

- ``<run_dir>/elasticsearch/config``: ``elasticsearch.yml`` and ``log4j2.properties``, rewritten
  from the settings on every start;
- ``<run_dir>/elasticsearch/modules``: ``transport-netty4`` (HTTP; its jars and descriptor) and
  ``rtc-root`` (our ``GET /`` and ``HEAD /``, since Elastic's rest-root module is not published);
- ``<run_dir>/elasticsearch-data``: the node's data; ``<log_dir>/elasticsearch/``: its own log;
  ``<log_dir>/elasticsearch.log``: its stdout/stderr under the process manager as ``elasticsearch``.

Elasticsearch 9 needs Java 21+, so the node runs on ``search_java_home`` or the newest JDK 21+
found (``JAVA_HOME``, ``/usr/lib/jvm``), whatever Java Kafka and Spark use.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rtcrypto.config import Settings, get_settings
from rtcrypto.redact import redact_url
from rtcrypto.stack import maven, process, search_disk
from rtcrypto.stack.errors import ServiceStartError, StackError

# The home folder's parts are in search_home (shared with the cluster's nodes).
from rtcrypto.stack.search_home import (
    CLUSTER_NAME,
    LAUNCHER_MAIN_CLASS,
    SEARCH_PROCESS,
    SearchPaths,
    build_launcher,
    elasticsearch_jar_set,
    find_search_java,
    install_netty_module,
    link_native_libraries,
    search_paths,
    server_classpath,
)

logger = logging.getLogger(__name__)

NODE_NAME = "rtc-node-1"
PRODUCT_HEADER = "X-Elastic-Product"
HEALTHY_STATUSES = frozenset({"green", "yellow"})
_PORT_HINT = "set RTC_SEARCH_URL / RTC_SEARCH_TRANSPORT_PORT to free ports"


@dataclass(frozen=True)
class NodeHealth:
    """The answer of ``GET /_cluster/health`` and whether the server said it is Elasticsearch."""

    status: str
    cluster_name: str
    number_of_nodes: int
    is_elasticsearch: bool

    @property
    def healthy(self) -> bool:
        return self.is_elasticsearch and self.status in HEALTHY_STATUSES


@dataclass(frozen=True)
class SearchStart:
    """Outcome of :func:`start_search`."""

    url: str
    pid: int | None
    already_running: bool
    built_launcher: bool
    seconds_to_healthy: float


def parse_search_url(url: str) -> tuple[str, int]:
    """``"http://127.0.0.1:9200"`` -> ``("127.0.0.1", 9200)``; the local node speaks plain HTTP."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise StackError(
            f"RTC_SEARCH_URL must be http://host:port for the local node, got {redact_url(url)!r} "
            f"(https is for an external cluster, which `rtc stack up` does not start)"
        )
    try:
        port = parts.port or 9200
    except ValueError as error:
        raise StackError(f"RTC_SEARCH_URL has a bad port: {redact_url(url)!r}") from error
    return parts.hostname, port


# --- configuration (pure) ----------------------------------------------------------------------


def node_settings(settings: Settings, paths: SearchPaths) -> dict[str, str]:
    """``elasticsearch.yml`` entries of one single-node development cluster."""
    host, http_port = parse_search_url(settings.search_url)
    return {
        "cluster.name": CLUSTER_NAME,
        "node.name": NODE_NAME,
        "path.data": str(paths.data_dir),
        "path.logs": str(paths.logs_dir),
        # One node elects itself; no discovery, and bootstrap checks stay off on loopback.
        "discovery.type": "single-node",
        "network.host": host,
        "http.port": str(http_port),
        "transport.port": str(settings.search_transport_port),
        # disk watermarks on, as free space (values and why: rtcrypto/stack/search_disk.py)
        **search_disk.disk_watermarks(settings),
    }


def render_yaml(entries: Mapping[str, str]) -> str:
    """Flat ``key: "value"`` YAML (values JSON-quoted, which YAML reads as strings)."""
    lines = ["# Written by `rtc stack up` on every start; edit rtcrypto/stack/search.py instead."]
    lines += [f"{key}: {json.dumps(value)}" for key, value in entries.items()]
    return "\n".join(lines) + "\n"


def log4j2_properties(server_log: Path, max_bytes: int = 10 * 1024**2, backups: int = 5) -> str:
    """A log4j2 configuration: INFO into ``server_log``, rolled past ``max_bytes`` x ``backups``."""
    return f"""\
status = error
appender.rolling.type = RollingFile
appender.rolling.name = rolling
appender.rolling.fileName = {server_log}
appender.rolling.filePattern = {server_log}.%i
appender.rolling.layout.type = PatternLayout
appender.rolling.layout.pattern = [%d{{ISO8601}}][%-5p][%-25c{{1.}}] [%node_name]%marker %m%n
appender.rolling.policies.type = Policies
appender.rolling.policies.size.type = SizeBasedTriggeringPolicy
appender.rolling.policies.size.size = {max_bytes}
appender.rolling.strategy.type = DefaultRolloverStrategy
appender.rolling.strategy.max = {backups}
rootLogger.level = info
rootLogger.appenderRef.rolling.ref = rolling
"""


def jvm_options(settings: Settings, paths: SearchPaths, heap: str | None = None) -> list[str]:
    """JVM flags of the node (the relevant part of the distribution's ``jvm.options``); ``heap``
    (e.g. ``"384m"``) defaults to ``search_heap``."""
    heap = heap or settings.search_heap
    return [
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:-OmitStackTraceInFastThrow",
        f"-Djava.io.tmpdir={paths.tmp_dir}",
        # Elastic's native libraries are not on Maven Central. zstd (stored fields of every index)
        # is linked from the system's libzstd; the SIMD vector library is switched off (Lucene's
        # Java vector code is used), else a missing libvec.so disables native access entirely.
        f"-Des.nativelibs.path={paths.native_dir}",
        "-Dorg.elasticsearch.nativeaccess.enableVectorLibrary=false",
        "-Djava.awt.headless=true",
        "-Dfile.encoding=UTF-8",
        "-Dio.netty.noUnsafe=true",
        "-Dio.netty.noKeySetOptimization=true",
        "-Dio.netty.recycler.maxCapacityPerThread=0",
        # The launcher's shutdown hook closes the node, then log4j: its own hook would go first.
        "-Dlog4j.shutdownHookEnabled=false",
        "-Dlog4j2.disable.jmx=true",
        "-Dlog4j2.formatMsgNoLookups=true",
        "--enable-native-access=ALL-UNNAMED",
        "--add-modules=jdk.incubator.vector",
    ]


def java_command(
    java: Path,
    settings: Settings,
    classpath: Sequence[Path],
    paths: SearchPaths | None = None,
    heap: str | None = None,
) -> list[str]:
    """``java <options> -cp <launcher>:<server jars> rtcrypto.searchnode.SearchNode <home>``
    (of the single node unless ``paths`` and ``heap`` say another)."""
    paths = paths or search_paths(settings)
    entries = [paths.launcher_dir / "classes", *classpath]
    return [
        str(java),
        *jvm_options(settings, paths, heap),
        "-cp",
        os.pathsep.join(str(entry) for entry in entries),
        LAUNCHER_MAIN_CLASS,
        str(paths.home_dir),
    ]


def write_config(settings: Settings | None = None) -> SearchPaths:
    """Write ``elasticsearch.yml`` and ``log4j2.properties`` from the settings; return the paths."""
    settings = settings or get_settings()
    paths = search_paths(settings)
    folders = (paths.config_dir, paths.modules_dir, paths.native_dir, paths.tmp_dir, paths.data_dir)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    paths.logs_dir.mkdir(parents=True, exist_ok=True)
    paths.elasticsearch_yml.write_text(render_yaml(node_settings(settings, paths)))
    paths.log4j_config.write_text(
        log4j2_properties(paths.server_log, settings.log_max_bytes, settings.log_backup_count)
    )
    return paths


# --- health ------------------------------------------------------------------------------------


def node_health(url: str, timeout_s: float = 3.0) -> NodeHealth | None:
    """``GET <url>/_cluster/health``, or None when nothing answers it with a health document."""
    request = urllib.request.Request(
        url.rstrip("/") + "/_cluster/health", headers={"Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = json.loads(response.read())
            product = response.headers.get(PRODUCT_HEADER, "")
    except (urllib.error.URLError, OSError, ValueError):
        return None  # refused, 503 while no master is elected, or not JSON
    if not isinstance(body, dict) or "status" not in body:
        return None
    return NodeHealth(
        status=str(body["status"]),
        cluster_name=str(body.get("cluster_name", "")),
        number_of_nodes=int(body.get("number_of_nodes", 0)),
        is_elasticsearch=product == "Elasticsearch",
    )


def search_healthy(url: str, timeout_s: float = 3.0) -> bool:
    """True if an Elasticsearch cluster answers on ``url`` with status green or yellow."""
    health = node_health(url, timeout_s)
    return health is not None and health.healthy


def wait_for_search(settings: Settings | None = None, *, timeout_s: float = 120.0) -> float:
    """Block until the managed node is green or yellow; return the seconds waited.

    Raises :class:`ServiceStartError` if the node exits or ``timeout_s`` seconds pass, naming
    the log files to read.
    """
    settings = settings or get_settings()
    paths = search_paths(settings)
    return process.wait_until_healthy(
        SEARCH_PROCESS,
        lambda: search_healthy(settings.search_url, timeout_s=2.0),
        service="Elasticsearch",
        target=redact_url(settings.search_url),
        logs=[paths.server_log, paths.process_log],
        timeout_s=timeout_s,
        settings=settings,
    )


# --- lifecycle ---------------------------------------------------------------------------------


def start_search(settings: Settings | None = None, *, timeout_s: float = 120.0) -> SearchStart:
    """Start the local Elasticsearch node unless it runs already, and wait until it is healthy.

    Resolves the server jars (Maven, first run only), compiles the launcher (first run and after
    a change of its sources), lays out the home folder, starts the node detached and waits up to
    ``timeout_s`` seconds for green or yellow. Raises :class:`StackError` subclasses with a
    message a user can act on.
    """
    settings = settings or get_settings()
    host, http_port = parse_search_url(settings.search_url)
    with process.exclusive_lock(SEARCH_PROCESS, settings):
        if process.is_running(SEARCH_PROCESS, settings):
            seconds = wait_for_search(settings, timeout_s=timeout_s)
            pid = process.read_pid(SEARCH_PROCESS, settings)
            search_disk.apply_disk_watermarks(settings)  # a node started before they were on
            return SearchStart(redact_url(settings.search_url), pid, True, False, seconds)
        tool = find_search_java(settings)
        ports = (http_port, settings.search_transport_port)
        process.ensure_ports_free(ports, service=SEARCH_PROCESS, host=host, hint=_PORT_HINT)
        resolved = maven.resolve_jars(elasticsearch_jar_set(settings), settings)
        jars = sorted(resolved.jar_dir.glob("*.jar"))
        classpath = server_classpath(jars)
        write_config(settings)
        install_netty_module(jars, settings)
        link_native_libraries(settings)
        built = build_launcher(tool, classpath, settings)
        command = java_command(tool.java, settings, classpath)
        pid = process.start_process(
            SEARCH_PROCESS, command, ports=ports, host=host, port_hint=_PORT_HINT, settings=settings
        )
        try:
            seconds = wait_for_search(settings, timeout_s=timeout_s)
        except ServiceStartError:
            process.stop_process(SEARCH_PROCESS, settings=settings)
            raise
    url = redact_url(settings.search_url)
    logger.info("elasticsearch healthy url=%s pid=%d after %.1f s", url, pid, seconds)
    return SearchStart(url, pid, False, built, seconds)


def stop_search(settings: Settings | None = None, *, timeout_s: float = 30.0) -> bool:
    """Stop the managed node (SIGTERM, then SIGKILL after ``timeout_s`` s); True if it ran."""
    return process.stop_process(SEARCH_PROCESS, timeout_s=timeout_s, settings=settings)
