"""Sensors on the streaming services: heartbeat health and Kafka consumer lag.

Both default to ``mode="reschedule"``: between pokes the task gives its worker slot back (two
slots on this machine). They are not deferrable: a poke is a blocking Kafka read (kafka-python
for the heartbeats, librdkafka for offsets) plus ``/proc`` and pid-file reads of the machine
the services run on. A trigger would have to run those in threads inside the triggerer and would
then depend on the triggerer sharing that machine; at a poke interval of 30-60 s reschedule frees
the slot just as well. See the README's Supervision section.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from rtc_airflow.hooks import ServiceSupervisionHook


class ServiceHeartbeatSensor(BaseSensorOperator):
    """Waits until ``service`` is healthy (process alive, fresh heartbeat, lag within limits).

    With ``watch=True`` the first poke returns whatever the verdict is (its XCom is the verdict
    as a dict: service, state, reason, pid, heartbeat_age_s, lag_records, lag_s), so a
    downstream task can branch on it; that is how ``streaming_supervisor`` uses it.

    :param service: a name from ``rtcrypto.supervision.SERVICES`` (templated).
    :param watch: report the verdict at once instead of waiting for ``healthy``.
    :param kafka_config_id: Airflow Kafka connection for heartbeat and offset reads
        (``kafka_default``, created by ``rtc up``); missing or None: RTC_KAFKA_BOOTSTRAP.
    """

    template_fields: Sequence[str] = ("service",)
    ui_color = "#d8f3dc"

    def __init__(
        self,
        *,
        service: str,
        watch: bool = False,
        kafka_config_id: str | None = "kafka_default",
        mode: str = "reschedule",
        poke_interval: timedelta | float = 30,
        timeout: timedelta | float | None = timedelta(minutes=10),
        **kwargs: Any,
    ) -> None:
        super().__init__(mode=mode, poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.service = service
        self.watch = watch
        self.kafka_config_id = kafka_config_id

    def poke(self, context: Any) -> PokeReturnValue:
        health = ServiceSupervisionHook(kafka_config_id=self.kafka_config_id).health(self.service)
        self.log.info(
            "service=%s state=%s pid=%s heartbeat_age_s=%s lag_records=%s lag_s=%s reason=%s",
            health.service,
            health.state.value,
            health.pid,
            health.heartbeat_age_s,
            health.lag_records,
            health.lag_s,
            health.reason,
        )
        done = self.watch or health.state.value == "healthy"
        return PokeReturnValue(is_done=done, xcom_value=health.as_dict() if done else None)


class KafkaLagSensor(BaseSensorOperator):
    """Waits until a consumer's lag on its input topic is at most ``max_lag`` records.

    Either ``service`` (its consumer group, or for the Spark job its checkpoint's offsets) or
    ``group_id`` and ``topic``. Offsets come from the Airflow Kafka provider's
    ``KafkaAdminClientHook`` on the connection ``kafka_config_id`` (``kafka_default``, created by
    ``rtc up``) when it exists, else from RTC_KAFKA_BOOTSTRAP.
    While nothing is committed yet the lag is unknown and the sensor keeps waiting.
    """

    template_fields: Sequence[str] = ("service", "group_id", "topic")
    ui_color = "#e9f5db"

    def __init__(
        self,
        *,
        max_lag: int,
        service: str | None = None,
        group_id: str | None = None,
        topic: str | None = None,
        kafka_config_id: str | None = "kafka_default",
        mode: str = "reschedule",
        poke_interval: timedelta | float = 60,
        timeout: timedelta | float | None = timedelta(minutes=30),
        **kwargs: Any,
    ) -> None:
        if service is None and not (group_id and topic):
            raise ValueError("KafkaLagSensor needs a service, or both group_id and topic")
        if max_lag < 0:
            raise ValueError(f"max_lag must be >= 0, got {max_lag}")
        super().__init__(mode=mode, poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.max_lag = max_lag
        self.service = service
        self.group_id = group_id
        self.topic = topic
        self.kafka_config_id = kafka_config_id

    def poke(self, context: Any) -> PokeReturnValue:
        hook = ServiceSupervisionHook(kafka_config_id=self.kafka_config_id)
        lag = hook.lag_records(service=self.service, group_id=self.group_id, topic=self.topic)
        what = self.service or f"group {self.group_id} on {self.topic}"
        if lag is None:
            self.log.info("%s: lag unknown (no committed offsets yet)", what)
            return PokeReturnValue(is_done=False)
        self.log.info("%s: %d records behind (limit %d)", what, lag, self.max_lag)
        if lag > self.max_lag:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value={"lag_records": lag})
