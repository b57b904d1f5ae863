"""Java and Maven: find them, and resolve jar sets from Maven Central into ``<lib_dir>/<name>``.

A jar set is a small pom under ``services/maven/<name>`` whose runtime dependencies
``mvn dependency:copy-dependencies`` copies into a folder. A marker file records the version and
the pom's hash, so the second start runs no Maven at all and needs no network.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rtcrypto.config import PROJECT_ROOT, Settings, get_settings
from rtcrypto.stack.errors import StackError, ToolMissingError
from rtcrypto.stack.process import exclusive_lock, tail_file

logger = logging.getLogger(__name__)

MAVEN_POMS_DIR = PROJECT_ROOT / "services" / "maven"
MARKER_NAME = ".resolved.json"
MIN_JAVA_MAJOR = 17  # Kafka 4.x brokers and Spark 4.x both need Java 17+
_MAVEN_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class JarSet:
    """A set of jars resolved from one pom: ``version`` is passed as ``-D<version_property>``."""

    name: str
    pom_dir: Path
    version_property: str
    version: str

    @property
    def pom(self) -> Path:
        return self.pom_dir / "pom.xml"


@dataclass(frozen=True)
class ResolveResult:
    """Outcome of :func:`resolve_jars`: where the jars are and whether Maven had to run."""

    jar_set: JarSet
    jar_dir: Path
    jar_count: int
    size_bytes: int
    ran_maven: bool
    seconds: float


def kafka_broker_jar_set(settings: Settings | None = None) -> JarSet:
    """The Apache Kafka broker (KRaft) with storage and admin tools, at ``kafka_version``."""
    settings = settings or get_settings()
    return JarSet("kafka", MAVEN_POMS_DIR / "kafka", "kafka.version", settings.kafka_version)


def spark_kafka_jar_set(settings: Settings | None = None) -> JarSet:
    """Spark's Kafka connector (spark-sql-kafka-0-10 and its own deps), at ``spark_version``."""
    settings = settings or get_settings()
    return JarSet(
        "spark-kafka", MAVEN_POMS_DIR / "spark-kafka", "spark.version", settings.spark_version
    )


def jar_dir(jar_set: JarSet, settings: Settings | None = None) -> Path:
    """``<lib_dir>/<jar set name>``: where the jars of ``jar_set`` are copied."""
    return (settings or get_settings()).lib_dir / jar_set.name


# --- tools -------------------------------------------------------------------------------------


