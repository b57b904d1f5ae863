"""The Kibana saved objects (rtcrypto/search/kibana/trade_review.ndjson): valid NDJSON, unique ids,
every reference resolves, every chart reads indices that have templates and fields they map,
and rtcrypto.search.queries runs the same aggregations (tested against the node elsewhere)."""

from __future__ import annotations

import fnmatch
import json
from collections import Counter
from typing import Any

import pytest

from rtcrypto.search import queries
from rtcrypto.search.indices import INDEX_SPECS
from rtcrypto.search.kibana import SAVED_OBJECTS_FILE, saved_objects

INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
NUMERIC = {"double", "long"}
WANTED_TYPES = {"date_histogram": {"date"}, "terms": {"keyword"}}  # other aggregations: NUMERIC
BUCKETS = {"date_histogram", "terms"}


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return saved_objects()


@pytest.fixture(scope="module")
def by_id(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["id"]: obj for obj in objects}


def _of_type(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["type"] == kind]


def _template_properties(index: str) -> dict[str, dict[str, Any]]:
    """The mapping of the template whose pattern covers ``index`` (fails if none does)."""
    for spec in INDEX_SPECS.values():
        if fnmatch.fnmatchcase(index, spec.index_pattern()) or index == spec.index_pattern():
            return spec.mappings()["properties"]
    raise AssertionError(f"no index template covers {index}")


def _data_view_indices(data_view: dict[str, Any]) -> list[str]:
    return [part.strip() for part in data_view["attributes"]["title"].split(",")]


