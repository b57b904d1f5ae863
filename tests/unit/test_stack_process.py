"""The generic process manager: start detached, pid files, status, stop (TERM, then KILL), ports."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtcrypto.config import Settings
from rtcrypto.stack import process
from rtcrypto.stack.errors import PortInUseError, ProcessAlreadyRunningError


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings whose run and log folders live in a temporary home; stops leftovers after."""
    isolated = Settings(home=tmp_path / "rtc")
    yield isolated
    for status in process.list_processes(isolated):
        process.stop_process(status.name, timeout_s=1.0, settings=isolated)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port held by a listening socket for the duration of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def _wait_for_file(path: Path, timeout_s: float = 5.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written within {timeout_s} s")


def test_start_records_pid_status_and_log(settings: Settings) -> None:
    pid = process.start_process(
        "echoer", ["sh", "-c", "echo hello-from-child; sleep 30"], ports=[1234], settings=settings
    )

    assert process.read_pid("echoer", settings) == pid
    assert process.is_running("echoer", settings)
    status = process.process_status("echoer", settings)
    assert (status.pid, status.running, status.ports) == (pid, True, (1234,))
    assert [entry.name for entry in process.list_processes(settings)] == ["echoer"]
    assert os.getpgid(pid) == pid  # its own process group
    deadline = time.monotonic() + 5
    while "hello-from-child" not in process.tail_log("echoer", settings=settings):
        assert time.monotonic() < deadline, "child output did not reach the log"
        time.sleep(0.05)


def test_stop_terminates_the_whole_group_and_removes_records(
    settings: Settings, tmp_path: Path
) -> None:
    grandchild_file = tmp_path / "grandchild.pid"
    pid = process.start_process(
        "parent", ["sh", "-c", f"sleep 300 & echo $! > {grandchild_file}; wait"], settings=settings
    )
    grandchild = int(_wait_for_file(grandchild_file))

    assert process.stop_process("parent", timeout_s=5.0, settings=settings) is True

    assert not process.pid_alive(pid)
    assert not process.pid_alive(grandchild)
    assert not process.pid_path("parent", settings).exists()
    assert not process.is_running("parent", settings)
    assert process.list_processes(settings) == []


def test_stop_kills_a_process_that_ignores_sigterm(settings: Settings) -> None:
    # An ignored signal stays ignored across exec, so `sleep` ignores TERM too.
    pid = process.start_process(
        "stubborn", ["sh", "-c", "trap '' TERM; sleep 300"], settings=settings
    )
    time.sleep(0.2)  # let the shell install the trap

    started = time.monotonic()
    assert process.stop_process("stubborn", timeout_s=0.5, settings=settings) is True

    assert not process.pid_alive(pid)
    assert time.monotonic() - started < 10


def test_stop_of_unknown_process_is_a_no_op(settings: Settings) -> None:
    assert process.stop_process("never-started", settings=settings) is False


def test_stale_pid_file_is_not_running_and_is_cleared(settings: Settings) -> None:
    pid = process.start_process("short", ["true"], settings=settings)
    deadline = time.monotonic() + 5
    while process.pid_alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    assert not process.is_running("short", settings)
    assert process.stop_process("short", settings=settings) is False
    assert not process.pid_path("short", settings).exists()


def test_reused_pid_is_not_mistaken_for_our_process(settings: Settings) -> None:
    settings.run_dir.mkdir(parents=True)
    process.pid_path("ghost", settings).write_text(f"{os.getpid()}\n")
    process.meta_path("ghost", settings).write_text(json.dumps({"start_ticks": -1}))

    assert not process.is_running("ghost", settings)


def test_second_start_of_a_running_name_is_refused(settings: Settings) -> None:
    process.start_process("single", ["sleep", "30"], settings=settings)

    with pytest.raises(ProcessAlreadyRunningError, match="single is already running"):
        process.start_process("single", ["sleep", "30"], settings=settings)


def test_port_in_use_is_detected(busy_port: int) -> None:
    assert process.port_in_use(busy_port)
    assert process.port_accepts(busy_port)


def test_busy_port_refuses_start_with_a_message_naming_the_port(
    settings: Settings, busy_port: int
) -> None:
    with pytest.raises(PortInUseError) as raised:
        process.start_process(
            "server", ["sleep", "30"], ports=[busy_port], port_hint="set RTC_X", settings=settings
        )

    message = str(raised.value)
    assert f"port {busy_port} on 127.0.0.1 (needed by server)" in message
    assert f"ss -ltnp 'sport = :{busy_port}'" in message
    assert "set RTC_X" in message
    assert raised.value.port == busy_port
    assert not process.pid_path("server", settings).exists()


def test_exclusive_lock_creates_its_file(settings: Settings) -> None:
    with process.exclusive_lock("demo", settings):
        assert (settings.run_dir / "demo.lock").exists()
