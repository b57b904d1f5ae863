"""docker-compose.yml's cluster profile against the settings of the cluster topology, statically.

``docker compose --env-file .env --env-file .env.cluster up`` (.env.cluster sets
``COMPOSE_PROFILES=cluster``) must start the topology ``rtc up --topology cluster`` starts with
the defaults of rtcrypto/config_cluster.py: 3 KRaft brokers in one 3-voter quorum, topics with
replication factor 3, ``min.insync.replicas`` 2 and the cluster's partitions; Elasticsearch nodes
forming one cluster; a Spark master and its workers, the jobs submitted to
``spark://spark-master:7077``; Airflow on PostgreSQL with the CeleryExecutor, Redis as the broker
and its Celery workers; one ingest per symbol group of the registry. What these tests read is the
file as compose reads it: YAML, then ``${VAR}`` interpolated with .env (the example with its
passwords filled in) and .env.cluster on top, then the services of the active profile. No Docker
engine runs here: images, start-up and health checks passing are not shown (README).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rtcrypto.config import Settings
from rtcrypto.config_cluster import ClusterSettings, Topology
from rtcrypto.spark import submit as spark
from rtcrypto.stack.airflow_connections import CONNECTION_IDS, airflow_connections
from rtcrypto.supervision.registry import INGEST, get_service, ingest_groups, service_specs
from tests.unit.test_compose import (
    APP_IMAGE,
    CONDITIONS,
    ONE_SHOTS,
    PLACEHOLDER_SECRET,
    _compose,
    _dockerfile_env,
    _env_cluster,
    _env_example,
    _example_env_with_secrets,
    _interpolations,
    _is_secret,
    _mounted_on,
    _named_mounts,
    _resolved,
    _single,
    _text,
)

PROFILE = "cluster"
CLUSTER = ClusterSettings()  # the defaults the cluster profile reproduces
KAFKA_BROKERS = ["kafka", "kafka-2", "kafka-3"]
SEARCH_NODES = ["elasticsearch", "elasticsearch-2", "elasticsearch-3"]
SPARK_WORKERS = ["spark-worker-1", "spark-worker-2"]
AIRFLOW_COMPONENTS = {
    "airflow-api-server": ["airflow", "api-server"],
    "airflow-scheduler": ["airflow", "scheduler", "--skip-serve-logs"],
    "airflow-dag-processor": ["airflow", "dag-processor"],
    "airflow-triggerer": ["airflow", "triggerer", "--skip-serve-logs"],
}
CLUSTER_PASSWORDS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "CELERY_RESULT_BACKEND_PASSWORD")
SettingsOf = Callable[[str], Settings]


def _cluster_env() -> dict[str, str]:
    """``--env-file .env --env-file .env.cluster``: the later file wins."""
    return {**_example_env_with_secrets(), **_env_cluster()}


def _active(services: dict[str, dict[str, Any]], profile: str | None) -> dict[str, dict[str, Any]]:
    """The services compose runs with ``profile`` active (None: no profile), 0 replicas left out."""
    active = {}
    for name, service in services.items():
        profiles = service.get("profiles") or []
        if profiles and profile not in profiles:
            continue
        if str((service.get("deploy") or {}).get("replicas", "1")) == "0":
            continue
        active[name] = service
    return active


def _cluster_services() -> dict[str, dict[str, Any]]:
    return _active(_resolved(_cluster_env())["services"], PROFILE)


def _environment(name: str) -> dict[str, str]:
    return {key: str(value) for key, value in _cluster_services()[name]["environment"].items()}


@pytest.fixture
def cluster_settings_of(monkeypatch: pytest.MonkeyPatch) -> SettingsOf:
    """Settings as container ``name`` of the cluster profile reads them (image ENV + compose env)."""

    def build(name: str) -> Settings:
        for variable in list(os.environ):
            if variable.startswith("RTC_"):
                monkeypatch.delenv(variable)
        environment = {**_dockerfile_env(), **_environment(name)}
        for variable, value in environment.items():
            if variable.startswith("RTC_"):
                monkeypatch.setenv(variable, value)
        return Settings()

    return build


# --- the profile and its env file ------------------------------------------------------------------


def test_env_cluster_activates_the_profile_in_a_project_of_its_own_and_holds_no_secret() -> None:
    env = _env_cluster()
    assert env["COMPOSE_PROFILES"] == PROFILE
    assert env["COMPOSE_PROJECT_NAME"] != _compose()["name"]  # its own volumes: a fresh quorum
    assert env["RTC_TOPOLOGY"] == Topology.CLUSTER.value
    assert not [name for name in env if _is_secret(name)], ".env.cluster must hold no secret"
    read = {match["braced"] or match["bare"] for match in _interpolations(_text())}
    unread = sorted(name for name in env if name not in read and not name.startswith("COMPOSE_"))
    assert unread == [], f".env.cluster sets variables compose never reads: {unread}"
    # every value of .env.cluster is a topology value: its default in the file is the single one
    example = _env_example()
    assert {name for name in env if name in example} == {"RTC_SYMBOLS"}


def test_the_cluster_runs_exactly_the_topology_of_the_cluster_settings() -> None:
    services = _cluster_services()
    cluster = services.keys() - _single(services).keys()
    expected = {
        *KAFKA_BROKERS[1:],
        *SEARCH_NODES[1:],
        "es-certs",
        "spark-master",
        *SPARK_WORKERS,
        "postgres",
        "redis",
        "airflow-init",
        *AIRFLOW_COMPONENTS,
        *(f"airflow-worker-{n}" for n in range(1, CLUSTER.celery_workers + 1)),
        *(f"{INGEST}-{n}" for n in range(1, CLUSTER.ingest_processes + 1)),
    }
    assert cluster == expected
    assert len(KAFKA_BROKERS) == CLUSTER.kafka_brokers
    assert len(SEARCH_NODES) == CLUSTER.search_nodes
    assert len(SPARK_WORKERS) == CLUSTER.spark_workers
    # the single topology's one-process ingest and standalone Airflow do not run in the cluster
    assert "ingest" not in services and "airflow" not in services
    # ... and the single topology starts none of the cluster's services
    single = _active(_resolved()["services"], None)
    assert not single.keys() & cluster and {"ingest", "airflow"} <= single.keys()


def test_every_cluster_service_is_healthchecked_rotated_and_restarted() -> None:
    for name, service in _cluster_services().items():
        logging = service.get("logging") or {}
        assert logging.get("driver") == "json-file", name
        assert logging["options"]["max-size"] and logging["options"]["max-file"], name
        if name in ONE_SHOTS:
            assert service["restart"] == "no" and "healthcheck" not in service, name
            continue
        assert service["restart"] == "unless-stopped", name
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"


def test_depends_on_resolves_within_the_cluster_profile_and_does_not_loop() -> None:
    every = _resolved(_cluster_env())["services"]
    services = _cluster_services()
    for name, service in services.items():
        for target, rule in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on {target}, which the profile does not run"
            assert rule["condition"] in CONDITIONS, (name, target)
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[target], (name, target)
            if rule["condition"] == "service_completed_successfully":
                assert target in ONE_SHOTS, (name, target)
    order: list[str] = []
    pending = dict(services)
    while pending:
        ready = [n for n, s in pending.items() if set(s.get("depends_on") or {}) <= set(order)]
        assert ready, f"dependency cycle among {sorted(pending)}"
        order += ready
        for name in ready:
            pending.pop(name)
    # without the profile, what the single services wait for is theirs or optional
    for name, service in _active(every, None).items():
        for target, rule in (service.get("depends_on") or {}).items():
            assert not every[target].get("profiles") or rule.get("required") is False, (
                name,
                target,
            )
    assert order.index("es-certs") < order.index("elasticsearch") < order.index("es-setup")
    assert max(order.index(broker) for broker in KAFKA_BROKERS) < order.index("kafka-init")
    assert order.index("postgres") < order.index("airflow-init") < order.index("airflow-scheduler")
    assert order.index("spark-master") < order.index("liquidity")


# --- Kafka -----------------------------------------------------------------------------------------


def test_three_brokers_form_one_three_voter_quorum() -> None:
    services = _cluster_services()
    voters = []
    for name in KAFKA_BROKERS:
        env = services[name]["environment"]
        assert services[name]["image"] == f"apache/kafka:{Settings().kafka_version}"
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        controller = re.search(r"CONTROLLER://:(\d+)", env["KAFKA_LISTENERS"])
        assert controller, name
        voters.append(f"{env['KAFKA_NODE_ID']}@{name}:{controller[1]}")
        assert _named_mounts(services[name])[env["KAFKA_LOG_DIRS"]][1] is False
    quorums = {
        services[name]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for name in KAFKA_BROKERS
    }
    assert quorums == {",".join(voters)}
    assert len({services[n]["environment"]["CLUSTER_ID"] for n in KAFKA_BROKERS}) == 1
    volumes = [_named_mounts(services[name])["/var/lib/kafka/data"][0] for name in KAFKA_BROKERS]
    assert len(set(volumes)) == len(KAFKA_BROKERS)  # a log folder each


def test_brokers_and_topics_replicate_as_the_cluster_settings() -> None:
    services = _cluster_services()
    factor, min_isr = str(CLUSTER.kafka_replication_factor), str(CLUSTER.kafka_min_insync_replicas)
    for name in KAFKA_BROKERS:
        env = services[name]["environment"]
        for key in (
            "KAFKA_DEFAULT_REPLICATION_FACTOR",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
            "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
        ):
            assert env[key] == factor, (name, key)
        for key in (
            "KAFKA_MIN_INSYNC_REPLICAS",
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
            "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR",
        ):
            assert env[key] == min_isr, (name, key)
        assert env["KAFKA_NUM_PARTITIONS"] == str(CLUSTER.kafka_partitions)
    script = "\n".join(services["kafka-init"]["command"])
    created = re.findall(r"--partitions (\S+) --replication-factor (\S+)", script)
    assert created == [(str(CLUSTER.kafka_partitions), factor)]
    bootstrap = re.findall(r"--bootstrap-server (\S+)", script)
    assert set(bootstrap) == {_environment("trader")["RTC_KAFKA_BOOTSTRAP"]}
    assert set(services["kafka-init"]["depends_on"]) == set(KAFKA_BROKERS)


def test_every_app_container_bootstraps_from_every_broker(cluster_settings_of: SettingsOf) -> None:
    services = _cluster_services()
    advertised = {
        listener.removeprefix("PLAINTEXT://")
        for name in KAFKA_BROKERS
        for listener in services[name]["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")
        if listener.startswith("PLAINTEXT://")
    }
    for name, service in services.items():
        if service.get("image") != APP_IMAGE:
            continue
        settings = cluster_settings_of(name)  # every value parses as its setting
        assert settings.topology is Topology.CLUSTER, name
        assert set(settings.kafka_bootstrap.split(",")) == advertised, name
        assert settings.simulator_host == "simulator" and settings.home == Path("/app/.rtc")


# --- Elasticsearch ---------------------------------------------------------------------------------


def test_elasticsearch_nodes_form_one_cluster_with_transport_tls() -> None:
    services = _cluster_services()
    setup = "\n".join(services["es-certs"]["command"])
    listed = re.search(r"for node in ([^;]+);", setup)
    assert listed and listed[1].split() == SEARCH_NODES  # one certificate per node
    for name in SEARCH_NODES:
        env = services[name]["environment"]
        assert services[name]["image"] == services["es-certs"]["image"]
        assert env.get("discovery.type", "multi-node") == "multi-node", name
        assert env["node.name"] == name
        assert env["discovery.seed_hosts"].split(",") == SEARCH_NODES
        assert env["cluster.initial_master_nodes"].split(",") == SEARCH_NODES
        assert env["xpack.security.enabled"] == "true"
        assert env["xpack.security.transport.ssl.enabled"] == "true"
        assert env["xpack.security.transport.ssl.verification_mode"] == "certificate"
        assert env["xpack.security.transport.ssl.certificate"] == f"certs/{name}/{name}.crt"
        assert env["xpack.security.transport.ssl.key"] == f"certs/{name}/{name}.key"
        assert env["ELASTIC_PASSWORD"] == PLACEHOLDER_SECRET
        assert env["ES_JAVA_OPTS"] == f"-Xms{CLUSTER.search_heap} -Xmx{CLUSTER.search_heap}"
        mounts = _named_mounts(services[name])
        assert mounts["/usr/share/elasticsearch/config/certs"] == ("es-certs", True)
        assert services[name]["depends_on"]["es-certs"]["condition"] == (
            "service_completed_successfully"
        )
    data = {_named_mounts(services[n])["/usr/share/elasticsearch/data"][0] for n in SEARCH_NODES}
    assert len(data) == len(SEARCH_NODES)
    # the CA's key never reaches the volume the nodes mount
    assert "cp /tmp/ca/ca/ca.crt config/certs/ca/" in setup and "rm -rf /tmp/ca" in setup


def test_indices_get_the_cluster_replicas(cluster_settings_of: SettingsOf) -> None:
    """`rtc prepare` (bootstrap) makes the templates in the cluster topology: 1 replica each."""
    settings = cluster_settings_of("bootstrap")
    assert settings.topology is Topology.CLUSTER
    assert settings.cluster.search_replicas == CLUSTER.search_replicas == 1
    assert settings.cluster.search_replicas < len(SEARCH_NODES)


# --- Spark -----------------------------------------------------------------------------------------


def test_spark_master_and_workers_as_the_cluster_settings() -> None:
    services = _cluster_services()
    master = services["spark-master"]["command"]
    assert master[:2] == ["spark-class", "org.apache.spark.deploy.master.Master"]
    assert master[master.index("--port") + 1] == str(CLUSTER.spark_master_port)
    assert master[master.index("--webui-port") + 1] == str(CLUSTER.spark_master_ui_port)
    assert f"spark-master:{CLUSTER.spark_master_ui_port}/json/" in str(
        services["spark-master"]["healthcheck"]["test"]
    )
    master_url = f"spark://spark-master:{CLUSTER.spark_master_port}"
    for index, name in enumerate(SPARK_WORKERS):
        command = services[name]["command"]
        assert command[:2] == ["spark-class", "org.apache.spark.deploy.worker.Worker"]
        assert command[-1] == master_url
        assert command[command.index("--host") + 1] == name
        assert command[command.index("--port") + 1] == str(CLUSTER.spark_worker_ports[index])
        ui_port = CLUSTER.spark_worker_ui_ports[index]
        assert command[command.index("--webui-port") + 1] == str(ui_port)
        assert f"{name}:{ui_port}/json/" in str(services[name]["healthcheck"]["test"]), name
        assert command[command.index("--cores") + 1] == str(CLUSTER.spark_worker_cores)
        assert command[command.index("--memory") + 1] == CLUSTER.spark_worker_memory
        env = services[name]["environment"]
        assert env["SPARK_LOCAL_IP"] == name  # executors bind where the driver reaches them
        assert env["SPARK_DAEMON_MEMORY"] == CLUSTER.spark_daemon_memory
        assert services[name]["depends_on"]["spark-master"]["condition"] == "service_healthy"
    assert services["spark-master"]["environment"]["SPARK_DAEMON_MEMORY"] == (
        CLUSTER.spark_daemon_memory
    )


def test_the_jobs_are_submitted_to_the_master_with_a_checkpoint_every_worker_writes(
    cluster_settings_of: SettingsOf,
) -> None:
    services = _cluster_services()
    master_url = f"spark://spark-master:{CLUSTER.spark_master_port}"
    liquidity = cluster_settings_of("liquidity")
    assert liquidity.spark_master == master_url
    assert cluster_settings_of("bars").bars_master == master_url
    checkpoint = spark.default_checkpoint(liquidity)
    volume = _mounted_on(services["liquidity"], checkpoint)
    assert volume is not None and volume[1] is False
    for name in [*SPARK_WORKERS, "bars"]:
        # the state stores are written by the executors: the same volume, writable, same path
        assert _mounted_on(services[name], checkpoint) == volume, name
    for driver in ("liquidity", "bars"):
        assert services[driver]["environment"]["SPARK_LOCAL_IP"] == driver  # reachable by name
    for name in [*AIRFLOW_COMPONENTS, "airflow-worker-1"]:
        connection = json.loads(services[name]["environment"]["AIRFLOW_CONN_SPARK_DEFAULT"])
        assert connection["host"] == master_url


# --- Airflow ---------------------------------------------------------------------------------------


def _airflow_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in _cluster_services().items() if n.startswith("airflow-")}


def test_airflow_components_run_the_celery_executor_each_in_its_container() -> None:
    services = _airflow_services()
    workers = [f"airflow-worker-{n}" for n in range(1, CLUSTER.celery_workers + 1)]
    assert set(services) == {"airflow-init", *AIRFLOW_COMPONENTS, *workers}
    for name, command in AIRFLOW_COMPONENTS.items():
        assert services[name]["command"] == command, name
    for name in workers:
        command = services[name]["command"]
        assert command[:3] == ["airflow", "celery", "worker"]
        assert command[command.index("--celery-hostname") + 1] == f"{name}@%h"
        assert command[command.index("--concurrency") + 1] == str(CLUSTER.celery_worker_concurrency)
        # the worker's own Celery node answers (compose turned $${HOSTNAME} into ${HOSTNAME})
        assert f'ping -d "{name}@${{HOSTNAME}}"' in " ".join(services[name]["healthcheck"]["test"])
    assert "airflow db migrate" in "\n".join(services["airflow-init"]["command"])
    assert services["airflow-api-server"]["healthcheck"]["test"][-1] == "airflow"
    for name, service in services.items():
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == str(CLUSTER.celery_worker_concurrency)
        assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env  # it would win over the _CMD
        assert "@postgres:5432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"]
        assert "@redis:6379/0" in env["AIRFLOW__CELERY__BROKER_URL_CMD"]
        assert "celery:" in env["AIRFLOW__CELERY__RESULT_BACKEND_CMD"]
        assert "@postgres:5432/celery_results" in env["AIRFLOW__CELERY__RESULT_BACKEND_CMD"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
            "http://airflow-api-server:8080/execution/"
        )
        if name != "airflow-init":
            assert service["depends_on"]["airflow-init"]["condition"] == (
                "service_completed_successfully"
            )
            assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["airflow-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["airflow-api-server"]["ports"] == [f"127.0.0.1:{Settings().airflow_port}:8080"]


def test_airflow_components_share_the_standalone_configuration_and_state() -> None:
    single = _resolved()["services"]["airflow"]
    shared = {k: v for k, v in single["environment"].items() if not k.startswith("AIRFLOW_CONN")}
    for key in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        shared.pop(key)
    shared.pop("AIRFLOW__CORE__EXECUTION_API_SERVER_URL")
    for name, service in _airflow_services().items():
        env = service["environment"]
        for key, value in shared.items():
            if key.startswith("AIRFLOW"):
                assert env[key] == value, (name, key)
        # the DAGs, the Airflow home (airflow.cfg's keys, logs) and the data: the standalone's
        assert service["volumes"] == single["volumes"], name
        assert _named_mounts(service)[env["AIRFLOW_HOME"]] == ("airflow-home", False)


def test_airflow_connections_are_the_ones_rtc_up_builds_from_the_cluster_settings(
    cluster_settings_of: SettingsOf,
) -> None:
    for name, service in _airflow_services().items():
        expected = airflow_connections(cluster_settings_of(name))
        for conn_id in CONNECTION_IDS:
            env = service["environment"][f"AIRFLOW_CONN_{conn_id.upper()}"]
            assert json.loads(env) == expected[conn_id], (name, conn_id)


def test_postgres_and_redis_are_the_official_images_with_passwords_from_env() -> None:
    services = _cluster_services()
    postgres, redis = services["postgres"], services["redis"]
    assert postgres["image"].split(":")[0] == "postgres"
    assert redis["image"].split(":")[0] == "redis"
    assert postgres["environment"]["POSTGRES_USER"] == "airflow"
    assert postgres["environment"]["POSTGRES_DB"] == "airflow"
    init = "\n".join(postgres["command"])
    assert "CREATE ROLE celery LOGIN PASSWORD '$CELERY_RESULT_BACKEND_PASSWORD'" in init
    assert "CREATE DATABASE celery_results OWNER celery" in init
    assert init.rstrip().endswith("exec docker-entrypoint.sh postgres")
    script = "\n".join(redis["command"])
    assert "requirepass %s" in script and '"$REDIS_PASSWORD" >' in script  # a file, no argument
    assert script.rstrip().endswith("exec docker-entrypoint.sh redis-server /tmp/redis.conf")
    assert "REDISCLI_AUTH=" in " ".join(redis["healthcheck"]["test"])
    for name in ("postgres", "redis"):
        mounts = _named_mounts(services[name])
        assert mounts and all(not read_only for _, read_only in mounts.values()), name


def test_cluster_passwords_come_from_env_and_an_empty_one_stops_its_container() -> None:
    """The file is interpolated whole, inactive profiles too: a required ``${VAR:?}`` would stop
    `docker compose up` of the single topology. So each is ``${VAR:-}``, documented (empty) in
    .env.example, and refused at start by the container that needs it (``$${VAR:?}``)."""
    raw = _compose()["services"]
    example = _env_example()
    for password in CLUSTER_PASSWORDS:
        assert password in example and example[password] == ""
        assert password not in _env_cluster()
        guarded = {
            name
            for name, service in raw.items()
            if f"$${{{password}:?set {password} in .env" in json.dumps(service)
        }
        needs = {
            name
            for name, service in raw.items()
            if f"${{{password}:-}}" in json.dumps(service.get("environment") or {})
        }
        assert needs, password
        # every container that gets it refuses to start (or to connect) without it
        assert needs <= guarded | {"postgres"}, (password, needs - guarded)
    # the postgres image refuses an empty POSTGRES_PASSWORD itself; the guard says what to set
    assert "$${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env" in "\n".join(
        raw["postgres"]["command"]
    )


# --- ingest ----------------------------------------------------------------------------------------


def test_one_ingest_per_symbol_group_of_the_registry(cluster_settings_of: SettingsOf) -> None:
    services = _cluster_services()
    settings = cluster_settings_of("trader")
    assert settings.cluster.ingest_processes == CLUSTER.ingest_processes
    members = [spec.name for spec in service_specs(settings) if spec.name.startswith(INGEST)]
    ingest = sorted(name for name in services if name.startswith(f"{INGEST}-"))
    assert ingest == members and len(ingest) == len(ingest_groups(settings))
    owned: list[str] = []
    for name in ingest:
        assert services[name]["command"] == ["rtc", "service", "exec", name]
        assert services[name]["healthcheck"]["test"][-1] == name
        launch = get_service(name, cluster_settings_of(name)).launch(cluster_settings_of(name))
        assert launch.env["RTC_INGEST_INSTANCE"] == name
        owned += launch.env["RTC_SYMBOLS"].split(",")
    assert sorted(owned) == sorted(settings.symbols)  # every symbol in exactly one group
