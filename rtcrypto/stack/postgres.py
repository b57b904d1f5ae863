"""PostgreSQL for the cluster's Airflow: Debian's server, initialised and run by the stack.

The data directory is ``<home>/postgres-data`` (``initdb`` on the first start); the server
listens on ``settings.cluster.host:postgres_port`` only (no Unix socket) and asks every client for
a SCRAM password. The superuser ``postgres`` and two roles, ``airflow`` (database ``airflow``:
Airflow's metadata) and ``celery`` (database ``celery_results``: the Celery result backend), get
passwords generated at the first start (``rtcrypto.stack.cluster_secrets``, 0600 files). The
managed process is ``postgres``.

PostgreSQL refuses to run as root: when this process is root, ``initdb`` and the server run as
the unprivileged user ``postgres`` (Debian's package creates it), which owns the data directory
and must be able to reach it (every parent folder searchable by others). As a normal user they
run as that user.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

from rtcrypto.config import Settings
from rtcrypto.stack import cluster_secrets, process
from rtcrypto.stack.errors import ServiceStartError, StackError, ToolMissingError

logger = logging.getLogger(__name__)

POSTGRES_PROCESS = "postgres"
SUPERUSER = "postgres"
SUPERUSER_SECRET = "postgres-superuser.password"
AIRFLOW_ROLE = "airflow"
AIRFLOW_DATABASE = "airflow"
AIRFLOW_SECRET = "postgres-airflow.password"
CELERY_ROLE = "celery"
CELERY_DATABASE = "celery_results"
CELERY_SECRET = "postgres-celery.password"
PASSWORD_SECRETS = (SUPERUSER_SECRET, AIRFLOW_SECRET, CELERY_SECRET)
SERVER_USER = "postgres"  # the unprivileged user that runs the server when we are root
DEBIAN_BIN_ROOT = Path("/usr/lib/postgresql")
_PORT_HINT = "set RTC_CLUSTER_POSTGRES_PORT to a free port"
_INSTALL_HINT = "install Debian's server: apt-get install postgresql (or `make cluster-packages`)"


@dataclass(frozen=True)
class ServerUser:
    """Who runs ``initdb`` and the server: ``uid``/``gid`` (None: this process's own user)."""

    name: str
    uid: int | None
    gid: int | None


def data_dir(settings: Settings) -> Path:
    """``<home>/postgres-data``: the cluster's PostgreSQL data directory."""
    return settings.home / "postgres-data"


def bin_dir(root: Path = DEBIAN_BIN_ROOT) -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding ``initdb`` and ``postgres``."""
    candidates = []
    for folder in root.glob("*/bin"):
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            major = re.match(r"\d+", folder.parent.name)
            candidates.append((int(major.group()) if major else 0, folder))
    if not candidates:
        raise ToolMissingError(f"no PostgreSQL server under {root}: {_INSTALL_HINT}")
    return max(candidates)[1]


def server_user() -> ServerUser:
    """``postgres`` when this process is root (PostgreSQL refuses root), else ourselves."""
    if os.geteuid() != 0:
        return ServerUser(pwd.getpwuid(os.geteuid()).pw_name, None, None)
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError as error:
        raise ToolMissingError(
            f"running as root, PostgreSQL needs the unprivileged user {SERVER_USER!r}, which "
            f"does not exist: {_INSTALL_HINT} (it creates the user)"
        ) from error
    return ServerUser(SERVER_USER, entry.pw_uid, entry.pw_gid)


def as_user(command: Sequence[str], user: ServerUser) -> list[str]:
    """``command`` run as ``user`` (``setpriv``, which execs: the pid stays the server's)."""
    if user.uid is None:
        return list(command)
    return [
        "setpriv",
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        "--clear-groups",
        "--",
        *command,
    ]


def server_command(settings: Settings, binaries: Path) -> list[str]:
    """The ``postgres`` server's command line (no secret in it): loopback TCP only, no socket."""
    cluster = settings.cluster
    return [
        str(binaries / "postgres"),
        "-D",
        str(data_dir(settings)),
        "-c",
        f"listen_addresses={cluster.host}",
        "-p",
        str(cluster.postgres_port),
        "-c",
        "unix_socket_directories=",
        "-c",
        f"max_connections={cluster.postgres_max_connections}",
        "-c",
        f"shared_buffers={cluster.postgres_shared_buffers}",
        "-c",
        "password_encryption=scram-sha-256",
    ]


def _ensure_reachable(folder: Path, user: ServerUser) -> None:
    """When the server runs as another user, every parent of ``folder`` must be searchable."""
    if user.uid is None:
        return
    for parent in folder.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            raise StackError(
                f"PostgreSQL runs as the user {user.name!r} (not root), which cannot reach "
                f"{folder}: {parent} is not searchable by others. Set RTC_HOME to a folder "
                f"under searchable parents, or `chmod o+x {parent}`"
            )


def _owned_dir(folder: Path, user: ServerUser) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    if user.uid is not None and user.gid is not None:
        os.chown(folder, user.uid, user.gid)


def initdb(settings: Settings, binaries: Path, user: ServerUser, *, timeout_s: float) -> bool:
    """``initdb`` the data directory unless it holds a cluster; True if it ran."""
    target = data_dir(settings)
    if (target / "PG_VERSION").is_file():
        return False
    _ensure_reachable(target.parent, user)
    if target.exists() and any(target.iterdir()):
        raise StackError(f"{target} is neither empty nor a PostgreSQL data directory: remove it")
    _owned_dir(target, user)
    scratch = settings.home / "postgres-init"
    _owned_dir(scratch, user)
    pwfile = scratch / "superuser"
    try:
        cluster_secrets.write_secret(
            pwfile, cluster_secrets.read_secret(settings, SUPERUSER_SECRET)
        )
        scratch.chmod(0o700)
        if user.uid is not None and user.gid is not None:
            os.chown(pwfile, user.uid, user.gid)
        command = [
            str(binaries / "initdb"),
            "-D",
            str(target),
            f"--username={SUPERUSER}",
            f"--pwfile={pwfile}",
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
        ]
        completed = subprocess.run(
            as_user(command, user), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if completed.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        lines = (completed.stdout + completed.stderr).strip().splitlines()[-6:]
        raise StackError(f"initdb of {target} failed: " + " | ".join(lines))
    return True


def connect(
    settings: Settings, user: str, secret: str, database: str, timeout_s: int = 3
) -> psycopg2.extensions.connection:
    """A psycopg2 connection over TCP; the password is read from its file, never logged."""
    return psycopg2.connect(
        host=settings.cluster.host,
        port=settings.cluster.postgres_port,
        user=user,
        password=cluster_secrets.read_secret(settings, secret),
        dbname=database,
        connect_timeout=timeout_s,
    )


def accepting(settings: Settings, *, as_airflow: bool = False) -> bool:
    """True if the server answers ``SELECT 1`` (as the superuser, or as the ``airflow`` role)."""
    user, secret, database = (
        (AIRFLOW_ROLE, AIRFLOW_SECRET, AIRFLOW_DATABASE)
        if as_airflow
        else (SUPERUSER, SUPERUSER_SECRET, "postgres")
    )
    try:
        connection = connect(settings, user, secret, database)
    except (psycopg2.Error, StackError):
        return False
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except psycopg2.Error:
        return False
    finally:
        connection.close()


def ensure_databases(settings: Settings) -> None:
    """The roles ``airflow`` and ``celery`` and their databases, created when missing."""
    connection = connect(settings, SUPERUSER, SUPERUSER_SECRET, "postgres")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            # a failing statement is logged with its text: keep role passwords out of the log
            cursor.execute("SET log_min_error_statement = 'panic'")
            cursor.execute("SET log_statement = 'none'")
            for role, secret, database in (
                (AIRFLOW_ROLE, AIRFLOW_SECRET, AIRFLOW_DATABASE),
                (CELERY_ROLE, CELERY_SECRET, CELERY_DATABASE),
            ):
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                verb = "ALTER" if cursor.fetchone() else "CREATE"
                password = cluster_secrets.read_secret(settings, secret)
                cursor.execute(
                    sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(role)),
                    (password,),
                )
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if not cursor.fetchone():
                    cursor.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(database), sql.Identifier(role)
                        )
                    )
    finally:
        connection.close()


