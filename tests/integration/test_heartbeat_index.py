"""The supervisor's check indexes the heartbeats it judged into ``<prefix>-heartbeat``, once each.

Real Kafka (a heartbeat topic of this test) and the real Elasticsearch node, on an index prefix
of this test with the project's templates applied (the strict ``heartbeat`` mapping): a heartbeat
read by ``check_health`` lands under its deterministic ``_id`` and stays one document when the
service is checked again (``check_health`` twice, then ``check_all``); a newer heartbeat is a
second document. The same holds through the Airflow task path
(``plugins/rtc_airflow/hooks.ServiceSupervisionHook.health``, as ``ServiceHeartbeatSensor`` calls it).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from rtcrypto import supervision
from rtcrypto.config import Settings, Topics
from rtcrypto.kafka.clients import producer
from rtcrypto.market.schemas import Heartbeat
from rtcrypto.search.client import search_client
from rtcrypto.search.indices import INDEX_SPECS, ensure_templates
from tests.helpers import REPO

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(
    tmp_path: Path, kafka_broker: str, kafka_topic_factory: Callable[..., str], search_node: str
) -> Settings:
    topics = Topics(heartbeat=kafka_topic_factory("heartbeat"))
    return Settings(
        home=tmp_path / "rtc",
        kafka_bootstrap=kafka_broker,
        topics=topics,
        search_url=search_node,
        search_index_prefix=f"test-heartbeat-{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[Elasticsearch]:
    client = search_client(settings, max_retries=0)
    ensure_templates(client, settings.search_index_prefix)
    try:
        yield client
    finally:
        prefix = settings.search_index_prefix
        found = client.indices.get(index=f"{prefix}-*", allow_no_indices=True)
        if found.body:
            client.indices.delete(index=",".join(sorted(found.body)))
        for spec in INDEX_SPECS.values():
            client.options(ignore_status=404).indices.delete_index_template(
                name=spec.template_name(prefix)
            )


def _send(settings: Settings, beat: Heartbeat) -> None:
    sender = producer(settings, "test-heartbeat-index", acks="all")
    sender.produce(settings.topics.heartbeat, key=beat.service.encode(), value=beat.to_bytes())
    assert sender.flush(30) == 0


def _documents(client: Elasticsearch, index: str) -> dict[str, dict]:
    client.indices.refresh(index=index)
    hits = client.search(index=index, query={"match_all": {}}, size=100)["hits"]["hits"]
    return {hit["_id"]: hit["_source"] for hit in hits}


def test_a_heartbeat_checked_twice_is_indexed_once(
    settings: Settings, client: Elasticsearch
) -> None:
    index = f"{settings.search_index_prefix}-heartbeat"
    ts_ms = time.time_ns() // 1_000_000 - 2_000
    _send(settings, Heartbeat("ingest", "host-a:101", ts_ms, 42, ts_ms - 5, 1_250, gaps=1))
    ingest = supervision.get_service("ingest")

    supervision.check_health(ingest, settings)
    supervision.check_health(ingest, settings)
    supervision.check_all(settings)

    documents = _documents(client, index)
    assert list(documents) == [f"ingest:host-a:101:{ts_ms}"]
    source = documents[f"ingest:host-a:101:{ts_ms}"]
    assert (source["service"], source["instance"], source["ts_ms"]) == (
        "ingest",
        "host-a:101",
        ts_ms,
    )
    assert (source["processed"], source["lag_ms"], source["gaps"]) == (42, 1_250, 1)
    assert client.count(index=index)["count"] == 1

    newer = ts_ms + 1_000
    _send(settings, Heartbeat("ingest", "host-a:101", newer, 43, newer - 5, 900))
    supervision.check_health(ingest, settings)
    supervision.check_health(ingest, settings)

    assert sorted(_documents(client, index)) == sorted(
        [f"ingest:host-a:101:{ts_ms}", f"ingest:host-a:101:{newer}"]
    )
    assert not list((settings.search_spool_path / "heartbeats").glob("spool-*"))  # all sent


def test_the_airflow_hooks_health_indexes_the_heartbeat_it_judged_once(
    settings: Settings, client: Elasticsearch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rtcrypto.config import get_settings

    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    monkeypatch.setenv("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
    for name, value in {
        "RTC_HOME": settings.home,
        "RTC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "RTC_TOPIC_HEARTBEAT": settings.topics.heartbeat,
        "RTC_SEARCH_URL": settings.search_url,
        "RTC_SEARCH_INDEX_PREFIX": settings.search_index_prefix,
    }.items():
        monkeypatch.setenv(name, str(value))
    get_settings.cache_clear()
    import airflow  # noqa: F401  (puts the plugins folder on sys.path)
    from rtc_airflow.hooks import ServiceSupervisionHook

    ts_ms = time.time_ns() // 1_000_000 - 1_000
    _send(settings, Heartbeat("trader", "host-b:7", ts_ms, 5, ts_ms - 9, 40))
    try:
        hook = ServiceSupervisionHook()
        hook.health("trader")
        hook.health("trader")
    finally:
        get_settings.cache_clear()

    documents = _documents(client, f"{settings.search_index_prefix}-heartbeat")
    assert list(documents) == [f"trader:host-b:7:{ts_ms}"]
    assert documents[f"trader:host-b:7:{ts_ms}"]["processed"] == 5
