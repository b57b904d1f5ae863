"""The docker-compose containers' health check (rtcrypto/supervision/healthcheck.py), without Docker.

The verdicts are the supervisor's (pure); the HTTP checks run against real local HTTP servers
that answer as the simulator's and Airflow's endpoints do. The Kafka-reading path is in
tests/integration/test_healthcheck.py.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rtcrypto.config import Settings, get_settings
from rtcrypto.supervision import get_service, healthcheck

NOW_MS = 1_800_000_000_000
STARTED_S = NOW_MS / 1000 - 600  # the container started 10 minutes ago
Endpoint = tuple[int, dict[str, tuple[int, object]]]  # (port, routes: path -> (status, body))


def test_start_time_comes_from_proc_stat_and_boot_time() -> None:
    # Field 22 (start ticks) follows a command name that holds spaces and parentheses.
    fields = ["S"] + ["0"] * 18 + ["12345"] + ["0"] * 10
    stat_text = "42 (python (x) y) " + " ".join(fields)
    proc_stat = "cpu  1 2 3\nbtime 1700000000\nprocesses 99\n"
    assert healthcheck.started_at_from_proc(stat_text, proc_stat, 100) == 1_700_000_123.45
    assert healthcheck.started_at_from_proc(stat_text, "cpu 1 2\n", 100) is None
    assert healthcheck.started_at_from_proc("42 (short) S 1 2", proc_stat, 100) is None


def test_start_time_of_this_process_is_in_the_past() -> None:
    started = healthcheck.process_started_at_s(os.getpid())
    assert started is not None and time.time() - 24 * 3600 < started <= time.time()
    init = healthcheck.process_started_at_s(1)
    assert init is not None and init <= started
    assert healthcheck.process_started_at_s(2**22 + 7) is None  # no such process


@pytest.mark.parametrize(
    ("beat_age_s", "healthy", "reason"),
    [
        (2.0, True, "heartbeat fresh"),
        (60.0, False, "last heartbeat 60 s ago (stale after 15 s)"),
    ],
)
def test_a_heartbeat_is_judged_as_the_supervisor_does(
    beat_age_s: float, healthy: bool, reason: str
) -> None:
    settings = Settings()  # heartbeats every 5 s, stale after 3 of them
    beat = {"service": "ingest", "ts_ms": NOW_MS - int(beat_age_s * 1000), "lag_ms": 10**9}
    result = healthcheck.heartbeat_result(
        get_service("ingest"), settings, {"ingest": beat}, STARTED_S, NOW_MS
    )
    # A lag of 11 days would make the supervisor say "lagging": the container still works.
    assert (result.healthy, result.reason) == (healthy, reason)


def test_the_spark_job_is_found_under_its_heartbeat_name() -> None:
    beat = {"service": "spark-liquidity", "ts_ms": NOW_MS - 1000}
    spec = get_service("liquidity")
    fresh = healthcheck.heartbeat_result(
        spec, Settings(), {"spark-liquidity": beat}, STARTED_S, NOW_MS
    )
    other = healthcheck.heartbeat_result(spec, Settings(), {"liquidity": beat}, STARTED_S, NOW_MS)
    assert fresh.healthy and not other.healthy


def test_without_a_heartbeat_since_start_it_is_healthy_only_during_the_grace() -> None:
    settings = Settings(supervisor_startup_grace_s=90)
    spec = get_service("trader")
    predecessor = {"trader": {"service": "trader", "ts_ms": NOW_MS - 30_000}}
    starting = healthcheck.heartbeat_result(spec, settings, predecessor, NOW_MS / 1000 - 20, NOW_MS)
    assert starting.healthy and starting.reason.startswith("starting: no heartbeat yet, 20 s")
    stuck = healthcheck.heartbeat_result(spec, settings, predecessor, NOW_MS / 1000 - 120, NOW_MS)
    assert not stuck.healthy and stuck.reason == "last heartbeat 30 s ago (stale after 15 s)"
    silent = healthcheck.heartbeat_result(spec, settings, {}, NOW_MS / 1000 - 120, NOW_MS)
    assert not silent.healthy and silent.reason == "no heartbeat in 120 s since start"


def test_unreadable_heartbeats_are_unhealthy() -> None:
    result = healthcheck.heartbeat_result(
        get_service("ingest"), Settings(), None, STARTED_S, NOW_MS
    )
    assert not result.healthy and "unreadable" in result.reason
    assert result.line().startswith("ingest: unhealthy (")


# --- HTTP checks against real local servers ------------------------------------------------------


class _Endpoint(BaseHTTPRequestHandler):
    """Answers ``routes[path]`` as (status, JSON body); 404 for anything else."""

    routes: dict[str, tuple[int, object]] = {}

    def do_GET(self) -> None:
        status, body = self.routes.get(self.path, (404, {"detail": "not found"}))
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # keep pytest's output clean
        pass


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    """``(port, routes)`` of a real HTTP server on 127.0.0.1; edit ``routes`` to change answers."""
    routes: dict[str, tuple[int, object]] = {}
    handler = type("Handler", (_Endpoint,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], routes
    finally:
        server.shutdown()
        server.server_close()


def test_the_simulator_is_healthy_while_its_status_answers(endpoint: Endpoint) -> None:
    port, routes = endpoint
    settings = Settings(simulator_port=port)
    assert not healthcheck.simulator_result(settings).healthy  # 404
    routes["/_sim/status"] = (200, {"shift_ms": 0})
    result = healthcheck.simulator_result(settings)
    assert result.healthy and result.reason == f"http://127.0.0.1:{port}/_sim/status answers 200"


def test_a_simulator_that_does_not_answer_is_unhealthy() -> None:
    from tests.helpers import free_port

    result = healthcheck.simulator_result(Settings(simulator_port=free_port()))
    assert not result.healthy and result.reason.endswith("answers nothing")


def test_airflow_is_healthy_only_with_a_healthy_scheduler(endpoint: Endpoint) -> None:
    port, routes = endpoint
    settings = Settings(airflow_port=port)
    path = "/api/v2/monitor/health"
    routes[path] = (
        200,
        {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "unhealthy"}},
    )
    stalled = healthcheck.airflow_result(settings)
    assert not stalled.healthy and stalled.reason == "metadatabase healthy, scheduler unhealthy"
    routes[path] = (
        200,
        {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"}},
    )
    assert healthcheck.airflow_result(settings).healthy
    routes[path] = (503, {"detail": "starting"})
    assert not healthcheck.airflow_result(settings).healthy


def test_main_exits_0_healthy_1_unhealthy_2_unknown(
    endpoint: Endpoint,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port, routes = endpoint
    monkeypatch.setenv("RTC_SIMULATOR_PORT", str(port))
    get_settings.cache_clear()
    try:
        assert healthcheck.main(["simulator"]) == 1
        routes["/_sim/status"] = (200, {})
        assert healthcheck.main(["simulator"]) == 0
        assert healthcheck.main(["exchange"]) == 2
    finally:
        get_settings.cache_clear()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("simulator: unhealthy (") and lines[1].startswith(
        "simulator: healthy ("
    )
    assert lines[2] == (
        "unknown service 'exchange': known are simulator, ingest, liquidity, trader, bars, airflow"
    )
