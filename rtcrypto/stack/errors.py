"""Errors of the embedded local stack: each message says what failed and what to do about it."""

from __future__ import annotations


class StackError(Exception):
    """An expected failure of the local stack; the CLI prints the message without a traceback."""


class ToolMissingError(StackError):
    """A program the stack needs (``java``, ``mvn``) is not installed or too old."""


class PortInUseError(StackError):
    """A port a service needs is already bound by another program."""

    def __init__(self, port: int, host: str, service: str, hint: str = "") -> None:
        self.port = port
        self.host = host
        self.service = service
        message = (
            f"port {port} on {host} (needed by {service}) is already in use by another program. "
            f"Find it with `ss -ltnp 'sport = :{port}'` and stop it"
        )
        message += f", or {hint}." if hint else "."
        super().__init__(message)


class ProcessAlreadyRunningError(StackError):
    """A managed process with this name is already running."""


class ServiceStartError(StackError):
    """A service was started but exited or did not become healthy in time."""