def _data_view_of(obj: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> dict[str, Any]:
    source = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    ref_name = source["indexRefName"]
    (reference,) = [ref for ref in obj["references"] if ref["name"] == ref_name]
    assert reference["type"] == "index-pattern"
    return by_id[reference["id"]]


def test_every_line_is_a_saved_object_with_parseable_embedded_json() -> None:
    lines = [line for line in SAVED_OBJECTS_FILE.read_text().splitlines() if line.strip()]
    assert lines, "empty NDJSON"
    embedded = ("visState", "uiStateJSON", "panelsJSON", "optionsJSON")
    for number, line in enumerate(lines, start=1):
        obj = json.loads(line)
        assert {"id", "type", "attributes", "references"} <= set(obj), number
        assert obj["attributes"].get("title"), number
        for key in embedded:
            if key in obj["attributes"]:
                json.loads(obj["attributes"][key])
        meta = obj["attributes"].get("kibanaSavedObjectMeta")
        if meta:
            json.loads(meta["searchSourceJSON"])


def test_ids_are_unique(objects: list[dict[str, Any]]) -> None:
    counts = Counter(obj["id"] for obj in objects)
    assert [object_id for object_id, count in counts.items() if count > 1] == []


def test_every_reference_resolves_to_an_object_of_its_type(
    objects: list[dict[str, Any]], by_id: dict[str, dict[str, Any]]
) -> None:
    for obj in objects:
        names = [ref["name"] for ref in obj["references"]]
        assert len(names) == len(set(names)), obj["id"]
        for ref in obj["references"]:
            assert ref["id"] in by_id, (obj["id"], ref)
            assert by_id[ref["id"]]["type"] == ref["type"], (obj["id"], ref)


def test_search_sources_and_dashboard_panels_name_existing_references(
    objects: list[dict[str, Any]],
) -> None:
    for obj in objects:
        names = {ref["name"] for ref in obj["references"]}
        meta = obj["attributes"].get("kibanaSavedObjectMeta")
        if meta:
            ref_name = json.loads(meta["searchSourceJSON"]).get("indexRefName")
            if ref_name:
                assert ref_name in names, obj["id"]
        if obj["type"] == "dashboard":
            for panel in json.loads(obj["attributes"]["panelsJSON"]):
                assert f"{panel['panelIndex']}:{panel['panelRefName']}" in names, panel


def test_the_dashboard_shows_every_trade_review_chart_and_table(
    by_id: dict[str, dict[str, Any]],
) -> None:
    dashboard = by_id["rtc-trade-review"]
    assert dashboard["attributes"]["title"] == "Trade review"
    assert {ref["id"] for ref in dashboard["references"]} == set(queries.VISUALIZATION_QUERIES)


def test_the_all_indices_data_view_covers_every_index_by_timestamp(
    by_id: dict[str, dict[str, Any]],
) -> None:
    data_view = by_id["rtc-all"]
    assert data_view["attributes"]["title"] == "rtc-*"
    for view in _of_type(list(by_id.values()), "index-pattern"):
        assert view["attributes"]["timeFieldName"] == "@timestamp", view["id"]
    for spec in INDEX_SPECS.values():
        assert fnmatch.fnmatchcase(spec.index_name(), "rtc-*")


def test_every_chart_and_table_reads_indices_that_have_templates(
    objects: list[dict[str, Any]], by_id: dict[str, dict[str, Any]]
) -> None:
    readers = _of_type(objects, "visualization") + _of_type(objects, "search")
    assert readers
    for obj in readers:
        for index in _data_view_indices(_data_view_of(obj, by_id)):
            _template_properties(index)  # raises if no template covers it


def _agg_fields(vis_state: dict[str, Any]) -> list[tuple[str, str]]:
    """(aggregation type, field) of every aggregation, custom metrics of pipelines included."""
    found = []
    for agg in vis_state["aggs"]:
        params = agg.get("params", {})
        if "field" in params:
            found.append((agg["type"], params["field"]))
        custom = params.get("customMetric")
        if custom:
            found.append((custom["type"], custom["params"]["field"]))
    return found


def test_aggregated_fields_exist_with_numeric_or_date_types(
    objects: list[dict[str, Any]], by_id: dict[str, dict[str, Any]]
) -> None:
    for vis in _of_type(objects, "visualization"):
        vis_state = json.loads(vis["attributes"]["visState"])
        indices = _data_view_indices(_data_view_of(vis, by_id))
        for agg_type, field in _agg_fields(vis_state):
            types = {
                _template_properties(index)[field]["type"]
                for index in indices
                if field in _template_properties(index)
            }
            assert types, f"{vis['id']}: {field} is in none of {indices}"
            wanted = WANTED_TYPES.get(agg_type, NUMERIC)
            assert types <= wanted, (vis["id"], field, types)


def test_every_table_shows_mapped_columns_newest_first(
    objects: list[dict[str, Any]], by_id: dict[str, dict[str, Any]]
) -> None:
    tables = _of_type(objects, "search")
    assert {table["id"] for table in tables} == {
        "rtc-orders-table",
        "rtc-restarts-table",
        "rtc-heartbeats-table",
    }
    for table in tables:
        (index,) = _data_view_indices(_data_view_of(table, by_id))
        properties = _template_properties(index)
        assert set(table["attributes"]["columns"]) <= set(properties), table["id"]
        assert table["attributes"]["sort"] == [["@timestamp", "desc"]], table["id"]


def test_queries_module_runs_what_each_visualization_shows(
    objects: list[dict[str, Any]], by_id: dict[str, dict[str, Any]]
) -> None:
    readers = _of_type(objects, "visualization") + _of_type(objects, "search")
    assert {obj["id"] for obj in readers} == set(queries.VISUALIZATION_QUERIES)
    for obj in readers:
        query = queries.VISUALIZATION_QUERIES[obj["id"]]
        indices = _data_view_indices(_data_view_of(obj, by_id))
        assert queries.indices_of(query).split(",") == indices, obj["id"]
        if obj["type"] == "visualization":
            vis_state = json.loads(obj["attributes"]["visState"])
            metric_fields = [field for kind, field in _agg_fields(vis_state) if kind not in BUCKETS]
            assert tuple(metric_fields) == query.metric_fields, obj["id"]
            split_fields = [field for kind, field in _agg_fields(vis_state) if kind == "terms"]
            assert split_fields == ([query.split_field] if query.split_field else []), obj["id"]
        else:
            assert tuple(obj["attributes"]["columns"]) == query.metric_fields


def test_cumulative_profit_is_a_running_sum_of_pnl_in_kibana_and_in_the_query(
    by_id: dict[str, dict[str, Any]],
) -> None:
    vis_state = json.loads(by_id["rtc-cumulative-profit"]["attributes"]["visState"])
    (metric,) = [agg for agg in vis_state["aggs"] if agg["schema"] == "metric"]
    assert metric["type"] == "cumulative_sum"
    assert metric["params"]["customMetric"]["type"] == "sum"
    assert metric["params"]["customMetric"]["params"]["field"] == "pnl_usd"

    aggs = queries.cumulative_profit_body()["aggs"][queries.HISTOGRAM]
    assert aggs["date_histogram"]["field"] == "@timestamp"
    assert aggs["aggs"]["profit"] == {"sum": {"field": "pnl_usd"}}
    assert aggs["aggs"]["cumulative_profit"] == {"cumulative_sum": {"buckets_path": "profit"}}


def _kibana_aggregations(vis_state: dict[str, Any]) -> list[tuple[str, str]]:
    """(aggregation type, field) of what a visualization computes; a pipeline over a custom
    metric counts as that metric plus the pipeline over the same field."""
    found = []
    for agg in vis_state["aggs"]:
        params = agg.get("params", {})
        custom = params.get("customMetric")
        if custom:
            found += [
                (custom["type"], custom["params"]["field"]),
                (agg["type"], custom["params"]["field"]),
            ]
        elif "field" in params:
            found.append((agg["type"], params["field"]))
    return sorted(found)


def _body_aggregations(aggs: dict[str, Any]) -> list[tuple[str, str]]:
    """(aggregation type, field) of every aggregation in a request body, sub-aggregations too; a
    pipeline (``buckets_path``) is given the field of the sibling metric it reads."""
    found = []
    for agg in aggs.values():
        for kind, params in agg.items():
            if kind == "aggs":
                found += _body_aggregations(params)
            elif "field" in params:
                found.append((kind, params["field"]))
            else:
                (sibling,) = aggs[params["buckets_path"]].values()
                found.append((kind, sibling["field"]))
    return sorted(found)


VISUALIZATION_BODIES = {
    queries.CUMULATIVE_PROFIT.visualization_id: queries.cumulative_profit_body(),
    queries.LIQUIDITY_RATIO.visualization_id: queries.liquidity_ratio_body(),
    queries.PRICE_VS_FORECAST.visualization_id: queries.price_vs_forecast_body(
        since_ms=0, until_ms=1
    ),
    queries.FORECAST_BY_VERSION.visualization_id: queries.forecast_by_version_body(
        since_ms=0, until_ms=1
    ),
    queries.FILLS_BY_SIDE.visualization_id: queries.fills_by_side_body(),
    queries.DEPTH_IMBALANCE.visualization_id: queries.depth_imbalance_body(),
    queries.EQUITY.visualization_id: queries.equity_body(),
}
TABLE_BODIES = {
    queries.ORDERS_TABLE.visualization_id: queries.orders_table_body(),
    queries.RESTARTS_TABLE.visualization_id: queries.restarts_table_body(),
    queries.HEARTBEATS_TABLE.visualization_id: queries.heartbeats_table_body(),
}


def test_every_chart_and_table_has_a_query_body() -> None:
    assert set(VISUALIZATION_BODIES) | set(TABLE_BODIES) == set(queries.VISUALIZATION_QUERIES)


@pytest.mark.parametrize("visualization_id", sorted(VISUALIZATION_BODIES))
def test_each_chart_aggregates_what_its_query_body_aggregates(
    by_id: dict[str, dict[str, Any]], visualization_id: str
) -> None:
    vis_state = json.loads(by_id[visualization_id]["attributes"]["visState"])
    body = VISUALIZATION_BODIES[visualization_id]
    assert _kibana_aggregations(vis_state) == _body_aggregations(body["aggs"])
    assert ("date_histogram", "@timestamp") in _body_aggregations(body["aggs"])


@pytest.mark.parametrize("table_id", sorted(TABLE_BODIES))
def test_each_table_shows_and_sorts_what_its_query_body_reads(
    by_id: dict[str, dict[str, Any]], table_id: str
) -> None:
    table = by_id[table_id]["attributes"]
    body = TABLE_BODIES[table_id]
    assert ["@timestamp", *table["columns"]] == body["_source"]
    (sort_field, direction) = table["sort"][0]
    assert body["sort"][0] == {sort_field: {"order": direction}}


def _split_series_params(vis_state: dict[str, Any]) -> list[dict[str, Any]]:
    return [agg["params"] for agg in vis_state["aggs"] if agg["type"] == "terms"]


@pytest.mark.parametrize(
    "query",
    [q for q in queries.VISUALIZATION_QUERIES.values() if q.split_field],
    ids=lambda q: q.visualization_id,
)
def test_each_split_chart_draws_the_series_its_query_body_buckets(
    by_id: dict[str, dict[str, Any]], query: queries.VisualizationQuery
) -> None:
    """Kibana's split series (terms, by key, at most N) is the body's terms aggregation, nested
    inside the date histogram, with the metric inside it: one line per value, never averaged."""
    vis_state = json.loads(by_id[query.visualization_id]["attributes"]["visState"])
    (params,) = _split_series_params(vis_state)
    (split,) = [agg for agg in vis_state["aggs"] if agg["type"] == "terms"]
    assert split["schema"] == "group"  # a series per value, not a separate chart
    histogram = VISUALIZATION_BODIES[query.visualization_id]["aggs"][queries.HISTOGRAM]
    terms = histogram["aggs"][queries.SPLIT]["terms"]
    assert terms == {
        "field": params["field"],
        "size": params["size"],
        "order": {params["orderBy"]: params["order"]},
    }
    assert not params["otherBucket"] and not params["missingBucket"]
    (metric,) = query.metric_fields
    assert histogram["aggs"][queries.SPLIT]["aggs"] == {metric: {"avg": {"field": metric}}}
