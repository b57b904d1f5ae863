"""``ServiceSupervisionHook``: the streaming services' health, lag, start, stop and restart.

A thin Airflow face over ``rtcrypto.supervision.services`` (the registry and the pure health judge), so
sensors and operators share one code path with ``rtc up`` and ``rtc status``. Settings come from
the task's environment (``RTC_*``, see ``rtcrypto/config.py``). Kafka lag reads use the Airflow
Kafka provider's ``KafkaAdminClientHook`` when ``kafka_config_id`` names a connection, else a
confluent-kafka ``AdminClient`` on ``RTC_KAFKA_BOOTSTRAP``; heartbeats are always read from
``RTC_KAFKA_BOOTSTRAP``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from rtcrypto.config import Settings
    from rtcrypto.supervision import Launch, RestartBackend, RestartRecord, ServiceHealth


class ServiceSupervisionHook(BaseHook):
    """Health, lag and lifecycle of the services in ``rtcrypto.supervision.services.SERVICES``.

    :param kafka_config_id: an Airflow Kafka connection (``{"bootstrap.servers": ...}`` in its
        extra) for consumer-group and end-offset reads; None uses ``RTC_KAFKA_BOOTSTRAP``.
    """

    hook_name = "RTC service supervision"

    def __init__(self, kafka_config_id: str | None = None) -> None:
        super().__init__()
        self.kafka_config_id = kafka_config_id
        self._admin: Any = None

    @property
    def settings(self) -> Settings:
        from rtcrypto.config import get_settings

        return get_settings()

    def get_conn(self) -> Any:
        """The Kafka admin client used for offsets (created once)."""
        if self._admin is None:
            if self.kafka_config_id:
                from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook

                self._admin = KafkaAdminClientHook(kafka_config_id=self.kafka_config_id).get_conn
            else:
                from rtcrypto.supervision import kafka_admin

                self._admin = kafka_admin(self.settings)
        return self._admin

    def health(self, service: str) -> ServiceHealth:
        """The supervisor's verdict on ``service`` (process, heartbeat age, lag)."""
        from rtcrypto import supervision as services

        spec = services.get_service(service)
        settings = self.settings
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
                services.get_service(service), self.settings, self.get_conn()
            )
        if not group_id or not topic:
            raise ValueError("give a service, or both group_id and topic")
        return services.consumer_group_lag(self.get_conn(), group_id, topic)

    def start(self, service: str) -> tuple[int | None, bool]:
        """Start ``service`` unless it runs; (pid, started by this call)."""
        from rtcrypto import supervision as services
        from rtcrypto.stack import process

        settings = self.settings
        spec = services.get_service(service)
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
