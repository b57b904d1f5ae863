"""Listening TCP sockets of a process tree, from /proc (what ``ss -ltnp`` shows), for the
exposure tests: every listener of the platform binds loopback unless a setting says otherwise."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

LISTEN_STATE = "0A"


@dataclass(frozen=True)
class Listener:
    pid: int
    command: str
    address: str  # as ss prints it: 127.0.0.1, ::, ::ffff:127.0.0.1
    port: int

    @property
    def loopback(self) -> bool:
        address = ipaddress.ip_address(self.address)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return address.ipv4_mapped.is_loopback
        return address.is_loopback

    def __str__(self) -> str:
        return f"{self.address}:{self.port} pid {self.pid} ({self.command[:120]})"


def _address(hex_address: str) -> str:
    """/proc/net/tcp{,6} address (host byte order per 32-bit word) as text."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def listening_inodes() -> dict[int, tuple[str, int]]:
    """Socket inode -> (address, port) of every listening TCP socket of this network namespace."""
    found: dict[int, tuple[str, int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != LISTEN_STATE:
                continue
            hex_address, hex_port = fields[1].split(":")
            found[int(fields[9])] = (_address(hex_address), int(hex_port, 16))
    return found


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(text.rsplit(")", 1)[1].split()[1])
    return parents


def process_tree(roots: Iterable[int]) -> set[int]:
    """``roots`` and all their living descendants."""
    parents = _parents()
    tree = {root for root in roots if root in parents}
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    return tree


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def listeners_of(pids: Iterable[int]) -> list[Listener]:
    """Every listening TCP socket held by one of ``pids``."""
    inodes = listening_inodes()
    found: list[Listener] = []
    for pid in sorted(set(pids)):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                address, port = inodes[int(target[8:-1])]
                found.append(Listener(pid, _command(pid), address, port))
    return sorted(set(found), key=lambda entry: (entry.port, entry.pid))


def processes_mentioning(text: str) -> list[str]:
    """``pid: command`` of every live process (zombies and this one excluded) whose command line
    holds ``text``: what a test's home leaves behind after a stop."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        if proc.name == str(os.getpid()):
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text in command and state != "Z":
            found.append(f"{proc.name}: {command[:200]}")
    return found
