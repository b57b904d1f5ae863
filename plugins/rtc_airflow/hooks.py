"""Hooks of the platform: service supervision, Elasticsearch, and the Airflow connections.

``ServiceSupervisionHook`` is a thin Airflow face over ``rtcrypto.supervision`` (the
registry and the pure health judge), so sensors and operators share one code path with ``rtc up``
and ``rtc status``. Settings come from the task's environment (``RTC_*``, see
``rtcrypto/config.py``), with the values of the Airflow connection ``kafka_default`` in place
when it exists (``rtc up`` and docker-compose create it from the same settings:
``rtcrypto/stack/airflow_connections.py``): its bootstrap and security serve the heartbeat
reads, and the Kafka provider's ``KafkaAdminClientHook`` on it reads the offsets. Without the
connection, ``RTC_KAFKA_BOOTSTRAP``. ``SearchHook`` does the same for Elasticsearch
(``elasticsearch_default``, else ``RTC_SEARCH_URL``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    from rtcrypto.config import Settings
    from rtcrypto.supervision import Launch, RestartBackend, RestartRecord, ServiceHealth


KAFKA_CONN_ID = "kafka_default"  # = rtcrypto.stack.airflow_connections.KAFKA_CONN_ID
SEARCH_CONN_ID = "elasticsearch_default"  # = ...SEARCH_CONN_ID (a unit test checks both)


def find_connection(conn_id: str) -> dict[str, Any] | None:
    """The Airflow connection ``conn_id`` as a dict (conn_type, host, port, schema, login,
    password, extra as a dict), or None when it is not defined. Holds secrets: never log it."""
    try:
        connection = BaseHook.get_connection(conn_id)
    except Exception:  # AirflowNotFoundException (or no Airflow context): not defined
        return None
    return {
        "conn_type": connection.conn_type,
        "host": connection.host,
        "port": connection.port,
        "schema": connection.schema,
        "login": connection.login,
        "password": connection.password,
        "extra": connection.extra_dejson,
    }


def settings_from_connection(kind: str, conn_id: str | None) -> tuple[Settings, str]:
    """(the task's settings with connection ``conn_id``'s values in place, where they came from).

    ``kind`` names the connection's form (``kafka_default``, ``elasticsearch_default`` or
    ``spark_default``); without ``conn_id`` or without that connection, the settings as they are.
    """
    from rtcrypto.config import get_settings
    from rtcrypto.stack.airflow_connections import settings_with_connection

    settings = get_settings()
    connection = find_connection(conn_id) if conn_id else None
    if connection is None:
        return settings, "settings (RTC_*)"
    return settings_with_connection(settings, kind, connection), f"Airflow connection {conn_id}"


class _ConnectionSettings:
    """The task's settings with one Airflow connection's values in place, read once.

    A hook sets ``_connection_kind`` (which form: ``kafka_default`` or ``elasticsearch_default``)
    and ``_connection_id`` (the connection to read; None: the settings alone)."""

    _connection_kind: str
    _connection_id: str | None
    _settings: Settings | None = None
    origin = ""

    @property
    def settings(self) -> Settings:
        """The task's settings with the connection's values in place (read once)."""
        if self._settings is None:
            self._settings, self.origin = settings_from_connection(
                self._connection_kind, self._connection_id
            )
        return self._settings


class ServiceSupervisionHook(_ConnectionSettings, BaseHook):
    """Health, lag and lifecycle of the services in ``rtcrypto.supervision.SERVICES``.

    :param kafka_config_id: an Airflow Kafka connection (``{"bootstrap.servers": ...}`` and the
        security properties in its extra) for heartbeat, consumer-group and end-offset reads;
        when it does not exist (or None), ``RTC_KAFKA_BOOTSTRAP``.
    """

    hook_name = "RTC service supervision"

    def __init__(self, kafka_config_id: str | None = KAFKA_CONN_ID) -> None:
        super().__init__()
        self.kafka_config_id = kafka_config_id
        self._connection_kind, self._connection_id = KAFKA_CONN_ID, kafka_config_id
        self._admin: Any = None

    def get_conn(self) -> Any:
        """The Kafka admin client used for offsets (created once)."""
        if self._admin is None:
            settings = self.settings  # resolves the connection, if any
            if self.origin.startswith("Airflow connection"):
                from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook

                self._admin = KafkaAdminClientHook(kafka_config_id=self.kafka_config_id).get_conn
            else:
                from rtcrypto.supervision import kafka_admin

                self._admin = kafka_admin(settings)
        return self._admin

    def health(self, service: str) -> ServiceHealth:
        """The supervisor's verdict on ``service`` (process, heartbeat age, lag)."""
        from rtcrypto import supervision as services

        settings = self.settings
        spec = services.get_service(service, settings)
        heartbeats = services.read_latest_heartbeats(settings)
        admin = self.get_conn() if heartbeats is not None else None
        return services.check_health(spec, settings, heartbeats=heartbeats, admin=admin)

    def lag_records(
        self, *, service: str | None = None, group_id: str | None = None, topic: str | None = None
    ) -> int | None:
        """Records behind: of ``service`` (its consumer group or checkpoint), or of ``group_id``
        on ``topic``. None while nothing is committed (or planned) yet."""
        from rtcrypto import supervision as services

        if service is not None:
            return services.service_lag_records(
                services.get_service(service, self.settings), self.settings, self.get_conn()
            )
        if not group_id or not topic:
            raise ValueError("give a service, or both group_id and topic")
        return services.consumer_group_lag(self.get_conn(), group_id, topic)

    def lag_targets(self) -> list[dict[str, Any]]:
        """``KafkaLagSensor`` arguments for each enabled service that reads a topic (consumer
        group or checkpoint) and runs now: ``{"service": name, "max_lag": ...}``, the limit
        being ``supervisor_max_lag_records``. A stopped service has no lag to wait for."""
        from rtcrypto import supervision as services
        from rtcrypto.stack import process

        settings = self.settings
        return [
            {"service": spec.name, "max_lag": settings.supervisor_max_lag_records}
            for spec in services.enabled_services(settings)
            if spec.input_topic is not None  # the ingest's lag is event time, not a topic
            and spec.lag_source is not services.LagSource.none
            and process.is_running(spec.name, settings)
        ]

    def start(self, service: str) -> tuple[int | None, bool]:
        """Start ``service`` unless it runs; (pid, started by this call)."""
        from rtcrypto import supervision as services
        from rtcrypto.stack import process

        settings = self.settings
        spec = services.get_service(service, settings)
        if process.is_running(service, settings):
            return process.read_pid(service, settings), False
        return services.start_service(spec, settings), True

    def stop(self, service: str, timeout_s: float = 30.0) -> bool:
        """Stop ``service``; True if it was running. The supervisor leaves it stopped."""
        from rtcrypto import supervision as services

        return services.stop_service(service, self.settings, timeout_s=timeout_s)

    def restart(
        self,
        service: str,
        reason: str,
        *,
        backend: RestartBackend,
        launch: Launch | None = None,
        compose_file: Path | None = None,
    ) -> RestartRecord:
        """Restart ``service`` and record it (log, journal, ``rtc-restarts`` when ES answers)."""
        from rtcrypto import supervision as services

        return services.restart_service(
            service,
            reason,
            self.settings,
            backend=backend,
            launch=launch,
            compose_file=compose_file,
        )


