"""Airflow's components without their log servers, which bind every interface.

``airflow scheduler`` and ``airflow triggerer`` each start a log server (uvicorn, ``host=""``:
every interface, ``[::]`` or ``0.0.0.0``); Airflow 3.3 has no setting for its address. The local
Airflow runs everything on one machine and its api-server reads task logs from the local files,
so ``airflow standalone`` starts its components through a small ``airflow`` script, first on its
PATH, that adds ``--skip-serve-logs`` to those two. ``RTC_AIRFLOW_SERVE_LOGS=true`` starts them as
Airflow does (listening on every interface, ``RTC_AIRFLOW_WORKER_LOG_PORT`` / ``_TRIGGER_LOG_PORT``).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from rtcrypto.config import Settings

SKIP_SERVE_LOGS = "--skip-serve-logs"
COMPONENTS_WITH_LOG_SERVERS = ("scheduler", "triggerer")


def shim_dir(settings: Settings) -> Path:
    """The folder that holds the ``airflow`` script: ``<airflow home>/bin``."""
    return settings.airflow_home_dir / "bin"


def shim_script(airflow_program: Path) -> str:
    """A POSIX shell script that runs ``airflow_program``; the components with a log server get
    ``--skip-serve-logs``."""
    program = shlex.quote(str(airflow_program))
    components = "|".join(COMPONENTS_WITH_LOG_SERVERS)
    return (
        "#!/bin/sh\n"
        "# Written by rtcrypto/stack/airflow_shim.py: Airflow's log servers bind every interface.\n"
        f'case "$1" in {components}) exec {program} "$@" {SKIP_SERVE_LOGS} ;; esac\n'
        f'exec {program} "$@"\n'
    )


def write_shim(settings: Settings, airflow_program: Path) -> Path:
    """Write ``<airflow home>/bin/airflow`` (executable) and return its folder."""
    folder = shim_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "airflow"
    script.write_text(shim_script(airflow_program))
    script.chmod(0o755)
    return folder
