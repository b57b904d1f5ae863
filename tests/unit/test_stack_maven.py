"""Java and Maven checks, and the jar cache that lets the second start skip Maven."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtcrypto.config import Settings
from rtcrypto.stack import maven
from rtcrypto.stack.errors import StackError, ToolMissingError


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "rtc")


@pytest.fixture
def empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH reduced to one empty folder and no JAVA_HOME: no java, no mvn."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    return bin_dir


def _script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_missing_java_says_what_to_install(empty_path: Path) -> None:
    with pytest.raises(ToolMissingError, match=r"Java is not installed.*JDK 17\+.*JAVA_HOME"):
        maven.require_java()


def test_too_old_java_is_refused(empty_path: Path) -> None:
    _script(empty_path, "java", "echo 'openjdk version \"11.0.21\" 2023-10-17' >&2")

    with pytest.raises(ToolMissingError, match=r"Java 11; Kafka 4 and Spark 4 need Java 17\+"):
        maven.require_java()


def test_java_home_wins_over_path(
    empty_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    java_home = tmp_path / "jdk"
    (java_home / "bin").mkdir(parents=True)
    _script(java_home / "bin", "java", "echo 'openjdk version \"21.0.1\"' >&2")
    monkeypatch.setenv("JAVA_HOME", str(java_home))

    assert maven.require_java() == java_home / "bin" / "java"


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("garbage", None),
    ],
)
def test_parse_java_major(output: str, major: int | None) -> None:
    assert maven.parse_java_major(output) == major


def test_missing_maven_says_what_to_install(empty_path: Path) -> None:
    with pytest.raises(ToolMissingError, match=r"no `mvn` on PATH.*apt-get install maven"):
        maven.require_maven()


def test_maven_command_passes_the_version_from_settings(settings: Settings) -> None:
    jar_set = maven.kafka_broker_jar_set(settings.model_copy(update={"kafka_version": "4.0.9"}))

    command = maven.maven_command(Path("/usr/bin/mvn"), jar_set, Path("/out"))

    assert "dependency:copy-dependencies" in command
    assert "-Dkafka.version=4.0.9" in command
    assert "-DoutputDirectory=/out" in command
    assert "-DincludeScope=runtime" in command


def _fake_resolved(jar_set: maven.JarSet, settings: Settings) -> Path:
    folder = maven.jar_dir(jar_set, settings)
    folder.mkdir(parents=True)
    (folder / "kafka-clients-9.9.9.jar").write_bytes(b"jar")
    marker = maven._marker_content(jar_set)
    (folder / maven.MARKER_NAME).write_text(json.dumps(marker))
    return folder


def test_second_resolve_runs_no_maven(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    jar_set = maven.spark_kafka_jar_set(settings)
    folder = _fake_resolved(jar_set, settings)

    def no_maven(*_: object) -> None:
        raise AssertionError("Maven must not run when the cache is valid")

    monkeypatch.setattr(maven, "_run_maven", no_maven)
    result = maven.resolve_jars(jar_set, settings)

    assert result.ran_maven is False
    assert result.jar_count == 1
    assert maven.spark_kafka_jars(settings) == [folder / "kafka-clients-9.9.9.jar"]


def test_version_change_invalidates_the_cache(settings: Settings) -> None:
    _fake_resolved(maven.spark_kafka_jar_set(settings), settings)
    newer = settings.model_copy(update={"spark_version": "9.9.9"})

    assert maven.is_resolved(maven.spark_kafka_jar_set(settings), settings)
    assert not maven.is_resolved(maven.spark_kafka_jar_set(newer), newer)


def test_spark_kafka_jars_without_resolve_says_how_to_get_them(settings: Settings) -> None:
    with pytest.raises(StackError, match="run `rtc stack up` once"):
        maven.spark_kafka_jars(settings, resolve=False)


def test_maven_failure_names_the_error_and_the_log(
    settings: Settings, empty_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _script(empty_path, "java", "echo 'openjdk version \"17.0.1\"' >&2")
    _script(
        empty_path, "mvn", "echo '[ERROR] Could not resolve org.apache.kafka:kafka_2.13'; exit 1"
    )

    with pytest.raises(StackError) as raised:
        maven.resolve_jars(maven.kafka_broker_jar_set(settings), settings)

    message = str(raised.value)
    assert "Could not resolve org.apache.kafka:kafka_2.13" in message
    assert str(settings.log_dir / "maven-kafka.log") in message
    assert not maven.jar_dir(maven.kafka_broker_jar_set(settings), settings).exists()