class SearchHook(_ConnectionSettings, BaseHook):
    """An Elasticsearch client from the connection ``elasticsearch_default`` (host, port,
    schema = http/https, login/password), else ``RTC_SEARCH_URL`` and its credentials.

    The client is ``rtcrypto.search.search_client`` on the task's settings with the connection's
    values in place, so retries, timeouts and basic auth are the project's.
    """

    hook_name = "RTC Elasticsearch"
    conn_name_attr = "search_conn_id"
    default_conn_name = SEARCH_CONN_ID
    conn_type = "elasticsearch"

    def __init__(self, search_conn_id: str | None = SEARCH_CONN_ID) -> None:
        super().__init__()
        self.search_conn_id = search_conn_id
        self._connection_kind, self._connection_id = SEARCH_CONN_ID, search_conn_id

    def hosts_and_arguments(self) -> tuple[list[str], dict[str, Any]]:
        """(hosts without userinfo, fit to log; client arguments, which may hold a password:
        never log them), for clients built elsewhere (the provider's ``ElasticsearchPythonHook``)."""
        from rtcrypto.redact import redact_url

        settings = self.settings
        arguments: dict[str, Any] = {}
        if settings.search_username is not None:
            password = settings.search_password
            secret = password.get_secret_value() if password is not None else ""
            arguments["basic_auth"] = (settings.search_username, secret)
        return [redact_url(settings.search_url)], arguments

    def get_conn(self, **options: Any) -> Elasticsearch:
        """A new client (sends nothing yet); the caller closes it."""
        from rtcrypto.search import search_client

        return search_client(self.settings, **options)
