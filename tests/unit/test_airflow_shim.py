"""Airflow's log servers (which bind every interface) are off in the local Airflow unless
RTC_AIRFLOW_SERVE_LOGS says otherwise (issue 10, exposure)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from rtcrypto.config import Settings
from rtcrypto.stack import airflow, airflow_shim


def _fake_airflow(tmp_path: Path) -> Path:
    program = tmp_path / "real bin" / "airflow"
    program.parent.mkdir()
    program.write_text('#!/bin/sh\necho "$@"\n')
    program.chmod(0o755)
    return program


def test_the_shim_adds_skip_serve_logs_to_the_components_with_a_log_server(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path / "rtc")
    folder = airflow_shim.write_shim(settings, _fake_airflow(tmp_path))
    env = {**os.environ, "PATH": airflow.airflow_env(settings)["PATH"]}

    def run(*args: str) -> str:
        done = subprocess.run(["airflow", *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert env["PATH"].split(os.pathsep)[0] == str(folder)
    assert run("scheduler") == "scheduler --skip-serve-logs"
    assert run("triggerer", "--capacity", "5") == "triggerer --capacity 5 --skip-serve-logs"
    assert run("api-server", "--port", "1") == "api-server --port 1"
    assert run("dag-processor") == "dag-processor"
    assert airflow.airflow_ports(settings) == (settings.airflow_port,)


def test_serve_logs_setting_keeps_airflows_own_components(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "rtc", airflow_serve_logs=True)
    path = airflow.airflow_env(settings)["PATH"].split(os.pathsep)
    assert str(airflow_shim.shim_dir(settings)) not in path
    assert airflow.airflow_ports(settings) == (
        settings.airflow_port,
        settings.airflow_worker_log_port,
        settings.airflow_trigger_log_port,
    )
