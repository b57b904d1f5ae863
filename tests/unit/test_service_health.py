"""The streaming services' registry, the pure health judge, lag arithmetic and the restart journal."""

from __future__ import annotations

import ast
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from rtcrypto import supervision as services
from rtcrypto.config import Settings, Topics
from rtcrypto.stack import process
from rtcrypto.supervision import (
    HealthPolicy,
    HealthState,
    Launch,
    Observation,
    RestartBackend,
    judge_health,
)
from tests.helpers import REPO, free_port

POLICY = HealthPolicy(
    expects_heartbeat=True,
    stale_after_s=15.0,
    startup_grace_s=90.0,
    max_lag_records=1_000,
    max_lag_s=None,
)


def _observe(**overrides: object) -> Observation:
    values: dict[str, object] = {
        "service": "ingest",
        "expected": True,
        "alive": True,
        "pid": 4242,
        "uptime_s": 600.0,
        "heartbeat_age_s": 2.0,
        "lag_records": 10,
        "lag_s": 0.5,
    }
    values.update(overrides)
    return Observation(**values)  # type: ignore[arg-type]


# --- the judge ---------------------------------------------------------------------------------


def test_alive_with_a_fresh_heartbeat_is_healthy() -> None:
    health = judge_health(_observe(), POLICY)
    assert health.state is HealthState.healthy
    assert not health.needs_restart
    assert (health.pid, health.heartbeat_age_s, health.lag_records) == (4242, 2.0, 10)


def test_pid_file_without_a_process_is_dead_and_needs_a_restart() -> None:
    health = judge_health(_observe(alive=False, heartbeat_age_s=None), POLICY)
    assert health.state is HealthState.dead
    assert health.needs_restart
    assert "4242" in health.reason


def test_a_heartbeat_older_than_the_threshold_is_stale() -> None:
    health = judge_health(_observe(heartbeat_age_s=15.5), POLICY)
    assert health.state is HealthState.stale
    assert health.needs_restart
    assert "16 s ago" in health.reason and "15 s" in health.reason
    assert judge_health(_observe(heartbeat_age_s=15.0), POLICY).state is HealthState.healthy


def test_no_heartbeat_is_fine_during_the_start_up_grace_then_stale() -> None:
    starting = judge_health(_observe(heartbeat_age_s=None, uptime_s=30.0), POLICY)
    assert starting.state is HealthState.healthy and starting.reason.startswith("starting")
    silent = judge_health(_observe(heartbeat_age_s=None, uptime_s=91.0), POLICY)
    assert silent.state is HealthState.stale and "no heartbeat" in silent.reason


def test_too_many_records_behind_is_lagging_but_not_restarted() -> None:
    health = judge_health(_observe(lag_records=1_001), POLICY)
    assert health.state is HealthState.lagging
    assert not health.needs_restart
    assert "1,001" in health.reason


def test_event_time_lag_counts_only_where_the_policy_judges_it() -> None:
    by_seconds = HealthPolicy(True, 15.0, 90.0, max_lag_records=None, max_lag_s=120.0)
    assert judge_health(_observe(lag_s=121.0), by_seconds).state is HealthState.lagging
    # The same lag under a records-based policy (the Spark job's) is healthy.
    assert judge_health(_observe(lag_s=121.0), POLICY).state is HealthState.healthy


def test_not_started_is_stopped_and_never_restarted() -> None:
    health = judge_health(_observe(expected=False, alive=False, pid=None), POLICY)
    assert health.state is HealthState.stopped
    assert not health.needs_restart


def test_unreadable_heartbeats_are_unknown_not_stale() -> None:
    health = judge_health(_observe(heartbeat_readable=False, heartbeat_age_s=None), POLICY)
    assert health.state is HealthState.unknown
    assert not health.needs_restart  # a Kafka outage must not restart every service
    # A process that is gone is dead whatever Kafka does.
    gone = judge_health(_observe(alive=False, heartbeat_readable=False), POLICY)
    assert gone.state is HealthState.dead


def test_a_service_without_heartbeats_is_judged_by_its_process() -> None:
    policy = HealthPolicy(False, 15.0, 90.0)
    assert judge_health(_observe(heartbeat_age_s=None), policy).state is HealthState.healthy


