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

import hashlib
import json
import logging
import os
import shutil
import subprocess
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from rtcrypto.config import PROJECT_ROOT, Settings, get_settings
from rtcrypto.redact import redact_url
from rtcrypto.stack import maven, process, search_disk
from rtcrypto.stack.errors import ServiceStartError, StackError, ToolMissingError

logger = logging.getLogger(__name__)

SEARCH_PROCESS = "elasticsearch"
MIN_SEARCH_JAVA_MAJOR = 21  # Elasticsearch 9.x is compiled for Java 21
CLUSTER_NAME = "rtc-local"
NODE_NAME = "rtc-node-1"
LAUNCHER_MAIN_CLASS = "rtcrypto.searchnode.SearchNode"
SOURCES_DIR = PROJECT_ROOT / "services" / "elasticsearch"
LAUNCHER_SOURCES = SOURCES_DIR / "launcher"
ROOT_MODULE_SOURCES = SOURCES_DIR / "root-module"
NETTY_MODULE = "transport-netty4"
ROOT_MODULE = "rtc-root"
ROOT_MODULE_CLASS = "rtcrypto.searchnode.root.RootEndpointPlugin"
PRODUCT_HEADER = "X-Elastic-Product"
HEALTHY_STATUSES = frozenset({"green", "yellow"})
_NETTY_DESCRIPTOR = f"META-INF/es-plugins/{NETTY_MODULE}/plugin-descriptor.properties"
_BUILD_MARKER = ".built.json"
_PORT_HINT = "set RTC_SEARCH_URL / RTC_SEARCH_TRANSPORT_PORT to free ports"
# Where Debian, Ubuntu and Fedora keep the system's zstd (the distribution bundles its own copy).
ZSTD_LIBRARY_DIRS = (
    Path("/usr/lib/x86_64-linux-gnu"),
    Path("/usr/lib/aarch64-linux-gnu"),
    Path("/usr/lib64"),
    Path("/usr/lib"),
)


@dataclass(frozen=True)
class JavaTool:
    """A JDK that can run and compile for the node: ``java``, ``javac`` and its major version."""

    java: Path
    javac: Path
    major: int


@dataclass(frozen=True)
class SearchPaths:
    """Where the local node keeps its home, configuration, data and logs."""

    home_dir: Path
    config_dir: Path
    elasticsearch_yml: Path
    log4j_config: Path
    modules_dir: Path
    launcher_dir: Path
    native_dir: Path
    tmp_dir: Path
    data_dir: Path
    logs_dir: Path
    server_log: Path
    process_log: Path


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


def elasticsearch_jar_set(settings: Settings | None = None) -> maven.JarSet:
    """The Elasticsearch server and its HTTP transport module, at ``search_version``."""
    settings = settings or get_settings()
    return maven.JarSet(
        "elasticsearch",
        maven.MAVEN_POMS_DIR / "elasticsearch",
        "elasticsearch.version",
        settings.search_version,
    )


def search_paths(settings: Settings | None = None) -> SearchPaths:
    """The node's folders and files under ``run_dir`` and ``log_dir``."""
    settings = settings or get_settings()
    home_dir = settings.run_dir / "elasticsearch"
    config_dir = home_dir / "config"
    logs_dir = settings.log_dir / "elasticsearch"
    return SearchPaths(
        home_dir=home_dir,
        config_dir=config_dir,
        elasticsearch_yml=config_dir / "elasticsearch.yml",
        log4j_config=config_dir / "log4j2.properties",
        modules_dir=home_dir / "modules",
        launcher_dir=home_dir / "launcher",
        native_dir=home_dir / "lib" / "platform",
        tmp_dir=home_dir / "tmp",
        data_dir=settings.run_dir / "elasticsearch-data",
        logs_dir=logs_dir,
        server_log=logs_dir / f"{CLUSTER_NAME}.log",
        process_log=process.log_path(SEARCH_PROCESS, settings),
    )


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


