"""streaming_stop (manual): stop the chosen streaming services.

Param ``services``: names from the registry (``rtcrypto/supervision/services.py``); empty stops all. Each
gets SIGTERM (its process group), then SIGKILL after 30 s. Its pid file goes away, so
``streaming_supervisor`` sees it as stopped on purpose and does not restart it; start it again
with ``streaming_start`` or ``rtc up``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task
from rtc_airflow.operators import ServiceStopOperator

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "rtcrypto",
    "retries": 1,
    "retry_delay": timedelta(seconds=30),
}


@dag(
    dag_id="streaming_stop",
    description="Stop the chosen streaming services (default: all)",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["rtcrypto", "streaming", "manual"],
    doc_md=__doc__,
    params={
        "services": Param(
            [],
            type="array",
            # names of the registry (rtcrypto/supervision/services.py; the task checks them against it)
            items={"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,31}$"},
            maxItems=16,
            uniqueItems=True,
            title="Services",
            description="simulator, ingest, liquidity, trader; empty: all.",
        ),
    },
)
def streaming_stop() -> None:
    @task(execution_timeout=timedelta(minutes=1))
    def select_services(params: dict[str, Any] | None = None) -> list[str]:
        """The chosen names, checked against the registry; empty: every service."""
        from rtcrypto.config import get_settings
        from rtcrypto.supervision import select_services as select
        from rtcrypto.supervision import service_names

        chosen = (params or {}).get("services") or service_names()
        return select(chosen, get_settings())

    ServiceStopOperator.partial(task_id="stop", execution_timeout=timedelta(minutes=2)).expand(
        service=select_services()
    )


streaming_stop()