def test_a_heartbeat_older_than_the_process_belongs_to_its_predecessor() -> None:
    started_at_s = 1_000.0
    beat = {"service": "ingest", "ts_ms": 999_000}
    assert services.heartbeat_age_since_start(beat, started_at_s, now_ms=1_010_000) is None
    beat_after = {"service": "ingest", "ts_ms": 1_004_000}
    assert services.heartbeat_age_since_start(beat_after, started_at_s, 1_010_000) == 6.0
    assert services.heartbeat_age_since_start(None, started_at_s, 1_010_000) is None


def test_health_round_trips_through_a_dict_for_xcom() -> None:
    health = judge_health(_observe(alive=False), POLICY)
    assert services.ServiceHealth.from_dict(json.loads(json.dumps(health.as_dict()))) == health


def test_policy_from_settings_stale_after_three_intervals() -> None:
    settings = Settings(heartbeat_interval_s=2.0)
    ingest = services.health_policy(services.get_service("ingest"), settings)
    assert ingest.stale_after_s == 6.0
    assert ingest.max_lag_s == settings.supervisor_max_lag_s and ingest.max_lag_records is None
    spark = services.health_policy(services.get_service("liquidity"), settings)
    assert spark.max_lag_records == settings.supervisor_max_lag_records and spark.max_lag_s is None
    simulator = services.health_policy(services.get_service("simulator"), settings)
    assert not simulator.expects_heartbeat


# --- lag ---------------------------------------------------------------------------------------


def test_offset_lag_sums_partitions_and_is_unknown_without_any_commit() -> None:
    assert services.offset_lag({0: 100, 1: 50}, {0: 90, 1: 50}) == 10
    assert services.offset_lag({0: 100, 1: 50}, {0: 90, 1: None}) == 60  # conservative
    assert services.offset_lag({0: 100}, {0: None}) is None
    assert services.offset_lag({0: 100}, {}) is None
    assert services.offset_lag({0: 5}, {0: 7}) == 0  # never negative


# The format Spark 4.2 writes (a file of a real checkpoint of this job, conf shortened).
SPARK_OFFSETS_FILE = (
    "v1\n"
    '{"batchWatermarkMs":1624497590739,"batchTimestampMs":1795817384005,'
    '"conf":{"spark.sql.shuffle.partitions":"2"}}\n'
    '{"gemini.orderbook.v1":{"0":1734,"1":12}}'
)


def test_checkpoint_offsets_are_read_from_the_newest_batch_file(tmp_path: Path) -> None:
    assert services.parse_checkpoint_offsets(SPARK_OFFSETS_FILE, "gemini.orderbook.v1") == {
        0: 1734,
        1: 12,
    }
    assert services.parse_checkpoint_offsets(SPARK_OFFSETS_FILE, "other") is None
    offsets = tmp_path / "offsets"
    offsets.mkdir()
    assert services.latest_checkpoint_offsets(offsets, "gemini.orderbook.v1") is None
    (offsets / "9").write_text(SPARK_OFFSETS_FILE.replace("1734", "9"))
    (offsets / "10").write_text(SPARK_OFFSETS_FILE)  # numerically newest, not by name
    (offsets / ".10.crc").write_text("x")
    assert services.latest_checkpoint_offsets(offsets, "gemini.orderbook.v1") == {0: 1734, 1: 12}
    assert services.latest_checkpoint_offsets(tmp_path / "missing", "t") is None


# --- the registry --------------------------------------------------------------------------------


def test_registry_names_heartbeats_and_start_order() -> None:
    assert services.service_names() == ["simulator", "ingest", "liquidity", "trader", "bars"]
    heartbeat_names = {spec.name: spec.heartbeat_service for spec in services.SERVICES}
    assert heartbeat_names == {
        "simulator": None,
        "ingest": "ingest",
        "liquidity": "spark-liquidity",
        "trader": "trader",
        "bars": "spark-bars",
    }