def jvm_options(settings: Settings, paths: SearchPaths) -> list[str]:
    """JVM flags of the node (the relevant part of the distribution's ``jvm.options``)."""
    return [
        f"-Xms{settings.search_heap}",
        f"-Xmx{settings.search_heap}",
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


def is_netty_module_jar(jar: Path) -> bool:
    """True for the jars of the transport-netty4 module (they live in its module folder)."""
    return jar.name.startswith(("netty-", f"{NETTY_MODULE}-"))


def server_classpath(jars: Iterable[Path]) -> list[Path]:
    """The jars that go on the node's classpath: all but the netty module's.

    The module's jars must not be on both: Elasticsearch's jar-hell check refuses duplicates.
    """
    return sorted(jar for jar in jars if not is_netty_module_jar(jar))


def classpath_descriptor(descriptor_text: str) -> str:
    """A module's ``plugin-descriptor.properties`` without ``modulename``.

    The launcher runs the server from the classpath, not as the named module
    ``org.elasticsearch.server``, so modules load as classpath (non-modular) plugins.
    """
    kept = [line for line in descriptor_text.splitlines() if not line.startswith("modulename=")]
    return "\n".join(kept) + "\n"


def root_module_descriptor(version: str) -> str:
    """``plugin-descriptor.properties`` of our ``rtc-root`` module (``GET /`` and ``HEAD /``)."""
    return (
        "description=GET / and HEAD / of the local node (Elastic's rest-root is not on Maven)\n"
        f"version={version}\n"
        f"name={ROOT_MODULE}\n"
        f"classname={ROOT_MODULE_CLASS}\n"
        f"java.version={MIN_SEARCH_JAVA_MAJOR}\n"
        f"elasticsearch.version={version}\n"
    )


def java_command(java: Path, settings: Settings, classpath: Sequence[Path]) -> list[str]:
    """``java <options> -cp <launcher>:<server jars> rtcrypto.searchnode.SearchNode <home>``."""
    paths = search_paths(settings)
    entries = [paths.launcher_dir / "classes", *classpath]
    return [
        str(java),
        *jvm_options(settings, paths),
        "-cp",
        os.pathsep.join(str(entry) for entry in entries),
        LAUNCHER_MAIN_CLASS,
        str(paths.home_dir),
    ]


# --- Java --------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _java_major(java: Path) -> int | None:
    try:
        probe = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError:
        return None
    return maven.parse_java_major(probe.stderr + probe.stdout)


def _java_home_candidates(settings: Settings) -> list[Path]:
    if settings.search_java_home is not None:
        return [settings.search_java_home]  # an explicit choice is the only candidate
    candidates = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidates.append(Path(java_home))
    jvm_root = Path("/usr/lib/jvm")
    if jvm_root.is_dir():
        candidates += sorted(path for path in jvm_root.iterdir() if path.is_dir())
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve().parent.parent)
    return list(dict.fromkeys(candidates))


def find_search_java(settings: Settings | None = None) -> JavaTool:
    """The newest JDK (``java`` and ``javac``) of at least Java 21 among the candidates.

    Candidates: ``search_java_home`` alone if set, else ``JAVA_HOME``, the JDKs in
    ``/usr/lib/jvm`` and the ``java`` on PATH. Raises :class:`ToolMissingError` if none fits.
    """
    settings = settings or get_settings()
    found: list[JavaTool] = []
    seen: list[str] = []
    for home in _java_home_candidates(settings):
        java, javac = home / "bin" / "java", home / "bin" / "javac"
        if not (java.is_file() and javac.is_file()):
            continue
        major = _java_major(java)
        seen.append(f"{home} (Java {major})")
        if major is not None and major >= MIN_SEARCH_JAVA_MAJOR:
            found.append(JavaTool(java, javac, major))
    if found:
        return max(found, key=lambda tool: tool.major)
    where = "RTC_SEARCH_JAVA_HOME" if settings.search_java_home else "JAVA_HOME, /usr/lib/jvm, PATH"
    raise ToolMissingError(
        f"Elasticsearch {settings.search_version} needs a JDK {MIN_SEARCH_JAVA_MAJOR}+ with javac; "
        f"found in {where}: {', '.join(seen) or 'none'}. Install one (Debian: "
        f"`apt-get install openjdk-21-jdk-headless`) and/or set RTC_SEARCH_JAVA_HOME to it."
    )


# --- home folder: modules, launcher, configuration ---------------------------------------------


