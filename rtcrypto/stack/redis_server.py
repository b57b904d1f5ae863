"""Redis for the cluster's Airflow: Debian's ``redis-server``, the Celery broker.

It listens on ``settings.cluster.host:redis_port`` only, with ``requirepass`` set to a password
generated at the first start (``rtcrypto.stack.cluster_secrets``). Its configuration file
``<run dir>/redis.conf`` holds that password, so it is written mode 0600 and passed by path: the
password is never on the command line. The managed process is ``redis``.

Persistence is off (no RDB snapshots, no AOF): Redis holds only Celery's queued messages, and
Airflow's metadata database is the record of every task. A Redis that restarts empty loses the
messages of tasks queued but not started; the scheduler re-queues those after
``[scheduler] task_queued_timeout``. AOF would fsync every message on a 2-core machine for
nothing the database does not already keep.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import redis

from rtcrypto.config import Settings
from rtcrypto.stack import cluster_secrets, process
from rtcrypto.stack.errors import ServiceStartError, ToolMissingError

REDIS_PROCESS = "redis"
REDIS_SECRET = "redis.password"
REDIS_BIN = Path("/usr/bin/redis-server")
_PORT_HINT = "set RTC_CLUSTER_REDIS_PORT to a free port"


def config_path(settings: Settings) -> Path:
    """``<run dir>/redis.conf`` (mode 0600: it holds ``requirepass``)."""
    return settings.run_dir / "redis.conf"


def redis_config(settings: Settings, password: str) -> str:
    """The server's configuration (holds the password: write it 0600 only)."""
    cluster = settings.cluster
    work_dir = settings.run_dir / "redis-data"
    return "\n".join(
        [
            f"bind {cluster.host}",
            f"port {cluster.redis_port}",
            "protected-mode yes",
            "daemonize no",
            'logfile ""',
            f'dir "{work_dir}"',
            'save ""',
            "appendonly no",
            "maxmemory 256mb",
            "maxmemory-policy noeviction",
            f"requirepass {password}",
            "",
        ]
    )


def redis_bin() -> Path:
    """Debian's ``redis-server`` (or the first on PATH)."""
    found = REDIS_BIN if REDIS_BIN.is_file() else shutil.which("redis-server")
    if not found:
        raise ToolMissingError(
            "no redis-server: apt-get install redis-server (or `make cluster-packages`)"
        )
    return Path(found)


def client(settings: Settings, timeout_s: float = 2.0) -> redis.Redis:
    """A client with the password read from its file (never logged)."""
    return redis.Redis(
        host=settings.cluster.host,
        port=settings.cluster.redis_port,
        password=cluster_secrets.read_secret(settings, REDIS_SECRET),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )


def ping(settings: Settings) -> bool:
    """True if Redis answers an authenticated PING."""
    try:
        with client(settings) as connection:
            return bool(connection.ping())
    except (redis.RedisError, OSError):
        return False


def start_redis(settings: Settings, *, timeout_s: float = 30.0) -> float:
    """Start ``redis-server`` unless it runs; return the seconds until it answered PING."""
    with process.exclusive_lock(REDIS_PROCESS, settings):
        started = time.monotonic()
        password_file = cluster_secrets.ensure_password(settings, REDIS_SECRET)
        if not process.is_running(REDIS_PROCESS, settings):
            program = redis_bin()
            (settings.run_dir / "redis-data").mkdir(parents=True, exist_ok=True)
            password = password_file.read_text().strip()
            conf = cluster_secrets.write_secret(
                config_path(settings), redis_config(settings, password)
            )
            process.start_process(
                REDIS_PROCESS,
                [str(program), str(conf)],
                ports=(settings.cluster.redis_port,),
                host=settings.cluster.host,
                port_hint=_PORT_HINT,
                settings=settings,
            )
        try:
            process.wait_until_healthy(
                REDIS_PROCESS,
                lambda: ping(settings),
                service="Redis",
                target=f"{settings.cluster.host}:{settings.cluster.redis_port}",
                logs=[process.log_path(REDIS_PROCESS, settings)],
                timeout_s=timeout_s,
                settings=settings,
                poll_s=0.2,
            )
        except ServiceStartError:
            process.stop_process(REDIS_PROCESS, settings=settings)
            raise
        return time.monotonic() - started


def redis_status(settings: Settings) -> str:
    """One line for ``rtc status``: running or not, answering PING or not."""
    status = process.process_status(REDIS_PROCESS, settings)
    where = f"{settings.cluster.host}:{settings.cluster.redis_port}"
    if not status.running:
        return f"redis: not running ({where})"
    state = "answers PING" if ping(settings) else "does NOT answer PING"
    return f"redis: running pid {status.pid} on {where}, {state}"