def find_java() -> Path:
    """The ``java`` executable: ``$JAVA_HOME/bin/java`` if set, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return Path(java_home) / "bin" / "java"
    found = shutil.which("java")
    if found is None:
        raise ToolMissingError(
            f"Java is not installed (no `java` on PATH and no JAVA_HOME). Install a JDK "
            f"{MIN_JAVA_MAJOR}+ (Debian: `apt-get install openjdk-17-jdk-headless`) or set JAVA_HOME."
        )
    return Path(found)


def parse_java_major(version_output: str) -> int | None:
    """Major version from ``java -version`` output (``"1.8.0_392"`` -> 8, ``"17.0.15"`` -> 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def require_java(minimum_major: int = MIN_JAVA_MAJOR) -> Path:
    """A ``java`` of at least ``minimum_major``, or :class:`ToolMissingError` saying what to do."""
    java = find_java()
    try:
        probe = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as error:
        raise ToolMissingError(f"cannot run {java}: {error}") from error
    major = parse_java_major(probe.stderr + probe.stdout)
    if major is None or major < minimum_major:
        found = f"Java {major}" if major else "an unknown Java version"
        raise ToolMissingError(
            f"{java} is {found}; Kafka 4 and Spark 4 need Java {minimum_major}+. "
            f"Install a newer JDK or point JAVA_HOME at one."
        )
    return java


def require_maven() -> Path:
    """The ``mvn`` executable, or :class:`ToolMissingError` saying how to install it."""
    found = shutil.which("mvn")
    if found is None:
        raise ToolMissingError(
            "Maven is not installed (no `mvn` on PATH); it downloads the Kafka and Spark "
            "connector jars once. Install it (Debian: `apt-get install maven`)."
        )
    return Path(found)


# --- resolution --------------------------------------------------------------------------------


def _marker_content(jar_set: JarSet) -> dict[str, str]:
    pom_sha256 = hashlib.sha256(jar_set.pom.read_bytes()).hexdigest()
    return {"name": jar_set.name, "version": jar_set.version, "pom_sha256": pom_sha256}


def _jars_in(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jar"))


def is_resolved(jar_set: JarSet, settings: Settings | None = None) -> bool:
    """True if ``jar_dir`` holds jars resolved from this pom at this version."""
    folder = jar_dir(jar_set, settings)
    try:
        recorded = json.loads((folder / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return False
    return recorded == _marker_content(jar_set) and bool(_jars_in(folder))


def maven_command(mvn: Path, jar_set: JarSet, output_dir: Path) -> list[str]:
    """The ``mvn dependency:copy-dependencies`` command that copies ``jar_set`` to ``output_dir``."""
    return [
        str(mvn),
        "--batch-mode",
        "--no-transfer-progress",
        "-Dstyle.color=never",
        "--file",
        str(jar_set.pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={output_dir}",
        f"-D{jar_set.version_property}={jar_set.version}",
    ]


def _run_maven(jar_set: JarSet, output_dir: Path, settings: Settings) -> None:
    """Run Maven for ``jar_set`` into ``output_dir``; output goes to ``<log_dir>/maven-<name>.log``."""
    require_java()  # Maven itself runs on Java; say so before Maven fails less clearly
    command = maven_command(require_maven(), jar_set, output_dir)
    maven_log = settings.log_dir / f"maven-{jar_set.name}.log"
    maven_log.parent.mkdir(parents=True, exist_ok=True)
    logger.info("resolving %s %s: %s", jar_set.name, jar_set.version, " ".join(command))
    with maven_log.open("w") as log_handle:
        try:
            completed = subprocess.run(
                command,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=_MAVEN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise StackError(
                f"Maven did not finish resolving {jar_set.name} in {_MAVEN_TIMEOUT_S:.0f} s; "
                f"see {maven_log}"
            ) from error
    if completed.returncode != 0:
        errors = [line for line in tail_file(maven_log, 40).splitlines() if "[ERROR]" in line]
        detail = errors[0] if errors else "no [ERROR] line"
        raise StackError(
            f"Maven failed to resolve {jar_set.name} {jar_set.version} (exit {completed.returncode}): "
            f"{detail}. Full log: {maven_log}. Is Maven Central reachable?"
        )


def resolve_jars(
    jar_set: JarSet, settings: Settings | None = None, *, force: bool = False
) -> ResolveResult:
    """Make sure the jars of ``jar_set`` are in ``jar_dir``; run Maven only when they are not.

    Maven copies into a temporary folder that replaces ``jar_dir`` only on success, so a broken
    download never leaves a half-filled folder behind.
    """
    settings = settings or get_settings()
    started = time.monotonic()
    target = jar_dir(jar_set, settings)
    if not jar_set.pom.is_file():
        raise StackError(f"pom of {jar_set.name} not found: {jar_set.pom}")
    ran_maven = False
    # Another process (a second test session, the Spark job) may be resolving the same set.
    with exclusive_lock(f"maven-{jar_set.name}", settings):
        if force or not is_resolved(jar_set, settings):
            staging = target.with_name(f"{target.name}.partial")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            _run_maven(jar_set, staging, settings)
            (staging / MARKER_NAME).write_text(json.dumps(_marker_content(jar_set), indent=2))
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
            ran_maven = True
    jars = _jars_in(target)
    return ResolveResult(
        jar_set=jar_set,
        jar_dir=target,
        jar_count=len(jars),
        size_bytes=sum(jar.stat().st_size for jar in jars),
        ran_maven=ran_maven,
        seconds=time.monotonic() - started,
    )


def spark_kafka_jars(settings: Settings | None = None, *, resolve: bool = True) -> list[Path]:
    """Jar paths of Spark's Kafka connector, for ``spark-submit --jars`` or ``spark.jars``.

    Resolves them first (Maven, once) unless ``resolve`` is False; then raises
    :class:`StackError` if they are missing. Join with "," for ``--jars``.
    """
    jar_set = spark_kafka_jar_set(settings)
    if resolve:
        resolve_jars(jar_set, settings)
    elif not is_resolved(jar_set, settings):
        raise StackError(
            f"Spark Kafka connector jars are not in {jar_dir(jar_set, settings)}; "
            f"run `rtc stack up` once to download them."
        )
    return _jars_in(jar_dir(jar_set, settings))
