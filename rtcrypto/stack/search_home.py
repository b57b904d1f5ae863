"""The home folder of a local Elasticsearch node: its JDK, launcher, modules and native libraries.

Shared by the single node (:mod:`rtcrypto.stack.search`) and the nodes of the cluster topology
(:mod:`rtcrypto.stack.search_cluster`): each function takes the node's :class:`SearchPaths`
(the single node's, from :func:`search_paths`, when none is given). Layout of a home:

- ``config/``: ``elasticsearch.yml`` and ``log4j2.properties`` (written by the node's module);
- ``modules/transport-netty4``: the HTTP and transport module's jars and a classpath descriptor;
- ``modules/rtc-root``: our ``GET /`` and ``HEAD /`` (Elastic's rest-root is not on Maven);
- ``launcher/``: the compiled launcher (``classes/``) and the ``rtc-root`` module it was built
  with (copied into each home's ``modules/``), so several nodes can share one launcher build;
- ``lib/platform/libzstd.so``: a link to the system's zstd.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rtcrypto.config import PROJECT_ROOT, Settings, get_settings
from rtcrypto.stack import maven, process
from rtcrypto.stack.errors import StackError, ToolMissingError

logger = logging.getLogger(__name__)

SEARCH_PROCESS = "elasticsearch"
CLUSTER_NAME = "rtc-local"
MIN_SEARCH_JAVA_MAJOR = 21  # Elasticsearch 9.x is compiled for Java 21
LAUNCHER_MAIN_CLASS = "rtcrypto.searchnode.SearchNode"
SOURCES_DIR = PROJECT_ROOT / "services" / "elasticsearch"
LAUNCHER_SOURCES = SOURCES_DIR / "launcher"
ROOT_MODULE_SOURCES = SOURCES_DIR / "root-module"
NETTY_MODULE = "transport-netty4"
ROOT_MODULE = "rtc-root"
ROOT_MODULE_CLASS = "rtcrypto.searchnode.root.RootEndpointPlugin"
_NETTY_DESCRIPTOR = f"META-INF/es-plugins/{NETTY_MODULE}/plugin-descriptor.properties"
_BUILD_MARKER = ".built.json"
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
    """Where one node keeps its home, configuration, data and logs (``launcher_dir`` may be
    shared by several nodes)."""

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
    """The single node's folders and files under ``run_dir`` and ``log_dir``."""
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


def build_launcher(
    tool: JavaTool, classpath: Sequence[Path], settings: Settings, paths: SearchPaths | None = None
) -> bool:
    """Compile the launcher and the ``rtc-root`` module when their sources changed; True if built.

    The launcher's classes go to ``<launcher_dir>/classes`` and the module's jar and descriptor
    to ``<launcher_dir>/rtc-root``, copied into the home's ``modules/rtc-root``. A marker with
    the sources' hash skips the build next time (and for every node sharing ``launcher_dir``).
    """
    paths = paths or search_paths(settings)
    marker = paths.launcher_dir / _BUILD_MARKER
    fingerprint = _build_fingerprint(tool, settings)
    built_module = paths.launcher_dir / ROOT_MODULE
    root_jar = built_module / f"{ROOT_MODULE}.jar"
    try:
        fresh = json.loads(marker.read_text()) == fingerprint and root_jar.is_file()
    except (OSError, ValueError):
        fresh = False
    if not fresh:
        logger.info("compiling the Elasticsearch launcher with %s", tool.javac)
        marker.unlink(missing_ok=True)
        classes_dir = paths.launcher_dir / "classes"
        # One javac run for both (a JVM start each is seconds on 2 cores); the module's classes
        # then move into its jar: the jar-hell check refuses a class on the classpath and in a
        # module.
        sources = _sources(LAUNCHER_SOURCES) + _sources(ROOT_MODULE_SOURCES)
        _javac(tool, classpath, sources, classes_dir)
        root_package = ROOT_MODULE_CLASS.rsplit(".", 1)[0].replace(".", "/")
        shutil.rmtree(built_module, ignore_errors=True)
        _write_jar(classes_dir, root_jar, root_package)
        shutil.rmtree(classes_dir / root_package)
        (built_module / "plugin-descriptor.properties").write_text(
            root_module_descriptor(settings.search_version)
        )
        marker.write_text(json.dumps(fingerprint, indent=2))
    installed = paths.modules_dir / ROOT_MODULE
    shutil.rmtree(installed, ignore_errors=True)
    shutil.copytree(built_module, installed)
    return not fresh


def install_netty_module(
    jars: Iterable[Path], settings: Settings, paths: SearchPaths | None = None
) -> Path:
    """Copy the transport-netty4 jars and a classpath descriptor into the home's modules folder."""
    paths = paths or search_paths(settings)
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


def link_native_libraries(settings: Settings, paths: SearchPaths | None = None) -> None:
    """Link the system's zstd as ``<home>/lib/platform/libzstd.so``, where the node loads it.

    Raises :class:`ToolMissingError` without it: every index compresses stored fields with
    zstd, and without the library each refresh fails with "Zstd ... because zstd is null".
    """
    paths = paths or search_paths(settings)
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