def test_bars_entry_is_the_bars_job_judged_by_its_checkpoint_on_the_trades_topic() -> None:
    from rtcrypto.feedbars import options

    settings = Settings()
    bars = services.get_service("bars")
    assert bars.heartbeat_service == options.HEARTBEAT_SERVICE
    assert bars.lag_source is services.LagSource.checkpoint
    assert bars.input_topic is not None and bars.input_topic(settings) == settings.topics.trades
    assert bars.checkpoint_offsets_dir is not None
    assert bars.checkpoint_offsets_dir(settings) == (
        settings.run_dir / "checkpoints" / "bars" / "bars" / "offsets"
    )
    job = options.BarsJobOptions.from_settings(settings)
    assert options.parse_args(job.to_args()) == job  # the command line round-trips
    assert (job.feed_source, job.trigger, job.master) == ("gemini-feed", "10 seconds", "local[1]")
    command = options.submit_command(job, [Path("/jars/a.jar")], spark_submit=Path("/s/submit"))
    script = command.index(str(REPO / "spark_jobs" / "bars.py"))
    assert command[:script][:9] == [
        "/s/submit",
        "--master",
        "local[1]",
        "--driver-memory",
        "512m",
        "--name",
        "bars",
        "--jars",
        "/jars/a.jar",
    ]
    assert options.parse_args(command[script + 1 :]) == job


def test_spark_heartbeat_name_is_the_jobs_own() -> None:
    tree = ast.parse((REPO / "spark_jobs" / "liquidity.py").read_text())
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert constants["SERVICE"] == services.get_service("liquidity").heartbeat_service


def test_trader_entry_consumes_liquidity_in_its_own_group() -> None:
    settings = Settings()
    trader = services.get_service("trader")
    assert trader.build_command(settings).command[1:] == ("-m", "streaming.trader")
    assert trader.lag_source is services.LagSource.consumer_group
    assert trader.input_topic is not None and trader.consumer_group is not None
    assert trader.input_topic(settings) == settings.topics.liquidity
    assert trader.consumer_group(settings) == settings.trader_consumer_group


