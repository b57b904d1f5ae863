"""search_provision: Elasticsearch index templates and indices, then Kibana's saved objects.

``ensure_templates`` creates or updates the index templates of every ``<prefix>-*`` index
(``rtcrypto.search.indices``: explicit strict mappings, ``@timestamp`` everywhere) and creates
the concrete indices; a rerun changes nothing and says so. The client comes from the Elasticsearch
provider's ``ElasticsearchPythonHook``; hosts from ``SearchHook`` (plugins): the Airflow connection
``elasticsearch_default`` when it exists (host, port, schema = http/https, login/password; ``rtc
up`` and docker-compose create it from the settings), else ``RTC_SEARCH_URL``.

``import_kibana_objects`` imports ``rtcrypto/search/kibana/trade_review.ndjson`` (data views,
the three charts, the orders table, the "Trade review" dashboard) with overwrite, when
``RTC_KIBANA_URL`` is set (``RTC_KIBANA_USERNAME`` / ``RTC_KIBANA_PASSWORD``, never logged);
without it the task is skipped and its log says why. Daily and on demand: both steps are
idempotent, so the daily run only repairs drift (a deleted index, an edited template).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

ELASTICSEARCH_CONNECTION_ID = "elasticsearch_default"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "rtcrypto",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
}


def _elasticsearch_hosts() -> tuple[list[str], dict[str, Any], str]:
    """(hosts, client arguments, where they came from): ``SearchHook`` on the Airflow connection
    ``elasticsearch_default``, else settings. The hosts carry no userinfo (fit to log); the
    client arguments may hold a password: never log them.
    """
    from rtc_airflow.hooks import SearchHook

    hook = SearchHook(ELASTICSEARCH_CONNECTION_ID)
    hosts, arguments = hook.hosts_and_arguments()
    origin = hook.origin if hook.origin.startswith("Airflow") else "RTC_SEARCH_URL"
    return hosts, arguments, origin


@dag(
    dag_id="search_provision",
    description="Elasticsearch index templates and indices; Kibana's Trade review objects",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    is_paused_upon_creation=False,  # runs on its schedule without a click
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["rtcrypto", "search", "kibana"],
    doc_md=__doc__,
)
def search_provision() -> None:
    @task(execution_timeout=timedelta(minutes=10))
    def ensure_templates() -> dict[str, Any]:
        """Create or update the index templates and indices; return what changed (names only)."""
        import logging

        from airflow.providers.elasticsearch.hooks.elasticsearch import ElasticsearchPythonHook

        from rtcrypto.config import get_settings
        from rtcrypto.search import indices
        from rtcrypto.search.client import ensure_compatible

        log = logging.getLogger(__name__)
        settings = get_settings()
        hosts, arguments, origin = _elasticsearch_hosts()
        arguments.setdefault("request_timeout", 60)
        client = ElasticsearchPythonHook(hosts=hosts, es_conn_args=arguments).get_conn
        try:
            version = ensure_compatible(client)
            log.info("Elasticsearch %s at %s (from %s)", version, ", ".join(hosts), origin)
            report = indices.ensure_templates(
                client, settings.search_index_prefix, replicas=indices.index_replicas(settings)
            )
        finally:
            client.close()
        for name, changed in report.as_dict().items():
            log.info("%s: %s", name, ", ".join(changed) or "none")
        if not report.changed:
            log.info("nothing to change: every template and index is up to date")
        return {"prefix": settings.search_index_prefix, **report.as_dict()}

    @task(execution_timeout=timedelta(minutes=5))
    def import_kibana_objects() -> dict[str, Any]:
        """Import the Trade review saved objects into Kibana; skipped without RTC_KIBANA_URL."""
        import logging

        from airflow.sdk.exceptions import AirflowSkipException

        from rtcrypto.config import get_settings
        from rtcrypto.redact import redact_url
        from rtcrypto.search.kibana import SAVED_OBJECTS_FILE, import_saved_objects

        log = logging.getLogger(__name__)
        settings = get_settings()
        if not settings.kibana_url:
            reason = (
                "Kibana import skipped: RTC_KIBANA_URL is not set (the embedded stack has no "
                "Kibana; docker-compose's is http://127.0.0.1:5601). Set RTC_KIBANA_URL, "
                "RTC_KIBANA_USERNAME and RTC_KIBANA_PASSWORD for Airflow to import "
                f"{SAVED_OBJECTS_FILE.name}."
            )
            log.warning("%s", reason)
            raise AirflowSkipException(reason)
        result = import_saved_objects(
            settings.kibana_url, settings.kibana_username, settings.kibana_password
        )
        kibana_url = redact_url(settings.kibana_url)
        log.info("Kibana at %s imported %d saved objects", kibana_url, result.success_count)
        return {"kibana_url": kibana_url, "imported": result.success_count}

    ensure_templates() >> import_kibana_objects()


search_provision()