def ensure_passwords(settings: Settings) -> None:
    """The superuser's, ``airflow``'s and ``celery``'s password files (generated once)."""
    for name in PASSWORD_SECRETS:
        cluster_secrets.ensure_password(settings, name)


def start_postgres(settings: Settings, *, timeout_s: float = 60.0) -> float:
    """Start the server unless it runs (initdb first), create the roles and databases; return
    the seconds until it accepted the superuser. Raises :class:`StackError` subclasses."""
    with process.exclusive_lock(POSTGRES_PROCESS, settings):
        started = time.monotonic()
        ensure_passwords(settings)
        if not process.is_running(POSTGRES_PROCESS, settings):
            binaries = bin_dir()
            user = server_user()
            initdb(settings, binaries, user, timeout_s=timeout_s)
            process.start_process(
                POSTGRES_PROCESS,
                as_user(server_command(settings, binaries), user),
                ports=(settings.cluster.postgres_port,),
                host=settings.cluster.host,
                port_hint=_PORT_HINT,
                settings=settings,
            )
        try:
            process.wait_until_healthy(
                POSTGRES_PROCESS,
                lambda: accepting(settings),
                service="PostgreSQL",
                target=f"{settings.cluster.host}:{settings.cluster.postgres_port}",
                logs=[process.log_path(POSTGRES_PROCESS, settings)],
                timeout_s=timeout_s,
                settings=settings,
                poll_s=0.3,
            )
        except ServiceStartError:
            stop_postgres(settings)
            raise
        ensure_databases(settings)
        return time.monotonic() - started


def stop_postgres(settings: Settings, *, timeout_s: float = 30.0) -> bool:
    """Fast shutdown (SIGINT: clients disconnected, no wait for them), then the process
    manager's stop (TERM, KILL); True if it ran. SIGTERM alone would wait for every client."""
    pid = process.read_pid(POSTGRES_PROCESS, settings)
    ran = pid is not None and process.is_running(POSTGRES_PROCESS, settings)
    if pid is not None and ran:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        while process.pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    process.stop_process(POSTGRES_PROCESS, timeout_s=5.0, settings=settings)
    return ran


def postgres_status(settings: Settings) -> str:
    """One line for ``rtc status``: running or not, accepting the ``airflow`` role or not."""
    status = process.process_status(POSTGRES_PROCESS, settings)
    where = f"{settings.cluster.host}:{settings.cluster.postgres_port}"
    if not status.running:
        return f"postgres: not running ({where})"
    state = "accepting" if accepting(settings, as_airflow=True) else "NOT accepting"
    return f"postgres: running pid {status.pid} on {where}, {state} connections of {AIRFLOW_ROLE!r}"
