"""Size-based log rotation for a managed process's stdout and stderr.

``python -S logpipe.py --log FILE --max-bytes N --backups K -- COMMAND...`` (run by path, so it
imports nothing of the project and starts in a few ms):

1. makes a pipe and double-forks a writer (re-parented to init, same process group), which
   copies the pipe into ``FILE`` and rotates it when it would pass ``N`` bytes:
   ``FILE`` -> ``FILE.1`` -> ... -> ``FILE.K`` (the oldest is deleted). Lines are kept whole
   unless one line alone is longer than ``N``;
2. points its own stdout and stderr at the pipe and ``exec``s ``COMMAND``: the service keeps
   this pid (pid files, ``kill -9`` in the fault suite and RSS figures stay the service's own).

The writer ignores SIGTERM, SIGINT and SIGHUP (a stop signals the whole group): it writes what
is left and exits at end-of-file, when the service and every child that inherited the pipe are
gone. The project's own code starts it through :func:`rtcrypto.stack.process.start_process`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

CHUNK_BYTES = 64 * 1024


class RotatingLog:
    """``path`` capped at ``max_bytes``, with ``backups`` older files ``path.1`` ... ``path.K``."""

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        if max_bytes < 1 or backups < 1:
            raise ValueError("max_bytes and backups must be >= 1")
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._fd = self._open()
        self.size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def rotate(self) -> None:
        """``path.K-1`` -> ``path.K``, ..., ``path`` -> ``path.1``; then a new empty ``path``."""
        os.close(self._fd)
        for index in range(self.backups - 1, 0, -1):
            older = f"{self.path}.{index}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{index + 1}")
        if os.path.exists(self.path):
            os.replace(self.path, f"{self.path}.1")
        self._fd = self._open()
        self.size = 0

    def write(self, data: bytes) -> None:
        """Append ``data``, rotating first whenever it would pass ``max_bytes``."""
        while data:
            room = self.max_bytes - self.size
            if len(data) <= room:
                self._write_all(data)
                return
            cut = data.rfind(b"\n", 0, room) + 1 if room > 0 else 0  # keep lines whole
            if cut == 0 and self.size == 0:
                cut = room  # one line longer than the cap: cut it
            if cut:
                self._write_all(data[:cut])
                data = data[cut:]
            self.rotate()

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(data)

    def close(self) -> None:
        os.close(self._fd)


def copy_until_eof(read_fd: int, log: RotatingLog) -> None:
    """The writer's loop: pipe -> rotating log, until every writer of the pipe is gone."""
    while True:
        try:
            data = os.read(read_fd, CHUNK_BYTES)
        except InterruptedError:
            continue
        if not data:
            return
        log.write(data)


def _become_writer(read_fd: int, path: str, max_bytes: int, backups: int) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    try:
        log = RotatingLog(path, max_bytes, backups)
        copy_until_eof(read_fd, log)
        log.close()
    finally:
        os._exit(0)


def run(path: str, max_bytes: int, backups: int, command: Sequence[str]) -> None:
    """Fork the writer, then replace this process with ``command`` (never returns)."""
    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first == 0:  # the intermediate child: fork the writer and leave, so init adopts it
        os.close(write_fd)
        if os.fork() == 0:
            _become_writer(read_fd, path, max_bytes, backups)
        os._exit(0)
    os.waitpid(first, 0)
    os.close(read_fd)
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    os.execvp(command[0], list(command))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="logpipe", description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True, help="the log file")
    parser.add_argument("--max-bytes", type=int, required=True, help="rotate past this size")
    parser.add_argument("--backups", type=int, required=True, help="rotated files to keep")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or args.max_bytes < 1 or args.backups < 1:
        parser.error("needs --max-bytes >= 1, --backups >= 1 and -- COMMAND")
    run(args.log, args.max_bytes, args.backups, command)


if __name__ == "__main__":
    main(sys.argv[1:])
