"""docker-compose.yml cannot run here (no Docker engine): keep it consistent with the settings."""

from __future__ import annotations

from pathlib import Path

import yaml

from rtcrypto.config import Settings, Topics

REPO = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_has_the_spine_services_with_health_checks() -> None:
    services = _compose()["services"]
    assert {"kafka", "kafka-init", "simulator", "ingest", "liquidity"} <= set(services)
    assert {"elasticsearch", "kibana", "airflow"} <= set(services)
    assert services["elasticsearch"]["image"].endswith(Settings().search_version)
    assert services["elasticsearch"]["environment"]["xpack.security.enabled"] == "true"
    assert "ELASTIC_PASSWORD" in services["elasticsearch"]["environment"]["ELASTIC_PASSWORD"]
    assert "healthcheck" in services["kafka"] and "healthcheck" in services["simulator"]
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["kafka"]["image"].endswith(Settings().kafka_version)


def test_compose_topics_and_variables_match_the_settings() -> None:
    compose = _compose()
    defaults = Topics()
    init_script = "\n".join(compose["services"]["kafka-init"]["command"])
    for topic in defaults.all():
        assert topic in init_script, topic
    env = compose["services"]["ingest"]["environment"]
    for field in Topics.model_fields:
        assert env[f"RTC_TOPIC_{field.upper()}"] == getattr(defaults, field)
    known = {f"RTC_{name.upper()}" for name in Settings.model_fields} | {
        f"RTC_TOPIC_{name.upper()}" for name in Topics.model_fields
    }
    for service in compose["services"].values():
        for name in service.get("environment") or {}:
            if name.startswith("RTC_"):
                assert name in known, f"{name} is not a setting in rtcrypto/config.py"


def test_compose_commands_name_real_entry_points() -> None:
    services = _compose()["services"]
    assert services["ingest"]["command"][:3] == ["python", "-m", "streaming.ingest"]
    assert services["simulator"]["command"][:3] == ["python", "-m", "streaming.simulator"]
    assert (REPO / "streaming" / "ingest.py").exists() and (
        REPO / "streaming" / "simulator.py"
    ).exists()
    assert services["liquidity"]["command"] == ["rtc", "liquidity", "run"]