def _sources(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.java"))


def _build_fingerprint(tool: JavaTool, settings: Settings) -> dict[str, str]:
    digest = hashlib.sha256()
    for source in _sources(LAUNCHER_SOURCES) + _sources(ROOT_MODULE_SOURCES):
        digest.update(str(source.relative_to(SOURCES_DIR)).encode())
        digest.update(source.read_bytes())
    return {
        "sources_sha256": digest.hexdigest(),
        "elasticsearch_version": settings.search_version,
        "javac": str(tool.javac),
        "java_major": str(tool.major),
    }


def _javac(tool: JavaTool, classpath: Sequence[Path], sources: Sequence[Path], out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command = [
        str(tool.javac),
        "-nowarn",
        "--release",
        str(MIN_SEARCH_JAVA_MAJOR),
        "-cp",
        os.pathsep.join(str(jar) for jar in classpath),
        "-d",
        str(out),
        *(str(source) for source in sources),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if completed.returncode != 0:
        raise StackError(
            f"compiling the Elasticsearch launcher failed (exit {completed.returncode}):\n"
            + (completed.stdout + completed.stderr).strip()[-2000:]
        )


def _write_jar(classes_dir: Path, jar: Path, package_dir: str) -> None:
    """Zip the classes under ``classes_dir/package_dir`` into ``jar`` (a jar needs no manifest)."""
    jar.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((classes_dir / package_dir).rglob("*.class")):
            archive.write(path, path.relative_to(classes_dir).as_posix())


def build_launcher(tool: JavaTool, classpath: Sequence[Path], settings: Settings) -> bool:
    """Compile the launcher and the ``rtc-root`` module when their sources changed; True if built.

    The launcher's classes go to ``<home>/launcher/classes``; the module's jar and descriptor to
    ``<home>/modules/rtc-root``. A marker with the sources' hash skips the build next time.
    """
    paths = search_paths(settings)
    marker = paths.launcher_dir / _BUILD_MARKER
    fingerprint = _build_fingerprint(tool, settings)
    root_jar = paths.modules_dir / ROOT_MODULE / f"{ROOT_MODULE}.jar"
    try:
        if json.loads(marker.read_text()) == fingerprint and root_jar.is_file():
            return False
    except (OSError, ValueError):
        pass
    logger.info("compiling the Elasticsearch launcher with %s", tool.javac)
    marker.unlink(missing_ok=True)
    classes_dir = paths.launcher_dir / "classes"
    # One javac run for both (a JVM start each is seconds on 2 cores); the module's classes then
    # move into its jar, since the jar-hell check refuses a class on the classpath and in a module.
    _javac(tool, classpath, _sources(LAUNCHER_SOURCES) + _sources(ROOT_MODULE_SOURCES), classes_dir)
    root_package = ROOT_MODULE_CLASS.rsplit(".", 1)[0].replace(".", "/")
    root_dir = paths.modules_dir / ROOT_MODULE
    shutil.rmtree(root_dir, ignore_errors=True)
    _write_jar(classes_dir, root_jar, root_package)
    shutil.rmtree(classes_dir / root_package)
    (root_dir / "plugin-descriptor.properties").write_text(
        root_module_descriptor(settings.search_version)
    )
    marker.write_text(json.dumps(fingerprint, indent=2))
    return True


def install_netty_module(jars: Iterable[Path], settings: Settings) -> Path:
    """Copy the transport-netty4 jars and a classpath descriptor into the home's modules folder."""
    paths = search_paths(settings)
    module_jars = sorted(jar for jar in jars if is_netty_module_jar(jar))
    plugin_jar = next((jar for jar in module_jars if jar.name.startswith(NETTY_MODULE)), None)
    if plugin_jar is None:
        raise StackError(
            f"{NETTY_MODULE} jar missing from the resolved Elasticsearch jars; "
            f"delete {maven.jar_dir(elasticsearch_jar_set(settings), settings)} and retry"
        )
    module_dir = paths.modules_dir / NETTY_MODULE
    wanted = {jar.name for jar in module_jars} | {"plugin-descriptor.properties"}
    if module_dir.is_dir():
        for leftover in module_dir.iterdir():
            if leftover.name not in wanted:  # jars of another version
                leftover.unlink()
    module_dir.mkdir(parents=True, exist_ok=True)
    for jar in module_jars:
        target = module_dir / jar.name
        if not target.is_file() or target.stat().st_size != jar.stat().st_size:
            shutil.copy2(jar, target)
    with zipfile.ZipFile(plugin_jar) as archive:
        descriptor = archive.read(_NETTY_DESCRIPTOR).decode()
    (module_dir / "plugin-descriptor.properties").write_text(classpath_descriptor(descriptor))
    return module_dir


def find_system_zstd(search_dirs: Iterable[Path] = ZSTD_LIBRARY_DIRS) -> Path | None:
    """The system's ``libzstd.so.1`` (Debian: package libzstd1), or None."""
    for folder in search_dirs:
        candidate = folder / "libzstd.so.1"
        if candidate.exists():
            return candidate
    return None


def link_native_libraries(settings: Settings) -> None:
    """Link the system's zstd as ``<home>/lib/platform/libzstd.so``, where the node loads it.

    Raises :class:`ToolMissingError` without it: every index compresses stored fields with
    zstd, and without the library each refresh fails with "Zstd ... because zstd is null".
    """
    paths = search_paths(settings)
    paths.native_dir.mkdir(parents=True, exist_ok=True)
    system_zstd = find_system_zstd()
    if system_zstd is None:
        raise ToolMissingError(
            "the zstd library (libzstd.so.1) is missing; Elasticsearch compresses stored fields "
            "with it. Install it (Debian: `apt-get install libzstd1`)."
        )
    link = paths.native_dir / "libzstd.so"
    if link.is_symlink() or link.exists():
        if link.resolve() == system_zstd.resolve():
            return
        link.unlink()
    link.symlink_to(system_zstd)


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
