"""Kafka's generated configuration and the clear errors of `rtc stack up`."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rtcrypto.cli.main import app
from rtcrypto.config import Settings, get_settings
from rtcrypto.stack import kafka, process
from rtcrypto.stack.errors import PortInUseError, StackError, ToolMissingError


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "rtc", kafka_partitions=3)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_server_properties_for_kraft_combined_mode(settings: Settings) -> None:
    data_dir = kafka.kafka_paths(settings).data_dir

    properties = kafka.server_properties(settings, data_dir)

    assert properties["process.roles"] == "broker,controller"
    assert properties["node.id"] == "1"
    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert properties["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert properties["controller.listener.names"] == "CONTROLLER"
    assert properties["log.dirs"] == str(settings.run_dir / "kafka-data")
    assert properties["num.partitions"] == "3"
    assert properties["offsets.topic.replication.factor"] == "1"
    assert properties["transaction.state.log.replication.factor"] == "1"
    assert properties["auto.create.topics.enable"] == "false"


def test_ports_come_from_settings(settings: Settings) -> None:
    moved = settings.model_copy(
        update={"kafka_bootstrap": "127.0.0.1:19092", "kafka_controller_port": 19093}
    )

    properties = kafka.server_properties(moved, Path("/data"))

    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"


def test_write_config_writes_properties_and_log4j(settings: Settings) -> None:
    paths = kafka.write_config(settings)

    text = paths.server_properties.read_text()
    assert "process.roles=broker,controller\n" in text
    assert f"log.dirs={settings.run_dir / 'kafka-data'}\n" in text
    assert f"appender.file.fileName = {settings.log_dir / 'kafka-server.log'}" in (
        paths.log4j_config.read_text()
    )
    assert paths.data_dir.is_dir()
    assert not kafka.is_formatted(settings)


@pytest.mark.parametrize(
    ("bootstrap", "expected"),
    [("127.0.0.1:9092", ("127.0.0.1", 9092)), ("localhost:1,other:2", ("localhost", 1))],
)
def test_parse_bootstrap(bootstrap: str, expected: tuple[str, int]) -> None:
    assert kafka.parse_bootstrap(bootstrap) == expected


@pytest.mark.parametrize("bootstrap", ["9092", "host:", "host:port"])
def test_parse_bootstrap_rejects_garbage(bootstrap: str) -> None:
    with pytest.raises(StackError, match="must be host:port"):
        kafka.parse_bootstrap(bootstrap)


def test_cluster_id_has_kafkas_format() -> None:
    cluster_id = kafka.new_cluster_id()

    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
    assert not cluster_id.startswith("-")


def test_start_without_java_is_a_clear_error(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)

    with pytest.raises(ToolMissingError, match="Java is not installed"):
        kafka.start_kafka(settings)

    assert not process.is_running(kafka.KAFKA_PROCESS, settings)


def test_start_with_a_taken_port_names_the_port(settings: Settings, busy_port: int) -> None:
    moved = settings.model_copy(
        update={"kafka_bootstrap": f"127.0.0.1:{busy_port}", "kafka_controller_port": _free_port()}
    )

    with pytest.raises(PortInUseError, match=f"port {busy_port} on 127.0.0.1 .needed by kafka."):
        kafka.start_kafka(moved)

    assert not process.pid_path(kafka.KAFKA_PROCESS, moved).exists()


@pytest.fixture
def cli_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for CliRunner: an isolated RTC_HOME; settings re-read before and after."""
    get_settings.cache_clear()
    yield {"RTC_HOME": str(tmp_path / "rtc")}
    get_settings.cache_clear()


def test_cli_up_without_java_prints_one_line_and_exits_1(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app, ["stack", "up"], env={**cli_env, "PATH": str(tmp_path), "JAVA_HOME": ""}
    )

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.startswith("error: Java is not installed")
    assert result.output.count("\n") == 1


def test_cli_status_lists_every_pid_file(cli_env: dict[str, str]) -> None:
    isolated = Settings(home=Path(cli_env["RTC_HOME"]))
    runner = CliRunner()

    assert "no managed processes" in runner.invoke(app, ["stack", "status"], env=cli_env).output
    pid = process.start_process("sim", ["sleep", "30"], ports=[8765], settings=isolated)
    try:
        output = runner.invoke(app, ["stack", "status"], env=cli_env).output
        assert re.search(rf"^sim\s+{pid}\s+yes\s+8765\s", output, re.MULTILINE), output
        down = runner.invoke(app, ["stack", "down"], env=cli_env)
        assert down.exit_code == 0
        assert f"stopped   sim (pid {pid})" in down.output
        assert not process.pid_alive(pid)
    finally:
        process.stop_process("sim", settings=isolated)
