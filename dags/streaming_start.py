"""streaming_start (manual): start the chosen streaming services through the process manager.

Param ``services``: names from the registry (``rtcrypto/supervision/registry.py``: simulator, ingest,
liquidity, trader); empty starts every service this configuration runs. A running service is
left alone. The services start in parallel; the ingest reconnects until the simulator answers.
They run detached (own process group, pid files under ``<RTC_HOME>/run``), exactly as ``rtc up``
starts them, and ``streaming_supervisor`` watches them from then on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import dag, task
from rtc_airflow.operators import ServiceStartOperator
from rtc_airflow.service_dags import MANUAL_SERVICE_DAG, services_param


@dag(
    dag_id="streaming_start",
    description="Start the chosen streaming services (default: all)",
    doc_md=__doc__,
    params=services_param(),
    **MANUAL_SERVICE_DAG,
)
def streaming_start() -> None:
    @task(execution_timeout=timedelta(minutes=1))
    def select_services(params: dict[str, Any] | None = None) -> list[str]:
        """The chosen names, checked against the registry; empty: every enabled service."""
        from rtcrypto.config import get_settings
        from rtcrypto.supervision import select_services as select

        return select((params or {}).get("services") or [], get_settings())

    ServiceStartOperator.partial(task_id="start", execution_timeout=timedelta(minutes=5)).expand(
        service=select_services()
    )


streaming_start()
