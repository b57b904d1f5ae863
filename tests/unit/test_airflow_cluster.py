"""Pure parts of the cluster's Airflow: commands, environment, configs and secret files.

No password may reach a command line or an environment value: the URLs are read by Airflow's
``_CMD`` options from 0600 files."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from rtcrypto.config import Settings
from rtcrypto.config_cluster import ClusterSettings
from rtcrypto.stack import airflow_cluster as ac
from rtcrypto.stack import cluster_secrets, postgres, redis_server

PROGRAM = Path("/venv/bin/airflow")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "rtc",
        airflow_port=18080,
        cluster=ClusterSettings(
            postgres_port=15433, redis_port=16380, celery_worker_log_ports=[18795, 18796, 18797]
        ),
    )


@pytest.fixture
def passwords(settings: Settings) -> dict[str, str]:
    """Every password generated, and the URL files written, as a start does."""
    postgres.ensure_passwords(settings)
    cluster_secrets.ensure_password(settings, redis_server.REDIS_SECRET)
    ac.write_url_files(settings)
    names = (*postgres.PASSWORD_SECRETS, redis_server.REDIS_SECRET)
    return {name: cluster_secrets.read_secret(settings, name) for name in names}


def test_secret_files_are_0600_in_a_0700_folder_and_generated_once(settings: Settings) -> None:
    path = cluster_secrets.ensure_password(settings, "x.password")
    first = path.read_text()
    assert len(first) == cluster_secrets.PASSWORD_LENGTH and first.isalnum()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert cluster_secrets.ensure_password(settings, "x.password").read_text() == first
    assert cluster_secrets.new_password() != cluster_secrets.new_password()


def test_no_password_in_any_command_line_or_environment_value(
    settings: Settings, passwords: dict[str, str]
) -> None:
    names = ac.process_names(settings)
    assert names[:2] == ["postgres", "redis"] and names[-1] == "airflow-worker-3"
    values: list[str] = []
    for name in (*ac.COMPONENTS, *ac.worker_names(settings)):
        values += ac.component_command(settings, name, PROGRAM)
        values += ac.component_env(settings, name).values()
    values += postgres.as_user(postgres.server_command(settings, Path("/pg/bin")), _user(1))
    for password in passwords.values():
        assert not [value for value in values if password in value]
    # ... while the URL files Airflow reads hold them, 0600
    url_file = cluster_secrets.secret_path(settings, ac.SQL_ALCHEMY_CONN_SECRET)
    assert passwords[postgres.AIRFLOW_SECRET] in url_file.read_text()
    assert stat.S_IMODE(url_file.stat().st_mode) == 0o600


def test_airflow_reads_the_urls_with_cmd_from_the_secret_files(settings: Settings) -> None:
    env = ac.cluster_env(settings)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env
    folder = cluster_secrets.secrets_dir(settings)
    for key, secret in (
        ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD", ac.SQL_ALCHEMY_CONN_SECRET),
        ("AIRFLOW__CELERY__BROKER_URL_CMD", ac.BROKER_URL_SECRET),
        ("AIRFLOW__CELERY__RESULT_BACKEND_CMD", ac.RESULT_BACKEND_SECRET),
    ):
        assert env[key] == f"cat {folder / secret}"
    # the standalone's configuration is kept: DAGs, plugins, admin password file, api port
    assert env["AIRFLOW__CORE__DAGS_FOLDER"].endswith("dags")
    assert env["AIRFLOW__API__PORT"] == "18080"
    assert env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == "300"


def test_urls_name_the_cluster_members(settings: Settings) -> None:
    assert ac.database_url(settings, "pw") == (
        "postgresql+psycopg2://airflow:pw@127.0.0.1:15433/airflow"
    )
    assert ac.broker_url(settings, "pw") == "redis://:pw@127.0.0.1:16380/0"
    assert ac.result_backend_url(settings, "pw") == (
        "db+postgresql+psycopg2://celery:pw@127.0.0.1:15433/celery_results"
    )


def test_each_worker_has_its_hostname_log_port_and_concurrency(settings: Settings) -> None:
    commands = [ac.component_command(settings, name, PROGRAM) for name in ac.worker_names(settings)]
    assert [command[command.index("--celery-hostname") + 1] for command in commands] == [
        "airflow-worker-1@127.0.0.1",
        "airflow-worker-2@127.0.0.1",
        "airflow-worker-3@127.0.0.1",
    ]
    assert all(command[1:3] == ["celery", "worker"] for command in commands)
    assert all(command[command.index("--concurrency") + 1] == "1" for command in commands)
    assert all("--skip-serve-logs" in command for command in commands)  # every interface: off
    ports = [
        ac.component_env(settings, name)["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]
        for name in ac.worker_names(settings)
    ]
    assert ports == ["18795", "18796", "18797"]
    assert ac.component_ports(settings, "airflow-worker-2") == ()
    served = settings.model_copy(update={"airflow_serve_logs": True})
    assert ac.component_ports(served, "airflow-worker-2") == (18796,)
    assert "--skip-serve-logs" not in ac.component_command(served, "airflow-worker-2", PROGRAM)
    with pytest.raises(ValueError, match="unknown Airflow component"):
        ac.component_command(settings, "airflow-worker-9", PROGRAM)


def test_components_commands(settings: Settings) -> None:
    assert ac.component_command(settings, ac.API_SERVER, PROGRAM) == [str(PROGRAM), "api-server"]
    assert ac.component_command(settings, ac.SCHEDULER, PROGRAM) == [
        str(PROGRAM),
        "scheduler",
        "--skip-serve-logs",
    ]
    assert ac.component_command(settings, ac.DAG_PROCESSOR, PROGRAM)[1] == "dag-processor"
    assert ac.component_ports(settings, ac.API_SERVER) == (18080,)


def _user(uid: int) -> postgres.ServerUser:
    return postgres.ServerUser("postgres", uid, uid + 3)


def test_postgres_listens_on_the_host_and_port_only_and_runs_unprivileged_as_root(
    settings: Settings,
) -> None:
    command = postgres.server_command(settings, Path("/pg/bin"))
    assert command[:3] == ["/pg/bin/postgres", "-D", str(settings.home / "postgres-data")]
    assert "listen_addresses=127.0.0.1" in command and "unix_socket_directories=" in command
    assert command[command.index("-p") + 1] == "15433"
    wrapped = postgres.as_user(command, _user(101))
    assert wrapped[:5] == ["setpriv", "--reuid=101", "--regid=104", "--clear-groups", "--"]
    assert wrapped[5:] == command
    assert postgres.as_user(command, postgres.ServerUser("me", None, None)) == command


def test_postgres_bin_dir_picks_the_newest_major(tmp_path: Path) -> None:
    for major in ("13", "15"):
        folder = tmp_path / major / "bin"
        folder.mkdir(parents=True)
        (folder / "initdb").touch()
        (folder / "postgres").touch()
    assert postgres.bin_dir(tmp_path) == tmp_path / "15" / "bin"
    with pytest.raises(Exception, match="apt-get install postgresql"):
        postgres.bin_dir(tmp_path / "none")


def test_redis_config_binds_the_host_with_requirepass_and_no_persistence(
    settings: Settings,
) -> None:
    text = redis_server.redis_config(settings, "s3cret")
    lines = text.splitlines()
    assert "bind 127.0.0.1" in lines and "port 16380" in lines
    assert "requirepass s3cret" in lines and "protected-mode yes" in lines
    assert 'save ""' in lines and "appendonly no" in lines


def test_retry_delay_policy_caps_only_longer_delays(settings: Settings) -> None:
    assert ac.write_policy(settings) is None  # no cap: no policy file
    capped = settings.model_copy(
        update={"cluster": settings.cluster.model_copy(update={"airflow_retry_delay_max_s": 5})}
    )
    path = ac.write_policy(capped)
    assert path is not None and path.name == "airflow_local_settings.py"
    namespace: dict[str, object] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102 (our own file)
    policy = namespace["task_policy"]
    long_task = SimpleNamespace(retry_delay=timedelta(minutes=5))
    short_task = SimpleNamespace(retry_delay=timedelta(seconds=2))
    policy(long_task)  # type: ignore[operator]
    policy(short_task)  # type: ignore[operator]
    assert long_task.retry_delay == timedelta(seconds=5)
    assert short_task.retry_delay == timedelta(seconds=2)
    assert ac.write_policy(settings) is None and not path.exists()  # removed when unset


def test_cluster_airflow_settings_are_bounded() -> None:
    with pytest.raises(ValidationError, match="airflow_task_heartbeat_timeout_s"):
        ClusterSettings(airflow_task_heartbeat_timeout_s=1)
    with pytest.raises(ValidationError, match="postgres_shared_buffers"):
        ClusterSettings(postgres_shared_buffers="32 MB; drop")
    assert ClusterSettings().airflow_retry_delay_max_s is None


def test_restart_loop_starts_an_exited_component_again_and_stops_on_term(tmp_path: Path) -> None:
    counter = tmp_path / "starts"
    command = ["/bin/sh", "-c", f"echo x >> {counter}; exit 3"]
    loop = subprocess.Popen(
        ac.restart_loop(command, 1, "component"),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            not counter.exists() or len(counter.read_text().split()) < 2
        ):
            time.sleep(0.1)
        assert len(counter.read_text().split()) >= 2  # exited with 3, started again
    finally:
        os.killpg(loop.pid, signal.SIGTERM)
        output, _ = loop.communicate(timeout=10)
    assert loop.returncode == 143
    assert f"{ac.RESTART_MARKER} component exited with status 3; starting it again in 1 s" in output


def test_a_restart_counts_only_after_the_last_start_line() -> None:
    script = " ".join(ac.restart_loop(["airflow", "scheduler"], 10))
    started = f"old line\n=== 2026-12-07T23:00:00+00:00 start: {script}\nscheduler up\n"
    assert not ac.restarted_since_start(started)  # the marker in the start line's script
    restarted = f"{started}{ac.RESTART_MARKER} airflow exited with status 1; starting it again\n"
    assert ac.restarted_since_start(restarted)
    assert not ac.restarted_since_start(f"{restarted}\n=== later start: {script}\nup\n")
