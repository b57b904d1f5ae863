"""streaming_stop (manual): stop the chosen streaming services.

Param ``services``: names from the registry (``rtcrypto/supervision/registry.py``); empty stops all. Each
gets SIGTERM (its process group), then SIGKILL after 30 s. Its pid file goes away, so
``streaming_supervisor`` sees it as stopped on purpose and does not restart it; start it again
with ``streaming_start`` or ``rtc up``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import dag, task
from rtc_airflow.operators import ServiceStopOperator
from rtc_airflow.service_dags import MANUAL_SERVICE_DAG, services_param


@dag(
    dag_id="streaming_stop",
    description="Stop the chosen streaming services (default: all)",
    doc_md=__doc__,
    params=services_param(),
    **MANUAL_SERVICE_DAG,
)
def streaming_stop() -> None:
    @task(execution_timeout=timedelta(minutes=1))
    def select_services(params: dict[str, Any] | None = None) -> list[str]:
        """The chosen names, checked against the registry; empty: every service."""
        from rtcrypto.config import get_settings
        from rtcrypto.supervision import select_services as select
        from rtcrypto.supervision import service_names

        settings = get_settings()
        chosen = (params or {}).get("services") or service_names(settings)
        return select(chosen, settings)

    ServiceStopOperator.partial(task_id="stop", execution_timeout=timedelta(minutes=2)).expand(
        service=select_services()
    )


streaming_stop()
