"""The real local Elasticsearch node: health, explicit mappings, idempotent bulk, aggregations."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from elasticsearch import Elasticsearch, helpers
from typer.testing import CliRunner

from rtcrypto import search
from rtcrypto.cli.main import app
from rtcrypto.config import get_settings

pytestmark = pytest.mark.integration

_MAPPING = {
    "dynamic": "strict",
    "properties": {
        "@timestamp": {"type": "date", "format": "epoch_millis"},
        "fill_id": {"type": "keyword"},
        "side": {"type": "keyword"},
        "price": {"type": "double"},  # scaled_float lives in mapper-extras, absent here
        "profit_usd": {"type": "double"},
    },
}


@pytest.fixture
def client(search_node: str) -> Iterator[Elasticsearch]:
    es = search.search_client()
    yield es
    es.close()


@pytest.fixture
def index_name(client: Elasticsearch) -> Iterator[str]:
    name = f"test-rtc-fills-{uuid.uuid4().hex[:8]}"
    yield name
    client.options(ignore_status=404).indices.delete(index=name)


def _fills(index: str, count: int) -> list[dict[str, object]]:
    """``count`` fills with deterministic ids; profits 0.01, 0.02, ... as exact decimals."""
    return [
        {
            "_index": index,
            "_id": f"BTCUSD-{minute}-sell",
            "_source": {
                "@timestamp": 1_618_617_600_000 + minute * 60_000,
                "fill_id": f"BTCUSD-{minute}-sell",
                "side": "sell",
                "price": 61_000.25,
                "profit_usd": float(Decimal(minute + 1) / 100),
            },
        }
        for minute in range(count)
    ]


def test_cluster_is_green_or_yellow(client: Elasticsearch) -> None:
    health = search.cluster_health(client, wait_for_status="yellow", timeout_s=30.0)

    assert health.status in {"green", "yellow"}
    assert health.number_of_nodes >= 1
    assert not health.timed_out


def test_server_major_matches_the_client(client: Elasticsearch) -> None:
    version = search.ensure_compatible(client)

    assert version.split(".")[0] == search.client.CLIENT_VERSION.split(".")[0]
    assert client.ping()


def test_bulk_twice_with_deterministic_ids_does_not_double(
    client: Elasticsearch, index_name: str
) -> None:
    client.indices.create(
        index=index_name,
        mappings=_MAPPING,
        settings={"number_of_shards": 1, "number_of_replicas": 0},
    )
    fills = _fills(index_name, 250)

    first_ok, first_errors = helpers.bulk(client, fills, refresh="wait_for")
    second_ok, second_errors = helpers.bulk(client, fills, refresh="wait_for")

    assert (first_ok, first_errors, second_ok, second_errors) == (250, [], 250, [])
    assert client.count(index=index_name)["count"] == 250
    mapping = client.indices.get_mapping(index=index_name)[index_name]["mappings"]
    assert mapping["properties"]["profit_usd"] == {"type": "double"}
    assert mapping["properties"]["@timestamp"]["type"] == "date"


def test_sum_and_cumulative_sum_aggregations(client: Elasticsearch, index_name: str) -> None:
    client.indices.create(
        index=index_name,
        mappings=_MAPPING,
        settings={"number_of_shards": 1, "number_of_replicas": 0},
    )
    helpers.bulk(client, _fills(index_name, 120), refresh="wait_for")
    expected_total = sum(Decimal(minute + 1) / 100 for minute in range(120))  # 72.60

    response = client.search(
        index=index_name,
        size=0,
        query={"term": {"side": "sell"}},
        aggs={
            "total_profit": {"sum": {"field": "profit_usd"}},
            "per_hour": {
                "date_histogram": {"field": "@timestamp", "fixed_interval": "1h"},
                "aggs": {
                    "profit": {"sum": {"field": "profit_usd"}},
                    "cumulative_profit": {"cumulative_sum": {"buckets_path": "profit"}},
                },
            },
        },
    )

    aggregations = response["aggregations"]
    assert round(Decimal(str(aggregations["total_profit"]["value"])), 2) == expected_total
    buckets = aggregations["per_hour"]["buckets"]
    assert [bucket["doc_count"] for bucket in buckets] == [60, 60]
    last_cumulative = Decimal(str(buckets[-1]["cumulative_profit"]["value"]))
    assert round(last_cumulative, 2) == expected_total


def test_stack_status_reports_the_node(search_node: str) -> None:
    result = CliRunner().invoke(app, ["stack", "status"])

    assert result.exit_code == 0, result.output
    if "elasticsearch" in result.output:  # managed here, not an external node
        assert f"search    {get_settings().search_url}: cluster rtc-local" in result.output
