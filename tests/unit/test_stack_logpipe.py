"""Log rotation of every managed process (issue 10: service logs were never rotated).

Before issue 10 ``<log_dir>/<name>.log`` grew without end. Now a process started by the process
manager writes through rtcrypto/stack/logpipe.py: same pid, output rotated by size into
``<name>.log.1`` ... ``<name>.log.K``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcrypto.config import Settings
from rtcrypto.stack import process
from rtcrypto.stack.logpipe import RotatingLog

LINE = "x" * 99  # 100 bytes with its newline


@pytest.fixture
def small_logs(tmp_path: Path) -> Iterator[Settings]:
    isolated = Settings(home=tmp_path / "rtc", log_max_bytes=10_000, log_backup_count=3)
    yield isolated
    for status in process.list_processes(isolated):
        process.stop_process(status.name, timeout_s=2.0, settings=isolated)


def _wait(condition, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_process_writing_past_the_cap_is_rotated(small_logs: Settings) -> None:
    """5,000 lines of 100 bytes (500 kB) through a 10 kB cap with 3 backups: four files of at
    most 10 kB, whole lines, the newest lines last; the process keeps its own pid."""
    script = (
        "import sys, time\n"
        f"for i in range(5000): print(f'{{i:06d}} {LINE[:92]}', flush=(i % 100 == 0))\n"
        "sys.stdout.flush()\n"
        "time.sleep(60)\n"
    )
    pid = process.start_process("chatty", [sys.executable, "-c", script], settings=small_logs)
    log = process.log_path("chatty", small_logs)
    files = [log, *(log.with_name(f"{log.name}.{index}") for index in (1, 2, 3))]

    def last_line_written() -> bool:
        return log.exists() and "004999 " in log.read_text()

    _wait(last_line_written, 30, "the last line in the current log")
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[1:3] == [b"-c", script.encode()], "the pid is the service, not a wrapper"
    assert all(path.exists() for path in files)
    assert not log.with_name(f"{log.name}.4").exists(), "only log_backup_count backups are kept"
    for path in files:
        assert path.stat().st_size <= 10_000, path
    text = "".join(path.read_text() for path in reversed(files))  # oldest first
    numbers = [int(line[:6]) for line in text.splitlines() if line[:6].isdigit()]
    assert numbers == list(range(numbers[0], 5000)), "whole lines, in order, none lost in between"
    assert len(numbers) > 300

    assert process.stop_process("chatty", timeout_s=5.0, settings=small_logs)
    assert not process.pid_alive(pid)


def test_the_writer_ends_with_the_service_even_after_kill_9(small_logs: Settings) -> None:
    pid = process.start_process(
        "sleepy", [sys.executable, "-c", "print('up', flush=True); import time; time.sleep(60)"],
        settings=small_logs,
    )  # fmt: skip
    log = process.log_path("sleepy", small_logs)
    _wait(lambda: "up" in log.read_text(), 20, "the service's first line")
    os.kill(pid, 9)
    # the process group (the service and its log writer) empties: the writer saw end-of-file
    _wait(lambda: not process.pid_alive(pid), 10, "the service gone (and reaped)")
    _wait(lambda: not process._group_alive(pid), 10, "the log writer gone with the service")


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.lists(
        st.binary(min_size=0, max_size=300).map(lambda raw: raw.replace(b"\0", b"\n")),
        max_size=40,
    ),
    max_bytes=st.integers(min_value=1, max_value=200),
)
def test_rotation_keeps_every_byte_in_order_within_the_cap(
    tmp_path_factory: pytest.TempPathFactory, chunks: list[bytes], max_bytes: int
) -> None:
    """Property: with enough backups the files, oldest first, hold exactly what was written,
    and no file is larger than the cap."""
    path = tmp_path_factory.mktemp("rot") / "service.log"
    log = RotatingLog(str(path), max_bytes, backups=10_000)
    for chunk in chunks:
        log.write(chunk)
    log.close()
    files = sorted(path.parent.glob("service.log.*"), key=lambda p: -int(p.suffix[1:]))
    files.append(path)
    assert b"".join(p.read_bytes() for p in files) == b"".join(chunks)
    assert all(p.stat().st_size <= max_bytes for p in files)
