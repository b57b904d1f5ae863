"""docker-compose.yml against the local stack, checked statically (no Docker engine here).

What these tests hold the compose file to: the streaming services of the registry
(rtcrypto/supervision/registry.py) under the same names, with the same commands and a health check each;
the topics, the broker's settings and Airflow's environment of the local stack; every ``RTC_*``
variable a real setting whose value parses; every stateful path on a declared named volume;
``depends_on`` conditions that can be met; no secret written into the file, and every
``${VAR}`` documented in .env.example. What they cannot show (images, start-up, security,
health checks passing) is listed in the README's docker-compose section.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from rtcrypto.cli.main import app as rtc_app
from rtcrypto.cli.service import exec_arguments
from rtcrypto.config import Settings, Topics
from rtcrypto.config_cluster import ClusterSettings
from rtcrypto.search.client import search_client
from rtcrypto.spark import submit as spark
from rtcrypto.stack.airflow import airflow_env
from rtcrypto.stack.kafka import server_properties
from rtcrypto.supervision import SERVICES, compose_restart_command, get_service

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
# the cluster profile's values (tests/unit/test_compose_cluster.py)
ENV_CLUSTER = REPO / ".env.cluster"
DOCKERFILE = REPO / "Dockerfile"
ONE_SHOTS = {"kafka-init", "es-setup", "bootstrap", "es-certs", "airflow-init"}
SINGLE_ONE_SHOTS = {"kafka-init", "es-setup", "bootstrap"}
APP_IMAGE = "rtcrypto-app:latest"
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|API_KEY|TOKEN|PRIVATE_KEY", re.IGNORECASE)
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}, or $NAME.
INTERPOLATION = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_]\w*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}|(?P<bare>[A-Za-z_]\w*))"
)
ONLY_INTERPOLATION = re.compile(r"^\$\{(?P<name>[A-Za-z_]\w*)(?::\?[^}]*|:-)?\}$")
PLACEHOLDER_SECRET = "Placeholder0secret"
SettingsOf = Callable[..., Settings]  # settings_of(service, env=None)


# --- reading the files ---------------------------------------------------------------------------


def _text() -> str:
    return COMPOSE_FILE.read_text()


def _compose() -> dict[str, Any]:
    """The file as written (``${...}`` left in place), YAML merge keys applied."""
    return yaml.safe_load(_text())


def _env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, separator, value = line.partition("=")
            assert separator, f"{path.name} line without '=': {line!r}"
            values[name.strip()] = value.strip()
    return values


def _env_example() -> dict[str, str]:
    return _env_file(ENV_EXAMPLE)


def _env_cluster() -> dict[str, str]:
    return _env_file(ENV_CLUSTER)


def _without_escapes(text: str) -> str:
    """``$$`` is a literal dollar for compose (a shell variable inside the container)."""
    return text.replace("$$", "")


def _interpolations(text: str) -> Iterator[re.Match[str]]:
    return INTERPOLATION.finditer(_without_escapes(text))


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of ``text`` with ``env`` (``:?`` on an empty value fails)."""

    def replace(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        value = env.get(name, "")
        operator, argument = match["op"], match["arg"] or ""
        if operator in (":-", "-") and not value:
            return argument
        if operator in (":?", "?") and not value:
            raise AssertionError(f"{name} is required: {argument}")
        return value

    escaped = text.replace("$$", "\0")
    return INTERPOLATION.sub(replace, escaped).replace("\0", "$")


def _interpolated_name(value: str) -> str | None:
    """``NAME`` when ``value`` is nothing but ``${NAME}`` (``:?message`` or an empty default)."""
    match = ONLY_INTERPOLATION.match(value)
    return match["name"] if match else None


def _is_secret(name: str) -> bool:
    """A variable that holds a secret (not one that names a file holding it)."""
    return bool(SECRET_NAME.search(name)) and not name.endswith("_FILE")


def _example_env_with_secrets() -> dict[str, str]:
    """.env.example as a user fills it in: the empty passwords set, everything else as given."""
    return {
        name: (PLACEHOLDER_SECRET if _is_secret(name) and "GEMINI" not in name else value)
        for name, value in _env_example().items()
    }


def _passwords_only() -> dict[str, str]:
    """The smallest .env that works: the three passwords, every other value compose's default."""
    return {
        name: value
        for name, value in _example_env_with_secrets().items()
        if value == PLACEHOLDER_SECRET
    }


def _resolved(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The file as compose reads it: YAML first, then every string interpolated with ``env``
    (default: .env.example with the passwords filled in)."""
    env = _example_env_with_secrets() if env is None else env

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return _interpolate(node, env) if isinstance(node, str) else node

    return walk(_compose())


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _single(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services `docker compose up` starts without a profile (the single topology)."""
    return {name: service for name, service in services.items() if not service.get("profiles")}


def _dockerfile_env() -> dict[str, str]:
    """``ENV`` of the Dockerfile's final stage (``KEY=value`` pairs)."""
    final_stage = DOCKERFILE.read_text().split("\nFROM ")[-1]
    joined = final_stage.replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in joined.splitlines():
        if line.startswith("ENV "):
            for pair in line[4:].split():
                name, _, value = pair.partition("=")
                env[name] = value
    return env


@pytest.fixture
def settings_of(monkeypatch: pytest.MonkeyPatch) -> SettingsOf:
    """``settings_of(service, env=None)``: Settings as that container reads them (image ENV +
    compose env interpolated with ``env``, by default .env.example with passwords)."""

    def build(service: str, env: dict[str, str] | None = None) -> Settings:
        resolved = _resolved(env)["services"]
        for name in list(os.environ):
            if name.startswith("RTC_"):
                monkeypatch.delenv(name)
        environment = {**_dockerfile_env(), **(resolved[service].get("environment") or {})}
        for name, value in environment.items():
            if name.startswith("RTC_"):
                monkeypatch.setenv(name, str(value))
        return Settings()

    return build


def _named_mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """``{target: (volume, read_only)}`` of the named volumes mounted in ``service``."""
    mounts: dict[str, tuple[str, bool]] = {}
    for entry in service.get("volumes") or []:
        source, target, *mode = str(entry).split(":")
        if source.startswith((".", "/", "$")):
            continue  # a bind mount
        mounts[target] = (source, "ro" in mode)
    return mounts


def _mounted_on(service: dict[str, Any], path: Path) -> tuple[str, bool] | None:
    """The named volume holding ``path`` in ``service`` (the deepest mount), or None."""
    best: tuple[str, tuple[str, bool]] | None = None
    for target, mount in _named_mounts(service).items():
        if (path == Path(target) or Path(target) in path.parents) and (
            best is None or len(target) > len(best[0])
        ):
            best = (target, mount)
    return best[1] if best else None


# --- services and health checks ------------------------------------------------------------------


def test_every_long_running_service_has_a_healthcheck_and_one_shots_run_once() -> None:
    services = _services()
    assert {"kafka", "elasticsearch", "kibana", "airflow"} <= set(services)
    assert {name for name, service in services.items() if service.get("restart") == "no"} == (
        ONE_SHOTS
    )
    assert {n for n, s in _single(services).items() if s.get("restart") == "no"} == SINGLE_ONE_SHOTS
    for name, service in services.items():
        if name in ONE_SHOTS:
            assert "healthcheck" not in service and "ports" not in service, name
            continue
        assert service["restart"] == "unless-stopped", name
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"


def test_every_registry_service_is_a_compose_service_checked_as_the_supervisor_does() -> None:
    services = _services()
    for spec in SERVICES:
        assert spec.compose_service == spec.name, spec.name
        service = services[spec.compose_service]
        assert service["image"] == APP_IMAGE and service["init"] is True
        assert service["healthcheck"]["test"] == [
            "CMD",
            "python",
            "-m",
            "rtcrypto.supervision.healthcheck",
            spec.name,
        ]
        # The supervisor's compose backend restarts exactly this service.
        assert compose_restart_command(spec.compose_service)[-2:] == ["restart", spec.name]
    assert services["airflow"]["healthcheck"]["test"][-1] == "airflow"


def test_streaming_commands_are_the_registry_commands(settings_of: SettingsOf) -> None:
    services = _resolved()["services"]
    for name in ("ingest", "trader"):
        registry = get_service(name).launch(settings_of(name)).command
        assert services[name]["command"] == ["python", *registry[1:]], name

    settings = settings_of("simulator")
    # The simulator's command is computed from the settings and the prepared replay window, so the
    # container runs the registry's own command through `rtc service exec`, binding every interface.
    assert services["simulator"]["command"] == [
        "rtc",
        "service",
        "exec",
        "simulator",
        "--bind",
        "0.0.0.0",
    ]
    assert exec_arguments(("python", "--host", settings.simulator_host), "0.0.0.0") == [
        "python",
        "--host",
        "0.0.0.0",
    ]
    assert settings.simulator_replay.value == "history"
    volumes = services["simulator"]["volumes"]
    assert any(
        str(v).endswith("/app/.rtc/history:ro") or "target': '/app/.rtc/history'" in str(v)
        for v in volumes
    )
    assert services["simulator"]["depends_on"]["bootstrap"] == {
        "condition": "service_completed_successfully"
    }
    assert CliRunner().invoke(rtc_app, ["service", "exec", "--help"]).exit_code == 0


def test_the_spark_job_runs_spark_submit_with_the_image_connector_jars() -> None:
    command = _services()["liquidity"]["command"]
    assert command[:3] == ["rtc", "liquidity", "run"]
    jars_dir = command[command.index("--jars-dir") + 1]
    assert f"COPY --from=jars /jars/spark-kafka {jars_dir}\n" in DOCKERFILE.read_text()
    help_text = CliRunner().invoke(rtc_app, ["liquidity", "run", "--help"]).output
    assert "--jars-dir" in help_text
    spark_version = re.search(r"ARG SPARK_VERSION=(\S+)", DOCKERFILE.read_text())
    assert spark_version and spark_version[1] == Settings().spark_version
    assert "-Dspark.version=${SPARK_VERSION}" in DOCKERFILE.read_text()


def test_bootstrap_prepares_as_rtc_up_does() -> None:
    services = _services()
    assert services["bootstrap"]["command"] == ["rtc", "prepare"]
    result = CliRunner().invoke(rtc_app, ["prepare", "--help"])
    assert result.exit_code == 0 and "forecast" in result.output
    # The trader starts only after a forecast is current.
    assert services["trader"]["depends_on"]["bootstrap"] == {
        "condition": "service_completed_successfully"
    }


# --- Kafka -----------------------------------------------------------------------------------------


def test_kafka_is_configured_as_the_local_broker() -> None:
    services = _resolved()["services"]  # the single topology's values (.env.example)
    kafka = services["kafka"]
    assert kafka["image"] == f"apache/kafka:{Settings().kafka_version}"
    assert services["kafka-init"]["image"] == kafka["image"]
    env = kafka["environment"]
    local = server_properties(Settings(), Path("/data"))
    # Listeners, quorum and data folder differ by design (container network, static quorum).
    differing = {
        "listeners",
        "advertised.listeners",
        "controller.quorum.bootstrap.servers",
        "listener.security.protocol.map",
        "log.dirs",
    }
    for key, value in local.items():
        if key not in differing:
            assert str(env.get(f"KAFKA_{key.upper().replace('.', '_')}")) == value, key
    assert _named_mounts(kafka)[env["KAFKA_LOG_DIRS"]] == ("kafka-data", False)


def test_topics_are_the_settings_topics() -> None:
    services = _resolved()["services"]  # the single topology's values (.env.example)
    script = "\n".join(services["kafka-init"]["command"])
    loop = re.search(r"for topic in ([^;]+);", script)
    assert loop, "kafka-init has no `for topic in ...;` loop"
    created = loop[1].split()
    assert sorted(created) == sorted(Topics().all()) and len(set(created)) == len(created)
    assert f"--partitions {Settings().kafka_partitions} " in script
    bootstrap = _resolved()["x-rtc-env"]["RTC_KAFKA_BOOTSTRAP"]
    assert f"--bootstrap-server {bootstrap} " in script
    for name, service in services.items():
        if service.get("image") != APP_IMAGE:
            continue
        env = service["environment"]
        for field in Topics.model_fields:
            assert env[f"RTC_TOPIC_{field.upper()}"] == getattr(Topics(), field), (name, field)


# --- RTC_* settings --------------------------------------------------------------------------------


def _known_settings() -> set[str]:
    return (
        {
            f"RTC_{name.upper()}"
            for name in Settings.model_fields
            if name not in ("topics", "cluster")
        }
        | {f"RTC_TOPIC_{name.upper()}" for name in Topics.model_fields}
        | {f"RTC_CLUSTER_{name.upper()}" for name in ClusterSettings.model_fields}
    )


def test_every_rtc_variable_is_a_setting() -> None:
    known = _known_settings()
    used = {
        name
        for service in _services().values()
        for name in service.get("environment") or {}
        if name.startswith("RTC_")
    }
    used |= {match["braced"] or match["bare"] for match in _interpolations(_text())}
    used |= set(_env_example()) | set(_env_cluster()) | set(_dockerfile_env())
    unknown = sorted(name for name in used if name.startswith("RTC_") and name not in known)
    assert not unknown, f"not settings in rtcrypto/config.py: {unknown}"


@pytest.mark.parametrize("dot_env", ["example", "passwords only"])
def test_every_app_container_points_at_the_compose_services(
    settings_of: SettingsOf, dot_env: str
) -> None:
    env = _example_env_with_secrets() if dot_env == "example" else _passwords_only()
    services = _single(_resolved(env)["services"])  # the cluster profile's: test_compose_cluster
    broker = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    simulator_port = "8765"  # the port RTC_SIMULATOR_PORT gives the registry's command
    for name, service in services.items():
        if service.get("image") != APP_IMAGE:
            continue
        settings = settings_of(name, env)  # every value parses as its setting
        assert f"PLAINTEXT://{settings.kafka_bootstrap}" in broker.split(","), name
        assert settings.simulator_host == "simulator"
        assert str(settings.simulator_port) == simulator_port
        assert settings.home == Path("/app/.rtc")
        if "RTC_SEARCH_URL" in service["environment"]:
            url = urlsplit(settings.search_url)
            assert (url.hostname, url.port, url.username) == ("elasticsearch", 9200, None)
            assert settings.search_username == "rtc_app" and settings.search_password
            assert settings.search_password.get_secret_value() == env["SEARCH_APP_PASSWORD"]
        if "RTC_KIBANA_URL" in service["environment"]:
            assert urlsplit(settings.kibana_url).hostname == "kibana"
            assert settings.kibana_username and settings.kibana_password
    trader = settings_of("trader", env)
    assert trader.trading_mode.value == "paper" and trader.gemini_api_key is not None
    assert not trader.gemini_api_key.get_secret_value()
    writers = {"trader", "bootstrap", "airflow"}
    assert {n for n, s in services.items() if "RTC_SEARCH_URL" in s.get("environment", {})} == (
        writers
    )
    assert {n for n, s in services.items() if "RTC_KIBANA_URL" in s.get("environment", {})} == {
        "bootstrap",
        "airflow",
    }


# --- volumes and dependencies --------------------------------------------------------------------


def test_state_lives_on_named_volumes(settings_of: SettingsOf) -> None:
    services = _services()
    trader = settings_of("trader")
    liquidity = settings_of("liquidity")
    bootstrap = settings_of("bootstrap")
    airflow = settings_of("airflow")
    # (service, path, must be writable)
    needed = [
        ("trader", trader.trader_dir, True),
        ("trader", trader.search_spool_path, True),
        ("trader", trader.kill_switch_path, True),
        ("trader", trader.forecast_dir or trader.home / "forecast", False),
        ("liquidity", spark.default_checkpoint(liquidity), True),
        ("bootstrap", bootstrap.history_dir or bootstrap.home / "history", True),
        ("bootstrap", bootstrap.forecast_dir or bootstrap.home / "forecast", True),
        ("airflow", airflow.airflow_home_dir, True),
        ("airflow", airflow.run_dir, True),  # the restart journal
        ("airflow", airflow.history_dir or airflow.home / "history", True),
        ("airflow", airflow.forecast_dir or airflow.home / "forecast", True),
        ("airflow", spark.default_checkpoint(airflow), False),  # the Spark job's lag
    ]
    for service, path, writable in needed:
        mount = _mounted_on(services[service], path)
        assert mount is not None, f"{path} of {service} is on no named volume"
        assert not (writable and mount[1]), f"{path} of {service} is read-only"
    # One writer per checkpoint (Airflow reads it); one forecast and one history for all.
    writer = _mounted_on(services["liquidity"], spark.default_checkpoint(liquidity))
    reader = _mounted_on(services["airflow"], spark.default_checkpoint(airflow))
    assert writer and reader and (writer[0], writer[1], reader[1]) == (reader[0], False, True)
    shared = {
        (kind, (_mounted_on(services[service], path) or ("none",))[0])
        for service, path, _ in needed
        for kind in ("forecast", "history")
        if path.name == kind
    }
    assert shared == {("forecast", "forecast"), ("history", "history")}


def test_named_volumes_are_declared_used_and_prepared_in_the_image() -> None:
    compose = _compose()
    declared = set(compose["volumes"])
    used = {
        volume
        for service in compose["services"].values()
        for volume, _ in _named_mounts(service).values()
    }
    assert used == declared
    dockerfile = DOCKERFILE.read_text()
    for name, service in compose["services"].items():
        if service.get("image") != APP_IMAGE:
            continue
        for target in _named_mounts(service):
            # Created (and owned by the image's user) in the image: a new volume copies that.
            assert target in dockerfile, f"{name}: {target} is not created in the Dockerfile"


def test_depends_on_conditions_can_be_met_and_do_not_loop() -> None:
    services = _services()
    for name, service in services.items():
        for target, rule in (service.get("depends_on") or {}).items():
            assert target in services, (name, target)
            condition = rule["condition"]
            assert condition in CONDITIONS, (name, target)
            if condition == "service_healthy":
                assert "healthcheck" in services[target], (name, target)
            if condition == "service_completed_successfully":
                assert target in ONE_SHOTS, (name, target)
            if not services[target].get("profiles") or rule.get("required", True) is False:
                continue
            # a dependency on a profile's service is the profile's own, or optional
            assert set(services[name].get("profiles") or []) & set(services[target]["profiles"]), (
                name,
                target,
            )
    order: list[str] = []
    pending = dict(services)
    while pending:
        ready = [n for n, s in pending.items() if set(s.get("depends_on") or {}) <= set(order)]
        assert ready, f"dependency cycle among {sorted(pending)}"
        order += ready
        for name in ready:
            pending.pop(name)
    assert order.index("es-setup") < order.index("kibana") < order.index("bootstrap")
    assert order.index("kafka-init") < order.index("ingest")

    def upstream(name: str) -> set[str]:
        direct = set(services[name].get("depends_on") or {})
        return direct.union(*(upstream(dependency) for dependency in direct))

    # A read-only mount never creates its volume: a writer (the image's owner) comes first.
    for name, service in services.items():
        for volume, read_only in _named_mounts(service).values():
            if read_only:
                writers = {
                    other
                    for other, candidate in services.items()
                    if (volume, False) in _named_mounts(candidate).values()
                }
                assert writers & upstream(name), f"{name} reads {volume} before any writer starts"


# --- Elasticsearch, Kibana, Airflow ----------------------------------------------------------------


def test_elasticsearch_and_kibana_run_with_security_on() -> None:
    services = _services()
    settings = Settings()
    search = services["elasticsearch"]
    assert search["image"].endswith(f"/elasticsearch:{settings.search_version}")
    assert services["es-setup"]["image"] == search["image"]
    assert services["kibana"]["image"].endswith(f"/kibana:{settings.search_version}")
    env = search["environment"]
    assert env["xpack.security.enabled"] == "true"
    heap = _resolved()["services"]["elasticsearch"]["environment"]["ES_JAVA_OPTS"]
    assert heap == f"-Xms{settings.search_heap} -Xmx{settings.search_heap}"
    assert _interpolated_name(env["ELASTIC_PASSWORD"]) == "ELASTIC_PASSWORD"
    kibana = services["kibana"]["environment"]
    assert kibana["ELASTICSEARCH_USERNAME"] == "kibana_system"
    assert _interpolated_name(kibana["ELASTICSEARCH_PASSWORD"]) == "KIBANA_PASSWORD"
    setup = "\n".join(services["es-setup"]["command"])
    assert "/_security/user/kibana_system/_password" in setup and "$$KIBANA_PASSWORD" in setup
    assert "/_security/user/rtc_app" in setup and "/_security/role/rtc_app" in setup
    pattern = services["es-setup"]["environment"]["INDEX_PATTERN"]
    assert pattern == "${RTC_SEARCH_INDEX_PREFIX:-rtc}-*"
    assert _compose()["x-rtc-env"]["RTC_SEARCH_INDEX_PREFIX"] == "${RTC_SEARCH_INDEX_PREFIX:-rtc}"
    assert _env_example()["RTC_SEARCH_INDEX_PREFIX"] == Settings().search_index_prefix


def test_airflow_is_configured_as_the_local_airflow() -> None:
    services = _resolved()["services"]
    airflow = services["airflow"]
    env = airflow["environment"]
    home = Path(_dockerfile_env()["RTC_HOME"])
    local = airflow_env(Settings(home=home))
    # Where the api-server listens and the repo's folders differ inside the container.
    differing = {
        "AIRFLOW__API__HOST",
        "AIRFLOW__API__BASE_URL",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__CORE__PLUGINS_FOLDER",
    }
    for key, value in local.items():
        if key.startswith("AIRFLOW") and key not in differing:
            assert str(env[key]) == value, key
    assert env["AIRFLOW__API__HOST"] == "0.0.0.0"
    bind_mounts = {
        target: source
        for source, target, *_ in (str(entry).split(":") for entry in airflow["volumes"])
        if source.startswith(".")
    }
    assert bind_mounts[env["AIRFLOW__CORE__DAGS_FOLDER"]] == "./dags"
    assert bind_mounts[env["AIRFLOW__CORE__PLUGINS_FOLDER"]] == "./plugins"
    script = "\n".join(airflow["command"])
    assert "ensure_admin_password()" in script and script.rstrip().endswith(
        "exec airflow standalone"
    )
    assert airflow["ports"] == [f"127.0.0.1:{Settings().airflow_port}:{env['AIRFLOW__API__PORT']}"]
    connection = json.loads(env["AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"])
    assert (connection["host"], connection["port"], connection["login"]) == (
        "elasticsearch",
        9200,
        "rtc_app",
    )
    assert connection["password"] == PLACEHOLDER_SECRET


def test_airflow_connections_are_the_ones_rtc_up_builds_from_the_settings(
    settings_of: SettingsOf,
) -> None:
    """kafka_default, elasticsearch_default and spark_default: what the container's own settings
    give through rtcrypto/stack/airflow_connections.py (as `rtc up` does)."""
    from rtcrypto.stack.airflow_connections import CONNECTION_IDS, airflow_connections

    env = _resolved()["services"]["airflow"]["environment"]
    expected = airflow_connections(settings_of("airflow"))
    for conn_id in CONNECTION_IDS:
        assert json.loads(env[f"AIRFLOW_CONN_{conn_id.upper()}"]) == expected[conn_id], conn_id


# --- secrets and .env.example ----------------------------------------------------------------------


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif node is not None:
        yield str(node)


def test_no_secret_is_written_in_the_compose_file_the_image_or_the_example() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if _is_secret(key):
                match = ONLY_INTERPOLATION.match(str(value))
                assert match, f"{name}: {key} must be ${{VAR}} from .env, not a literal"
                assert _is_secret(match["name"]), (name, key)
        gemini = [key for key in service.get("environment") or {} if "GEMINI_API" in key]
        assert not gemini or name == "trader", f"{name} gets the Gemini keys"
    for text in _strings(compose):
        for url in re.findall(r"[a-z]+://[^\s'\"]+", text):
            password = urlsplit(url.replace("${", "{")).password
            assert password is None or password.startswith("{"), f"password in {url}"
        for password in re.findall(r'"password"\s*:\s*"([^"]*)"', text):
            assert password.startswith(("${", "$$")), "a JSON password must come from .env"
        for credentials in re.findall(r"-u\s+\"?([^\s\"]+)", text):
            assert ":$$" in credentials, (
                f"curl credentials {credentials} must be a runtime variable"
            )
    for match in _interpolations(_text()):
        if _is_secret(match["braced"] or match["bare"]):
            assert match["op"] in (None, ":?", "?") or not match["arg"], match[0]
    for line in DOCKERFILE.read_text().splitlines():
        assert not (line.startswith(("ENV", "ARG")) and _is_secret(line)), line
    for name, value in _env_example().items():
        if _is_secret(name):
            assert value == "", f".env.example must leave {name} empty"
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and ".env" in (REPO / ".gitignore").read_text().splitlines()


def test_every_interpolated_variable_is_in_env_example_and_nothing_more() -> None:
    example = _env_example()
    used = {match["braced"] or match["bare"] for match in _interpolations(_text())}
    # the topology's values (defaults: the single topology's) are documented in .env.cluster
    topology = set(_env_cluster()) - set(example)
    assert sorted(used - set(example) - topology) == [], "document these in .env.example"
    assert sorted(set(example) - used) == [], ".env.example lists variables compose never reads"
    assert example["RTC_TRADING_MODE"] == "paper"
    # A default in the compose file is the value the example documents.
    for match in _interpolations(_text()):
        if match["op"] == ":-" and match["braced"] in example and example[match["braced"]]:
            assert match["arg"] == example[match["braced"]], match[0]
    # Passwords go unescaped into a URL and a JSON string: the example says which characters.
    assert "letters and digits only" in ENV_EXAMPLE.read_text()
    required = {m["braced"] for m in _interpolations(_text()) if m["op"] == ":?"}
    assert required == {"ELASTIC_PASSWORD", "KIBANA_PASSWORD", "SEARCH_APP_PASSWORD"}
    with pytest.raises(AssertionError, match="SEARCH_APP_PASSWORD is required"):
        _interpolate(_text(), {**_example_env_with_secrets(), "SEARCH_APP_PASSWORD": ""})


@pytest.mark.parametrize("where", ["own settings", "in the URL"])
def test_search_credentials_reach_elasticsearch_as_basic_auth(where: str) -> None:
    """Compose's RTC_SEARCH_USERNAME / _PASSWORD (or, as before, a user:password@ in
    RTC_SEARCH_URL) reach Elasticsearch as a basic-auth header, and the URL holds no password.

    Against a real local HTTP server answering as Elasticsearch does (product header), not a mock.
    """
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from rtcrypto.search.client import server_version

    seen: list[str | None] = []

    class Root(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            body = json.dumps({"version": {"number": Settings().search_version}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Root)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = f"127.0.0.1:{server.server_address[1]}"
        if where == "in the URL":
            settings = Settings(search_url=f"http://rtc_app:{PLACEHOLDER_SECRET}@{address}")
        else:
            settings = Settings(
                search_url=f"http://{address}",
                search_username="rtc_app",
                search_password=PLACEHOLDER_SECRET,
            )
        assert PLACEHOLDER_SECRET not in settings.search_url
        client = search_client(settings, max_retries=0)
        assert server_version(client) == Settings().search_version
        assert PLACEHOLDER_SECRET not in str(client.transport.node_pool.all())
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    expected = base64.b64encode(f"rtc_app:{PLACEHOLDER_SECRET}".encode()).decode()
    assert seen == [f"Basic {expected}"]


def test_kafka_init_sets_the_topic_bounds() -> None:
    """docker-compose's topics get the same bounds as `rtc stack up`'s (issue 10)."""
    from rtcrypto.stack.kafka import topic_configs

    script = "\n".join(_services()["kafka-init"]["command"])
    added = re.search(r"--add-config (\S+)", script)
    assert added, "kafka-init sets no topic configs"
    configs = dict(item.split("=", 1) for item in added[1].split(","))
    assert configs == topic_configs(Settings())


def test_every_container_log_is_rotated() -> None:
    """docker-compose's containers rotate their logs like `rtc up`'s processes (issue 10)."""
    for name, service in _services().items():
        logging = service.get("logging") or {}
        options = logging.get("options") or {}
        assert logging.get("driver") == "json-file", name
        assert options.get("max-size") and options.get("max-file"), name
