"""Operators that start, stop and restart the streaming services.

``ServiceRestartOperator`` restarts through a backend chosen explicitly:

- ``local`` (default): the process manager (``rtcrypto/stack/process.py``): stop by pid, start
  the registry's command (the same as ``rtc up``), pid files under ``RTC_HOME/run``.
- ``spark_submit`` (the Spark job only): the spark-submit command is built by the Airflow Spark
  provider's ``SparkSubmitHook`` from an Airflow connection (``spark_conn_id``: master,
  deploy mode), and the process manager still owns the process. Not ``SparkSubmitOperator``
  itself: its ``submit()`` blocks for the job's lifetime (forever, for a streaming job), holding
  a worker slot, and kills the job when the task ends. The hook's command builder is a private
  method of provider 6.3.4 (pinned), so this backend is checked by a unit test.
- ``compose``: ``docker compose restart <service>`` for the docker-compose stack (built here,
  never run on this project's machines: there is no Docker engine).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from rtc_airflow.hooks import ServiceSupervisionHook

if TYPE_CHECKING:
    from rtcrypto.config import Settings
    from rtcrypto.supervision import Launch

DEFAULT_RESTART_STATES = ("dead", "stale")


def spark_submit_launch(settings: Settings, spark_conn_id: str) -> Launch:
    """The liquidity job's launch with its spark-submit command built by ``SparkSubmitHook``.

    The master and deploy mode come from the Airflow connection ``spark_conn_id`` (for this
    machine: conn_type ``spark``, host ``local[2]``); jars, Spark conf, job script and arguments
    from the project, as in ``rtcrypto.spark.submit.build_submit_command``. Raises
    ``AirflowFailException`` if the connection does not exist (the hook would fall back to YARN).
    """
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
    from airflow.sdk import BaseHook

    from rtcrypto import supervision as services
    from rtcrypto.spark import submit as spark

    try:
        BaseHook.get_connection(spark_conn_id)
    except Exception as error:  # not defined: say what to add instead of submitting to YARN
        raise AirflowFailException(
            f"the spark_submit backend needs the Airflow connection {spark_conn_id!r} "
            "(conn_type spark, host = the master, e.g. local[2]); add it, or use backend local"
        ) from error
    config = spark.LiquidityJobConfig.from_settings(settings)
    hook = SparkSubmitHook(
        conn_id=spark_conn_id,
        conf=spark.submit_conf(config),
        jars=",".join(str(jar) for jar in spark.kafka_connector_jars(settings)),
        name=spark.LIQUIDITY_PROCESS,
        application_args=config.job_args(),
        spark_binary="spark-submit",
    )
    command = hook._build_spark_submit_command(str(spark.liquidity_job_script()))
    # The hook names the binary bare; use this environment's (pyspark's, or SPARK_HOME's).
    command[0] = str(spark.find_spark_submit())
    return services.Launch(
        command=tuple(str(part) for part in command),
        env={**services.settings_env(settings), **spark.env_additions()},
    )


class ServiceRestartOperator(BaseOperator):
    """Restart one service and record it (log line, journal, ``rtc-restarts`` document).

    Given ``health`` (a verdict dict from ``ServiceHeartbeatSensor(watch=True)``), it restarts
    only when the state is in ``restart_states`` (dead or stale by default) and is skipped
    otherwise; the reason recorded is the state. Without ``health`` it always restarts
    (reason ``manual`` unless ``reason`` is given). Returns the restart record as a dict.

    :param service: registry name; may be omitted when ``health`` carries it.
    :param backend: ``local`` | ``compose`` (templated).
    :param spark_backend: for the Spark job only: ``local`` | ``spark_submit`` (templated).
    :param spark_conn_id: Airflow connection of the ``spark_submit`` backend.
    :param compose_file: docker-compose file of the ``compose`` backend (default: Docker's own
        lookup in the worker's working directory).
    """

    template_fields: Sequence[str] = ("service", "reason", "backend", "spark_backend")
    ui_color = "#ffe8cc"

    def __init__(
        self,
        *,
        service: str | None = None,
        health: dict[str, Any] | None = None,
        backend: str = "local",
        spark_backend: str = "local",
        spark_conn_id: str = "spark_default",
        compose_file: str | None = None,
        reason: str | None = None,
        restart_states: Sequence[str] = DEFAULT_RESTART_STATES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.health = health
        self.backend = backend
        self.spark_backend = spark_backend
        self.spark_conn_id = spark_conn_id
        self.compose_file = compose_file
        self.reason = reason
        self.restart_states = tuple(restart_states)

    def execute(self, context: Any) -> dict[str, Any]:
        from rtcrypto import supervision as services

        service = self.service or (self.health or {}).get("service")
        if not service:
            raise AirflowFailException("ServiceRestartOperator needs a service (or a health dict)")
        reason = self.reason
        if self.health is not None:
            verdict = services.ServiceHealth.from_dict(self.health)
            if verdict.state.value not in self.restart_states:
                raise AirflowSkipException(
                    f"{service} is {verdict.state.value} ({verdict.reason}): no restart"
                )
            reason = reason or verdict.state.value
        hook = ServiceSupervisionHook()
        backend = self._backend_for(service)
        launch = None
        if backend is services.RestartBackend.spark_submit:
            launch = spark_submit_launch(hook.settings, self.spark_conn_id)
        try:
            record = hook.restart(
                service,
                reason or "manual",
                backend=backend,
                launch=launch,
                compose_file=Path(self.compose_file) if self.compose_file else None,
            )
        except services.RestartLimitError as error:
            raise AirflowFailException(str(error)) from error  # no retry: a person must look
        self.log.info(
            "restarted %s (%s): pid %s -> %s, restart number %d, backend %s",
            record.service,
            record.reason,
            record.old_pid,
            record.new_pid,
            record.count,
            record.backend,
        )
        return record.as_dict()

    def _backend_for(self, service: str) -> Any:
        from rtcrypto import supervision as services

        try:
            backend = services.RestartBackend(self.backend)
            spark_backend = services.RestartBackend(self.spark_backend)
        except ValueError as error:
            raise AirflowFailException(
                f"unknown restart backend: {error}; use local, compose or spark_submit"
            ) from error
        if backend is services.RestartBackend.spark_submit:
            raise AirflowFailException("spark_submit is a spark_backend (for the Spark job only)")
        if spark_backend is services.RestartBackend.compose:
            raise AirflowFailException("spark_backend is local or spark_submit")
        if service == services.LIQUIDITY and backend is services.RestartBackend.local:
            return spark_backend
        return backend


class ServiceStartOperator(BaseOperator):
    """Start one service through the process manager unless it runs; returns its pid."""

    template_fields: Sequence[str] = ("service",)
    ui_color = "#d0ebff"

    def __init__(self, *, service: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service

    def execute(self, context: Any) -> int | None:
        pid, started = ServiceSupervisionHook().start(self.service)
        self.log.info("%s %s (pid %s)", self.service, "started" if started else "already ran", pid)
        return pid


class ServiceStopOperator(BaseOperator):
    """Stop one service (SIGTERM, SIGKILL after ``timeout_s``); the supervisor leaves it stopped."""

    template_fields: Sequence[str] = ("service",)
    ui_color = "#ffe3e3"

    def __init__(self, *, service: str, timeout_s: float = 30.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.timeout_s = timeout_s

    def execute(self, context: Any) -> bool:
        stopped = ServiceSupervisionHook().stop(self.service, timeout_s=self.timeout_s)
        self.log.info("%s %s", self.service, "stopped" if stopped else "was not running")
        return stopped
