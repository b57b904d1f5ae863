"""Passwords of the cluster's Airflow backends, generated at first start, kept in 0600 files.

PostgreSQL (its superuser and the ``airflow`` and ``celery`` roles), Redis, and the URLs Airflow
reads through ``AIRFLOW__..._CMD`` (``cat <file>``) live in ``<airflow home>/secrets/`` (mode
0700), each file mode 0600, like the admin password file. A password is made once and reused; it
is never printed, logged or put on a command line: callers read it with :func:`read_secret` and
pass it in memory (a client's keyword argument) or as a file path.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from rtcrypto.config import Settings
from rtcrypto.stack.errors import StackError

SECRETS_DIR_NAME = "secrets"
# letters and digits only: safe inside a URL and a config file without quoting
_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
PASSWORD_LENGTH = 32


def secrets_dir(settings: Settings) -> Path:
    """``<airflow home>/secrets``: the folder of the cluster's password and URL files."""
    return settings.airflow_home_dir / SECRETS_DIR_NAME


def secret_path(settings: Settings, name: str) -> Path:
    """``<airflow home>/secrets/<name>``."""
    return secrets_dir(settings) / name


def new_password(length: int = PASSWORD_LENGTH) -> str:
    """A random password of ``length`` letters and digits (``secrets``)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def write_secret(path: Path, value: str) -> Path:
    """Write ``value`` to ``path``, created with mode 0600 (its folder 0700); return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value)
    path.chmod(0o600)
    return path


def ensure_password(settings: Settings, name: str) -> Path:
    """The file of password ``name``, generated on the first call; return its path."""
    path = secret_path(settings, name)
    try:
        if path.read_text().strip():
            path.chmod(0o600)
            return path
    except OSError:
        pass
    return write_secret(path, new_password())


def read_secret(settings: Settings, name: str) -> str:
    """The content of secret ``name`` (never log it); a clear error if it is missing."""
    path = secret_path(settings, name)
    try:
        value = path.read_text().strip()
    except OSError as error:
        raise StackError(f"no readable secret file {path}: start the cluster first") from error
    if not value:
        raise StackError(f"{path} is empty: remove it and start the cluster again")
    return value
