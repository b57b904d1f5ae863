"""``python -m rtcrypto.supervision.healthcheck NAME``: the health check of one docker-compose container.

In docker-compose each service is its container's main process, so there are no pid files for
the process manager to read. Docker runs this check inside the container, and a running
container means its main process is alive (the container stops when it exits). What is left to
check is whether the process works:

- ``ingest``, ``liquidity``, ``trader``: the supervisor's own judgement
  (:func:`rtcrypto.supervision.health.judge_health`) of the service's newest heartbeat on
  ``service.heartbeat.v1``: stale after ``supervisor_stale_heartbeats`` x
  ``heartbeat_interval_s`` seconds, with ``supervisor_startup_grace_s`` after the container
  started (pid 1's start time: the main process, or Docker's init in front of it). Lag is not
  judged here: a lagging service still works (``rtc status`` and the supervisor report it).
- ``simulator``: ``GET /_sim/status`` answers 200.
- ``airflow``: ``GET /api/v2/monitor/health`` answers 200 and says the scheduler is healthy.

Exit status 0 when healthy, 1 when not, 2 for an unknown name; one line on stdout says why
(Docker keeps it in ``docker inspect``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rtcrypto.config import Settings, get_settings
from rtcrypto.supervision.health import (
    HealthState,
    Observation,
    health_policy,
    heartbeat_age_since_start,
    judge_health,
    read_latest_heartbeats,
)
from rtcrypto.supervision.registry import SIMULATOR, ServiceSpec, get_service, service_names

AIRFLOW = "airflow"
SIMULATOR_STATUS_PATH = "/_sim/status"
HTTP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one health check: healthy or not, and why (one line)."""

    name: str
    healthy: bool
    reason: str

    def line(self) -> str:
        return f"{self.name}: {'healthy' if self.healthy else 'unhealthy'} ({self.reason})"


# --- pid 1's start time (Linux /proc) ------------------------------------------------------------


def started_at_from_proc(stat_text: str, proc_stat_text: str, ticks_per_s: int) -> float | None:
    """Unix time in seconds at which a process started, from ``/proc/<pid>/stat`` and ``/proc/stat``.

    ``stat_text``'s 22nd field is the start in clock ticks after boot; ``/proc/stat``'s ``btime``
    line is the boot time. None if either is missing or malformed.
    """
    # The command name is in parentheses and may itself hold spaces or parentheses.
    fields = stat_text[stat_text.rfind(")") + 2 :].split()
    boot_s = next(
        (line.split()[1] for line in proc_stat_text.splitlines() if line.startswith("btime ")),
        None,
    )
    if len(fields) <= 19 or boot_s is None or ticks_per_s <= 0:
        return None
    try:
        return int(boot_s) + int(fields[19]) / ticks_per_s
    except ValueError:
        return None


def process_started_at_s(pid: int = 1) -> float | None:
    """Unix time in seconds at which ``pid`` started; None where ``/proc`` cannot tell."""
    try:
        stat_text = Path(f"/proc/{pid}/stat").read_text()
        proc_stat_text = Path("/proc/stat").read_text()
    except OSError:
        return None
    return started_at_from_proc(stat_text, proc_stat_text, os.sysconf("SC_CLK_TCK"))


# --- the checks ----------------------------------------------------------------------------------


def heartbeat_result(
    spec: ServiceSpec,
    settings: Settings,
    heartbeats: Mapping[str, dict[str, Any]] | None,
    started_at_s: float | None,
    now_ms: int,
) -> CheckResult:
    """The supervisor's verdict on ``spec`` from its newest heartbeat, lag left out (pure).

    ``heartbeats`` None means Kafka did not answer (unhealthy: nothing shows the service works).
    """
    beat = heartbeats.get(spec.heartbeat_service or "") if heartbeats else None
    uptime_s = None if started_at_s is None else max(0.0, now_ms / 1000 - started_at_s)
    observation = Observation(
        service=spec.name,
        expected=True,
        alive=True,  # the check runs inside the running container
        uptime_s=uptime_s,
        heartbeat_readable=heartbeats is not None,
        heartbeat_age_s=heartbeat_age_since_start(beat, started_at_s, now_ms),
    )
    policy = replace(health_policy(spec, settings), max_lag_records=None, max_lag_s=None)
    verdict = judge_health(observation, policy)
    return CheckResult(spec.name, verdict.state is HealthState.healthy, verdict.reason)


def http_get(url: str, timeout_s: float = HTTP_TIMEOUT_S) -> tuple[int | None, bytes]:
    """``(status, body)`` of ``GET url``; status None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, b""
    except OSError:
        return None, b""


def simulator_result(settings: Settings) -> CheckResult:
    """Healthy when the simulator's ``/_sim/status`` answers 200 on this container's port."""
    url = f"http://127.0.0.1:{settings.simulator_port}{SIMULATOR_STATUS_PATH}"
    status, _ = http_get(url)
    if status == 200:
        return CheckResult(SIMULATOR, True, f"{url} answers 200")
    return CheckResult(SIMULATOR, False, f"{url} answers {status or 'nothing'}")


def airflow_result(settings: Settings) -> CheckResult:
    """Healthy when the api-server answers its health endpoint and the scheduler is healthy."""
    from rtcrypto.stack.airflow import HEALTH_PATH, component_states, health

    url = f"{settings.airflow_url}{HEALTH_PATH}"
    document = health(settings.airflow_url, timeout_s=HTTP_TIMEOUT_S)
    if document is None:
        return CheckResult(AIRFLOW, False, f"{url} does not answer 200")
    states = component_states(document)
    summary = ", ".join(f"{name} {state}" for name, state in sorted(states.items()))
    return CheckResult(AIRFLOW, states.get("scheduler") == "healthy", summary or "no components")


def check(name: str, settings: Settings, *, main_pid: int = 1) -> CheckResult:
    """The health check of the container that runs ``name`` (a registry service or airflow)."""
    if name == AIRFLOW:
        return airflow_result(settings)
    if name == SIMULATOR:
        return simulator_result(settings)
    spec = get_service(name, settings)
    return heartbeat_result(
        spec,
        settings,
        read_latest_heartbeats(settings),
        process_started_at_s(main_pid),
        time.time_ns() // 1_000_000,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one check, print its line, return the exit status (0 healthy, 1 not, 2 unknown name)."""
    known = [*service_names(), AIRFLOW]
    parser = argparse.ArgumentParser(
        prog="python -m rtcrypto.supervision.healthcheck", description=__doc__
    )
    parser.add_argument("name", help=f"one of: {', '.join(known)}")
    parser.add_argument(
        "--main-pid", type=int, default=1, help="process whose start begins the start-up grace"
    )
    args = parser.parse_args(argv)
    if args.name not in known:
        print(f"unknown service {args.name!r}: known are {', '.join(known)}")
        return 2
    result = check(args.name, get_settings(), main_pid=args.main_pid)
    print(result.line())
    return 0 if result.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
