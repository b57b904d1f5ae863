"""The Airflow Connections of the platform, built from ``Settings`` and read back into them.

``rtc up`` (``rtcrypto/stack/airflow.py``) gives the local Airflow three connections as
``AIRFLOW_CONN_<ID>`` environment variables (JSON) of its processes, rebuilt from the settings on
every start, so ``Settings`` stay the single source of their values:

- ``kafka_default`` (conn_type ``kafka``): its extra is the librdkafka configuration of
  ``rtcrypto.kafka.clients`` (``bootstrap.servers`` and the security properties), the form the
  Kafka provider's hooks pass to confluent-kafka;
- ``elasticsearch_default`` (conn_type ``elasticsearch``): host, port, schema (http/https) of
  ``RTC_SEARCH_URL``; login/password of ``RTC_SEARCH_USERNAME`` / ``RTC_SEARCH_PASSWORD``;
- ``spark_default`` (conn_type ``spark``): host = ``RTC_SPARK_MASTER`` (``local[2]``),
  deploy mode ``client``.

The hooks in ``plugins/rtc_airflow`` read them back with :func:`settings_with_connection`, the
inverse, so a task that finds a connection (also one an operator edited) uses its values, and a
task without it uses the settings. Environment variables, not the command line: the search and
SASL passwords are in :func:`connection_env`'s values; never print or log them. Pure functions,
no Airflow import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from rtcrypto.config import Settings
from rtcrypto.kafka.clients import security_config

KAFKA_CONN_ID = "kafka_default"
SEARCH_CONN_ID = "elasticsearch_default"
SPARK_CONN_ID = "spark_default"
CONNECTION_IDS = (KAFKA_CONN_ID, SEARCH_CONN_ID, SPARK_CONN_ID)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def kafka_connection(settings: Settings) -> dict[str, Any]:
    """``kafka_default``: bootstrap servers and security properties in its extra."""
    extra = {"bootstrap.servers": settings.kafka_bootstrap, **security_config(settings)}
    return {"conn_type": "kafka", "extra": extra}


def search_connection(settings: Settings) -> dict[str, Any]:
    """``elasticsearch_default``: ``search_url`` split into host, port and schema; basic auth."""
    parts = urlsplit(settings.search_url)
    scheme = parts.scheme or "http"
    connection: dict[str, Any] = {
        "conn_type": "elasticsearch",
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or _DEFAULT_PORTS.get(scheme, 9200),
        "schema": scheme,
    }
    if settings.search_username is not None:
        connection["login"] = settings.search_username
        password = settings.search_password
        connection["password"] = password.get_secret_value() if password is not None else ""
    return connection


def spark_connection(settings: Settings) -> dict[str, Any]:
    """``spark_default``: the master (``local[2]``) in host, as the Spark provider reads it."""
    return {
        "conn_type": "spark",
        "host": settings.spark_master,
        "extra": {"deploy-mode": "client", "spark-binary": "spark-submit"},
    }


def airflow_connections(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every connection by id; the values may hold secrets (never log them)."""
    return {
        KAFKA_CONN_ID: kafka_connection(settings),
        SEARCH_CONN_ID: search_connection(settings),
        SPARK_CONN_ID: spark_connection(settings),
    }


def connection_env_name(conn_id: str) -> str:
    """``AIRFLOW_CONN_KAFKA_DEFAULT`` for ``kafka_default`` (Airflow's environment backend)."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def connection_env(settings: Settings) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables (JSON) for the Airflow processes' environment only: they hold
    the search and SASL passwords, so they are never printed, logged or put on a command line."""
    return {
        connection_env_name(conn_id): json.dumps(connection, sort_keys=True)
        for conn_id, connection in airflow_connections(settings).items()
    }


def _kafka_update(connection: Mapping[str, Any]) -> dict[str, Any]:
    extra = connection.get("extra") or {}
    update: dict[str, Any] = {}
    if extra.get("bootstrap.servers"):
        update["kafka_bootstrap"] = str(extra["bootstrap.servers"])
    if extra.get("security.protocol"):
        update["kafka_security_protocol"] = str(extra["security.protocol"]).upper()
    for key, field in (("sasl.mechanism", "kafka_sasl_mechanism"), ("sasl.username", None)):
        if extra.get(key):
            update[field or "kafka_sasl_username"] = str(extra[key])
    if extra.get("sasl.password"):
        update["kafka_sasl_password"] = SecretStr(str(extra["sasl.password"]))
    if extra.get("ssl.ca.location"):
        update["kafka_ssl_ca_location"] = str(extra["ssl.ca.location"])
    return update


def _search_update(connection: Mapping[str, Any]) -> dict[str, Any]:
    if not connection.get("host"):
        return {}
    scheme = connection.get("schema") or "http"
    port = connection.get("port") or 9200
    update: dict[str, Any] = {"search_url": f"{scheme}://{connection['host']}:{port}"}
    if connection.get("login"):
        update["search_username"] = str(connection["login"])
        update["search_password"] = SecretStr(str(connection.get("password") or ""))
    return update


def _spark_update(connection: Mapping[str, Any]) -> dict[str, Any]:
    host = connection.get("host")
    if not host:
        return {}
    port = connection.get("port")
    return {"spark_master": f"{host}:{port}" if port else str(host)}


_UPDATES = {
    KAFKA_CONN_ID: _kafka_update,
    SEARCH_CONN_ID: _search_update,
    SPARK_CONN_ID: _spark_update,
}


def settings_with_connection(
    settings: Settings, kind: str, connection: Mapping[str, Any] | None
) -> Settings:
    """``settings`` with the values of one connection in place (the inverse of the builders).

    ``kind`` is one of :data:`CONNECTION_IDS` (which builder the connection follows, whatever its
    id); ``connection`` is a dict with conn_type, host, port, schema, login, password and extra
    (a dict). None or an empty connection leaves ``settings`` as they are. The result is
    validated again, so a bad value in a connection is a ``ValueError`` naming the setting.
    """
    if kind not in _UPDATES:
        raise ValueError(f"unknown connection kind {kind!r}; one of {', '.join(_UPDATES)}")
    update = _UPDATES[kind](connection or {})
    if not update:
        return settings
    values = {name: getattr(settings, name) for name in type(settings).model_fields}
    return type(settings).model_validate({**values, **update})
