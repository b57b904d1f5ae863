"""streaming_supervisor: every 5 minutes, check each streaming service and restart a dead or
stuck one.

For each service of the registry (``rtcrypto/supervision/services.py``: simulator, ingest, the Spark
liquidity job, the Spark bars job, the trader; the services this configuration runs), ``check_health``
(``ServiceHeartbeatSensor`` in watch mode) reads the process state, the newest heartbeat on
``service.heartbeat.v1`` and the lag, and returns the verdict: healthy, stale (no heartbeat for
``supervisor_stale_heartbeats`` x ``heartbeat_interval_s``), dead (pid file but no process),
lagging, stopped (never started, or stopped on purpose by ``rtc down`` / ``streaming_stop``) or
unknown (Kafka does not answer). ``restart_if_needed`` (``ServiceRestartOperator``) restarts a
dead or stale service and is skipped otherwise; every restart is a log line, a line in
``<RTC_HOME>/run/restarts.jsonl`` and an ``rtc-restarts`` document when Elasticsearch answers.
After ``supervisor_max_restarts_per_hour`` restarts of one service in an hour it stops
restarting it and fails (the alert). ``report`` logs one line per service.

Params: ``backend`` (``local`` process manager, or ``compose`` for the docker-compose stack) and
``spark_backend`` (``local``, or ``spark_submit``: the command built by the Spark provider's hook
from the connection ``spark_default``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, TriggerRule, dag, task
from rtc_airflow.operators import ServiceRestartOperator
from rtc_airflow.sensors import ServiceHeartbeatSensor

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "rtcrypto",
    "retries": 1,
    "retry_delay": timedelta(minutes=1),
}


@dag(
    dag_id="streaming_supervisor",
    description="Check each streaming service's heartbeat, process and lag; restart dead ones",
    schedule="*/5 * * * *",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    is_paused_upon_creation=False,  # supervision starts with Airflow, without a click
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=10),
    default_args=DEFAULT_ARGS,
    tags=["rtcrypto", "streaming", "supervision"],
    doc_md=__doc__,
    params={
        "backend": Param(
            "local",
            type="string",
            enum=["local", "compose"],
            title="Restart backend",
            description="local: the process manager (rtc up); compose: docker compose restart.",
        ),
        "spark_backend": Param(
            "local",
            type="string",
            enum=["local", "spark_submit"],
            title="Spark job restart backend",
            description="local: rtcrypto.spark.submit's command; spark_submit: SparkSubmitHook's, "
            "master from the Airflow connection spark_default.",
        ),
    },
)
def streaming_supervisor() -> None:
    @task(execution_timeout=timedelta(minutes=1))
    def list_services() -> list[str]:
        """The registry's services this configuration runs, in start order."""
        from rtcrypto.config import get_settings
        from rtcrypto.supervision import enabled_services

        return [spec.name for spec in enabled_services(get_settings())]

    check = ServiceHeartbeatSensor.partial(
        task_id="check_health",
        watch=True,
        execution_timeout=timedelta(minutes=2),
    ).expand(service=list_services())

    restart = ServiceRestartOperator.partial(
        task_id="restart_if_needed",
        backend="{{ params.backend }}",
        spark_backend="{{ params.spark_backend }}",
        execution_timeout=timedelta(minutes=4),
    ).expand(health=check.output)

    @task(trigger_rule=TriggerRule.ALL_DONE, execution_timeout=timedelta(minutes=1))
    def report(verdicts: list[dict[str, Any]]) -> dict[str, str]:
        """One log line per service: state, reason, restarts so far (from the journal)."""
        import logging

        from rtcrypto.config import get_settings
        from rtcrypto.supervision import read_journal, restart_counts

        log = logging.getLogger(__name__)
        counts = restart_counts(read_journal(get_settings()))
        for verdict in verdicts:
            log.info(
                "%-10s %-8s restarts=%d %s",
                verdict["service"],
                verdict["state"],
                counts.get(verdict["service"], 0),
                verdict["reason"],
            )
        return {verdict["service"]: verdict["state"] for verdict in verdicts}

    restart >> report(check.output)


streaming_supervisor()