def test_liquidity_lag_comes_from_its_checkpoint(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    spark = services.get_service("liquidity")
    assert spark.checkpoint_offsets_dir is not None
    assert spark.checkpoint_offsets_dir(settings) == (
        settings.run_dir / "checkpoints" / "liquidity" / "liquidity" / "offsets"
    )


def test_simulator_only_with_the_offline_feed() -> None:
    simulator = services.get_service("simulator")
    assert simulator.enabled(Settings(feed="simulator"))
    assert not simulator.enabled(Settings(feed="live"))
    assert "simulator" not in [
        spec.name for spec in services.enabled_services(Settings(feed="live"))
    ]


def test_select_services_keeps_start_order_and_rejects_unknown_names() -> None:
    settings = Settings(feed="simulator")
    assert services.select_services(["ingest", "simulator"], settings) == ["simulator", "ingest"]
    assert services.select_services([], settings)[:3] == ["simulator", "ingest", "liquidity"]
    with pytest.raises(services.UnknownServiceError, match="known are simulator, ingest"):
        services.select_services(["ingset"], settings)


def test_settings_env_reproduces_the_settings_in_a_child_and_leaves_secrets_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        home=tmp_path,
        symbols=["BTCUSD", "ETHUSD"],
        heartbeat_interval_s=1.5,
        kafka_bootstrap="127.0.0.1:19092",
        topics=Topics(orderbook="test.orderbook"),
        kibana_password=SecretStr("do-not-write-me"),
    )
    env = services.settings_env(settings)
    assert "do-not-write-me" not in json.dumps(env)
    assert "RTC_KIBANA_PASSWORD" not in env
    for name in list(os.environ):
        if name.startswith("RTC_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    child = Settings()
    assert child.model_dump(exclude={"kibana_password"}) == settings.model_dump(
        exclude={"kibana_password"}
    )


# --- start, restart, journal (real processes, no services) ----------------------------------------


def _sleeper() -> Launch:
    """A harmless stand-in command under a registry name (the process manager does not care)."""
    return Launch(command=(sys.executable, "-c", "import time; time.sleep(120)"))


@pytest.fixture
def isolated(tmp_path: Path) -> Settings:
    # Elasticsearch on a closed port: indexing must fail soft.
    return Settings(home=tmp_path / "rtc", search_url=f"http://127.0.0.1:{free_port()}")


def test_restart_of_a_killed_process_records_it_in_the_journal(
    isolated: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    spec = services.get_service("ingest")
    first = services.start_service(spec, isolated, launch=_sleeper())
    try:
        os.killpg(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process.is_running("ingest", isolated) and time.monotonic() < deadline:
            time.sleep(0.05)
        health = services.check_health(spec, isolated, read_heartbeats=False)
        assert health.state is HealthState.dead
        with caplog.at_level(logging.WARNING, logger="rtcrypto.supervision.restarts"):
            record = services.restart_service(
                "ingest", health.state.value, isolated, launch=_sleeper()
            )
        assert record.old_pid == first and record.new_pid not in (None, first)
        assert process.is_running("ingest", isolated)
        assert process.read_pid("ingest", isolated) == record.new_pid
        assert (record.reason, record.count, record.backend) == ("dead", 1, "local")
        assert any("restarted service=ingest reason=dead" in line for line in caplog.messages)
        assert any("not indexed in rtc-restarts" in line for line in caplog.messages)
        # Elasticsearch was down: the document waits in the spool for the next restart's writer.
        spooled = list((isolated.search_spool_path / "restarts").glob("spool-*.jsonl"))
        assert spooled and record.document_id in spooled[0].read_text()
        lines = services.journal_path(isolated).read_text().splitlines()
        assert len(lines) == 1
        entry = json.loads(lines[0])
        assert entry["service"] == "ingest" and entry["old_pid"] == first
        assert entry["new_pid"] == record.new_pid and entry["ts"].endswith("+00:00")
    finally:
        services.stop_service("ingest", isolated, timeout_s=5)
    assert not process.is_running("ingest", isolated)
    # Stopped on purpose: no pid file, so the judge says stopped (the supervisor leaves it).
    after = services.check_health(spec, isolated, read_heartbeats=False)
    assert after.state is HealthState.stopped


def test_journal_counts_per_service_and_tolerates_a_torn_line(isolated: Settings) -> None:
    for service, reason in [("ingest", "dead"), ("liquidity", "stale"), ("ingest", "stale")]:
        services.append_restart(
            isolated,
            service=service,
            reason=reason,
            old_pid=1,
            new_pid=2,
            backend=RestartBackend.local,
        )
    with services.journal_path(isolated).open("a") as journal:
        journal.write('{"service": "ingest", "reas')  # a crash mid-write
    records = services.read_journal(isolated)
    assert services.restart_counts(records) == {"ingest": 2, "liquidity": 1}
    assert [record.count for record in records] == [1, 1, 2]
    third = services.append_restart(
        isolated,
        service="ingest",
        reason="dead",
        old_pid=2,
        new_pid=3,
        backend=RestartBackend.local,
    )
    assert third.count == 3


def test_restart_limit_per_hour(isolated: Settings) -> None:
    now_ms = 10 * services.HOUR_MS
    records = [
        services.RestartRecord("ingest", "dead", now_ms - minutes * 60_000, 1, 2)
        for minutes in (5, 20, 61)
    ]
    assert services.restarts_since(records, "ingest", now_ms - services.HOUR_MS) == 2
    assert services.restart_allowed(records, "ingest", now_ms, max_per_hour=3)
    assert not services.restart_allowed(records, "ingest", now_ms, max_per_hour=2)
    assert services.restart_allowed(records, "liquidity", now_ms, max_per_hour=1)

    limited = isolated.model_copy(update={"supervisor_max_restarts_per_hour": 1})
    services.append_restart(
        limited, service="ingest", reason="dead", old_pid=1, new_pid=2, backend=RestartBackend.local
    )
    with pytest.raises(services.RestartLimitError, match="restarted 1 times in the last hour"):
        services.restart_service("ingest", "dead", limited, launch=_sleeper())
    assert not process.is_running("ingest", limited)


def test_restart_has_a_deterministic_document_id_and_an_iso_time() -> None:
    from rtcrypto.search.documents import restart_document

    record = services.RestartRecord("ingest", "dead", 1_795_817_384_005, 10, 11, "local", 3)
    assert record.document_id == "ingest:1795817384005"
    assert record.ts == "2026-11-27T22:09:44.005+00:00"
    # The id is the one the project's document builder gives the same restart.
    assert restart_document("ingest", record.ts_ms, reason="dead").id == record.document_id
    assert services.restarts_index(Settings()) == "rtc-restarts"
    assert services.restarts_index(Settings(search_index_prefix="lab")) == "lab-restarts"


def test_compose_backend_builds_the_restart_command() -> None:
    """The compose backend is only built here: there is no Docker engine on these machines."""
    assert services.compose_restart_command("ingest") == ["docker", "compose", "restart", "ingest"]
    assert services.compose_restart_command(
        "liquidity", Path("/app/docker-compose.yml"), "rtc"
    ) == ["docker", "compose", "-f", "/app/docker-compose.yml", "-p", "rtc", "restart", "liquidity"]


def test_compose_service_names_exist_in_docker_compose() -> None:
    import yaml

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for spec in services.SERVICES:
        assert spec.compose_service in compose["services"], spec.name


def test_status_table_shows_state_restarts_and_pid(
    isolated: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from rtcrypto.cli.platform import show_services

    services.append_restart(
        isolated,
        service="ingest",
        reason="dead",
        old_pid=1,
        new_pid=2,
        backend=RestartBackend.local,
    )
    pid = services.start_service(services.get_service("ingest"), isolated, launch=_sleeper())
    try:
        now_ms = time.time_ns() // 1_000_000
        heartbeats = {"ingest": {"service": "ingest", "ts_ms": now_ms, "lag_ms": 1500}}
        show_services(isolated.model_copy(update={"feed": "simulator"}), heartbeats)
    finally:
        services.stop_service("ingest", isolated, timeout_s=5)
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    ingest = lines["ingest"].split()
    assert ingest[1] == "healthy" and ingest[2:5] == ["0", "s", "ago"]
    assert "1.5 s" in lines["ingest"] and ingest[-4:-2] == ["1", str(pid)]
    assert lines["liquidity"].split()[1] == "stopped"


def test_settings_env_reproduces_the_cluster_topology_in_a_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster's settings travel as RTC_CLUSTER_* (a nested model has its own prefix)."""
    from rtcrypto.config_cluster import ClusterSettings, Topology

    settings = Settings(
        home=tmp_path,
        topology=Topology.CLUSTER,
        cluster=ClusterSettings(
            kafka_ports=[19001, 19003, 19005],
            kafka_controller_ports=[19002, 19004, 19006],
            spark_worker_memory="768m",
        ),
    )
    env = services.settings_env(settings)
    assert env["RTC_CLUSTER_KAFKA_PORTS"] == "19001,19003,19005"
    assert "RTC_CLUSTER" not in env
    for name in list(os.environ):
        if name.startswith("RTC_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    child = Settings()
    assert child.kafka_bootstrap == "127.0.0.1:19001,127.0.0.1:19003,127.0.0.1:19005"
    assert child.model_dump() == settings.model_dump()


@given(
    symbols=st.lists(
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=8),
        min_size=1,
        max_size=40,
        unique=True,
    ),
    processes=st.integers(min_value=1, max_value=64),
)
def test_symbol_groups_put_every_symbol_in_exactly_one_non_empty_group(
    symbols: list[str], processes: int
) -> None:
    groups = services.symbol_groups(symbols, processes)
    assert len(groups) == min(processes, len(symbols))
    assert all(groups)
    assert sorted(symbol for group in groups for symbol in group) == sorted(symbols)
    assert max(map(len, groups)) - min(map(len, groups)) <= 1


def test_the_cluster_topology_runs_one_ingest_per_symbol_group(tmp_path: Path) -> None:
    from rtcrypto.config_cluster import ClusterSettings, Topology

    settings = Settings(
        home=tmp_path,
        symbols=["BTCUSD", "ETHUSD", "SOLUSD"],
        topology=Topology.CLUSTER,
        cluster=ClusterSettings(ingest_processes=2),
    )
    names = services.service_names(settings)
    assert names[:3] == ["simulator", "ingest-1", "ingest-2"]
    assert "ingest" not in names
    first = services.get_service("ingest-1", settings).launch(settings)
    second = services.get_service("ingest-2", settings).launch(settings)
    assert (first.env["RTC_SYMBOLS"], second.env["RTC_SYMBOLS"]) == ("BTCUSD,SOLUSD", "ETHUSD")
    assert first.env["RTC_INGEST_INSTANCE"] == "ingest-1"
    assert services.get_service("ingest-2", settings).heartbeat_service == "ingest-2"
    with pytest.raises(services.UnknownServiceError, match="ingest-1, ingest-2"):
        services.get_service("ingest", settings)
    # one symbol: one ingest under its usual name, whatever the topology
    single_symbol = settings.model_copy(update={"symbols": ["BTCUSD"]})
    assert services.service_names(single_symbol)[:2] == ["simulator", "ingest"]
