"""The Elasticsearch queries behind the Kibana "Trade review" visualizations, and their runners.

Each ``*_body`` function returns the request body the visualization of the same name sends
(the same aggregations Kibana builds from its saved object in ``kibana/trade_review.ndjson``),
so the numbers on the dashboard can be checked from Python and in tests:

=======================  ==================  =================================================
visualization            index               body
=======================  ==================  =================================================
cumulative profit        scores              date_histogram(@timestamp) > sum(pnl_usd) +
                                             cumulative_sum of that sum
liquidity ratio          liquidity           date_histogram(@timestamp) > avg(liquidity_ratio)
price against forecast   ticker + forecast   date_histogram(@timestamp) > avg(mid_price),
                                             avg(price_forecast) and its bounds
orders table             orders              newest orders first, the table's columns
forecast by version      forecast            date_histogram(@timestamp) > terms(forecast_version)
                                             > avg(price_forecast)
fills by side            fills               date_histogram(@timestamp) > terms(side) > avg(price)
depth imbalance          liquidity           date_histogram(@timestamp) > avg(depth_imbalance)
equity                   balances            date_histogram(@timestamp) > terms(trading_mode)
                                             > avg(equity_usd)
restarts table           restarts            newest restarts first: service, reason, pid
heartbeats table         heartbeat           newest heartbeats first, the table's columns
=======================  ==================  =================================================

A chart with a ``split_field`` draws one line per value of that field (Kibana's "split series",
a ``terms`` aggregation inside the date histogram): forecast versions overlap in time, because
each published forecast reaches far ahead, so their prices are never averaged together.

The trade review (:mod:`rtcrypto.report`, ``rtc report`` and the ``trade_report`` DAG) asks the
same question of the same indices, "the documents of ``[since_ms, until_ms)`` of this trading
mode and symbol": it pages through them with :func:`documents_in_range_body`, whose filter is
:func:`range_filter`, the one the visualization bodies use. It reads documents rather than the
aggregations because it states the ledger's exact Decimal figures (``*_exact``), which a ``sum``
over the ``double`` fields cannot give.

Times are epoch milliseconds (UTC); intervals are Elasticsearch fixed intervals (``1m``, ``1h``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from elasticsearch import Elasticsearch

from rtcrypto.search.indices import DEFAULT_INDEX_PREFIX, index_name

HISTOGRAM = "over_time"
ORDERS_TABLE_COLUMNS = (
    "@timestamp",
    "client_order_id",
    "trading_mode",
    "forecast_version",
    "symbol",
    "side",
    "state",
    "limit_price",
    "quantity",
    "executed_quantity",
    "average_execution_price",
    "fee_usd",
)
RESTARTS_TABLE_COLUMNS = ("@timestamp", "service", "reason", "pid")
HEARTBEATS_TABLE_COLUMNS = (
    "@timestamp",
    "service",
    "instance",
    "processed",
    "lag_ms",
    "reconnects",
    "gaps",
    "dead_letters",
    "last_error",
)
SPLIT = "split"  # the terms aggregation of a split-series chart
SPLIT_SIZE = 20  # at most this many series per split chart (versions, sides, trading modes)


@dataclass(frozen=True)
class VisualizationQuery:
    """Which saved visualization a body belongs to, and the index kinds it reads."""

    visualization_id: str
    index_kinds: tuple[str, ...]
    metric_fields: tuple[str, ...]  # the numeric fields it aggregates (or shows, for a table)
    split_field: str | None = None  # one series per value of this keyword field (None: one)


CUMULATIVE_PROFIT = VisualizationQuery("rtc-cumulative-profit", ("scores",), ("pnl_usd",))
LIQUIDITY_RATIO = VisualizationQuery("rtc-liquidity-ratio", ("liquidity",), ("liquidity_ratio",))
PRICE_VS_FORECAST = VisualizationQuery(
    "rtc-price-vs-forecast",
    ("ticker", "forecast"),
    ("mid_price", "price_forecast", "price_forecast_lower", "price_forecast_upper"),
)
ORDERS_TABLE = VisualizationQuery(
    "rtc-orders-table", ("orders",), tuple(c for c in ORDERS_TABLE_COLUMNS if c != "@timestamp")
)
FORECAST_BY_VERSION = VisualizationQuery(
    "rtc-forecast-by-version", ("forecast",), ("price_forecast",), "forecast_version"
)
FILLS_BY_SIDE = VisualizationQuery("rtc-fills-by-side", ("fills",), ("price",), "side")
DEPTH_IMBALANCE = VisualizationQuery("rtc-depth-imbalance", ("liquidity",), ("depth_imbalance",))
EQUITY = VisualizationQuery("rtc-equity", ("balances",), ("equity_usd",), "trading_mode")
RESTARTS_TABLE = VisualizationQuery("rtc-restarts-table", ("restarts",), RESTARTS_TABLE_COLUMNS[1:])
HEARTBEATS_TABLE = VisualizationQuery(
    "rtc-heartbeats-table", ("heartbeat",), HEARTBEATS_TABLE_COLUMNS[1:]
)
VISUALIZATION_QUERIES = {
    query.visualization_id: query
    for query in (
        CUMULATIVE_PROFIT,
        LIQUIDITY_RATIO,
        PRICE_VS_FORECAST,
        ORDERS_TABLE,
        FORECAST_BY_VERSION,
        FILLS_BY_SIDE,
        DEPTH_IMBALANCE,
        EQUITY,
        RESTARTS_TABLE,
        HEARTBEATS_TABLE,
    )
}


def indices_of(query: VisualizationQuery, prefix: str = DEFAULT_INDEX_PREFIX) -> str:
    """The comma-separated indices a visualization reads (``rtc-ticker,rtc-forecast``)."""
    return ",".join(index_name(kind, prefix) for kind in query.index_kinds)


def range_filter(
    since_ms: int | None, until_ms: int | None, terms: dict[str, str | None]
) -> dict[str, Any]:
    """The query of documents with ``@timestamp`` in ``[since_ms, until_ms)`` (either bound may
    be None: open) whose ``terms`` fields equal the given values (None: any value)."""
    clauses: list[dict[str, Any]] = []
    if since_ms is not None or until_ms is not None:
        bounds: dict[str, Any] = {"format": "epoch_millis"}
        if since_ms is not None:
            bounds["gte"] = since_ms
        if until_ms is not None:
            bounds["lt"] = until_ms
        clauses.append({"range": {"@timestamp": bounds}})
    clauses += [{"term": {name: value}} for name, value in terms.items() if value is not None]
    return {"bool": {"filter": clauses}} if clauses else {"match_all": {}}


def _histogram(interval: str, min_doc_count: int) -> dict[str, Any]:
    return {
        "field": "@timestamp",
        "fixed_interval": interval,
        "min_doc_count": min_doc_count,
    }


def cumulative_profit_body(
    *,
    interval: str = "1h",
    trading_mode: str | None = None,
    forecast_version: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> dict[str, Any]:
    """Per ``interval``: the sum of ``pnl_usd`` (net of fees) and its running total (USD).

    Empty intervals between trades are kept (profit 0, running total flat).
    """
    return {
        "size": 0,
        "query": range_filter(
            since_ms,
            until_ms,
            {"trading_mode": trading_mode, "forecast_version": forecast_version},
        ),
        "aggs": {
            HISTOGRAM: {
                "date_histogram": _histogram(interval, 0),
                "aggs": {
                    "profit": {"sum": {"field": "pnl_usd"}},
                    "cumulative_profit": {"cumulative_sum": {"buckets_path": "profit"}},
                },
            }
        },
    }


def liquidity_ratio_body(
    *,
    interval: str = "1m",
    symbol: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> dict[str, Any]:
    """Per ``interval``: the average ask/bid liquidity ratio of the windows that start in it."""
    return _average_per_interval_body("liquidity_ratio", interval, since_ms, until_ms, symbol)


def price_vs_forecast_body(
    *,
    since_ms: int,
    until_ms: int,
    interval: str = "1m",
    forecast_version: str | None = None,
) -> dict[str, Any]:
    """Per ``interval``: average mid price (ticker) and forecast price with bounds (USD per BTC).

    Reads ticker and forecast indices together; a time range is required because a published
    forecast reaches 150,000 minutes ahead. ``forecast_version`` keeps one version's minutes.
    """
    query = range_filter(since_ms, until_ms, {})
    if forecast_version is not None:
        query["bool"]["filter"].append(
            {
                "bool": {
                    "should": [
                        {"bool": {"must_not": {"exists": {"field": "forecast_version"}}}},
                        {"term": {"forecast_version": forecast_version}},
                    ],
                    "minimum_should_match": 1,
                }
            }
        )
    return {
        "size": 0,
        "query": query,
        "aggs": {
            HISTOGRAM: {
                "date_histogram": _histogram(interval, 1),
                "aggs": {
                    field: {"avg": {"field": field}} for field in PRICE_VS_FORECAST.metric_fields
                },
            }
        },
    }


def orders_table_body(
    *, size: int = 100, trading_mode: str | None = None, since_ms: int | None = None
) -> dict[str, Any]:
    """The newest ``size`` orders with the table's columns."""
    return {
        "size": size,
        "query": range_filter(since_ms, None, {"trading_mode": trading_mode}),
        "sort": [{"@timestamp": {"order": "desc"}}, {"client_order_id": {"order": "asc"}}],
        "_source": list(ORDERS_TABLE_COLUMNS),
    }


def split_series_body(
    query: VisualizationQuery,
    *,
    interval: str,
    since_ms: int | None,
    until_ms: int | None,
    terms: dict[str, str | None],
) -> dict[str, Any]:
    """Per ``interval`` and per value of ``query.split_field`` (at most ``SPLIT_SIZE`` values,
    in key order): the average of ``query``'s one metric field."""
    if query.split_field is None or len(query.metric_fields) != 1:
        raise ValueError(f"{query.visualization_id} is not a one-metric split-series chart")
    (field,) = query.metric_fields
    return {
        "size": 0,
        "query": range_filter(since_ms, until_ms, terms),
        "aggs": {
            HISTOGRAM: {
                "date_histogram": _histogram(interval, 1),
                "aggs": {
                    SPLIT: {
                        "terms": {
                            "field": query.split_field,
                            "size": SPLIT_SIZE,
                            "order": {"_key": "asc"},
                        },
                        "aggs": {field: {"avg": {"field": field}}},
                    }
                },
            }
        },
    }


def forecast_by_version_body(
    *, since_ms: int, until_ms: int, interval: str = "1m"
) -> dict[str, Any]:
    """Per ``interval`` and forecast version: the average forecast price (USD per BTC).

    A time range is required: a published forecast reaches 150,000 minutes ahead.
    """
    return split_series_body(
        FORECAST_BY_VERSION, interval=interval, since_ms=since_ms, until_ms=until_ms, terms={}
    )


def fills_by_side_body(
    *,
    interval: str = "1m",
    trading_mode: str | None = None,
    symbol: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> dict[str, Any]:
    """Per ``interval`` and side (buy, sell): the average fill price (USD per BTC)."""
    terms = {"trading_mode": trading_mode, "symbol": None if symbol is None else symbol.upper()}
    return split_series_body(
        FILLS_BY_SIDE, interval=interval, since_ms=since_ms, until_ms=until_ms, terms=terms
    )


def equity_body(
    *,
    interval: str = "1m",
    trading_mode: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> dict[str, Any]:
    """Per ``interval`` and trading mode: the average equity, USD + BTC at mid (USD)."""
    return split_series_body(
        EQUITY,
        interval=interval,
        since_ms=since_ms,
        until_ms=until_ms,
        terms={"trading_mode": trading_mode},
    )


def depth_imbalance_body(
    *,
    interval: str = "1m",
    symbol: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> dict[str, Any]:
    """Per ``interval``: the average depth imbalance, (bid - ask) / (bid + ask) depth near the
    mid, in [-1, 1], of the liquidity windows that start in it."""
    return _average_per_interval_body("depth_imbalance", interval, since_ms, until_ms, symbol)


def _average_per_interval_body(
    field: str, interval: str, since_ms: int | None, until_ms: int | None, symbol: str | None
) -> dict[str, Any]:
    """Per ``interval`` with documents: the average of ``field`` (one symbol, or all)."""
    return {
        "size": 0,
        "query": range_filter(since_ms, until_ms, {"symbol": symbol}),
        "aggs": {
            HISTOGRAM: {
                "date_histogram": _histogram(interval, 1),
                "aggs": {field: {"avg": {"field": field}}},
            }
        },
    }


def _table_body(
    columns: tuple[str, ...],
    tiebreakers: tuple[str, ...],
    *,
    size: int,
    since_ms: int | None,
    terms: dict[str, str | None],
) -> dict[str, Any]:
    sort = [{"@timestamp": {"order": "desc"}}]
    sort += [{name: {"order": "asc"}} for name in tiebreakers]
    return {
        "size": size,
        "query": range_filter(since_ms, None, terms),
        "sort": sort,
        "_source": list(columns),
    }


def restarts_table_body(
    *, size: int = 100, service: str | None = None, since_ms: int | None = None
) -> dict[str, Any]:
    """The newest ``size`` supervisor restarts: service, reason and the new process id."""
    return _table_body(
        RESTARTS_TABLE_COLUMNS,
        ("service",),
        size=size,
        since_ms=since_ms,
        terms={"service": service},
    )


def heartbeats_table_body(
    *, size: int = 100, service: str | None = None, since_ms: int | None = None
) -> dict[str, Any]:
    """The newest ``size`` service heartbeats with their counters (``lag_ms`` in ms)."""
    return _table_body(
        HEARTBEATS_TABLE_COLUMNS,
        ("service", "instance"),
        size=size,
        since_ms=since_ms,
        terms={"service": service},
    )


# Sort keys after @timestamp that make each kind's order total (search_after needs no ties).
REVIEW_TIEBREAKERS: dict[str, tuple[tuple[str, str], ...]] = {
    "scores": (("exit_client_order_id", "keyword"),),
    "fills": (("client_order_id", "keyword"), ("fill_sequence", "long")),
    "orders": (("client_order_id", "keyword"),),
    "balances": (("trading_mode", "keyword"),),
    "ticker": (("symbol", "keyword"),),
    "liquidity": (("symbol", "keyword"),),
}
MODE_KINDS = frozenset({"scores", "fills", "orders", "balances"})  # documents with trading_mode
SYMBOL_KINDS = frozenset({"scores", "fills", "orders", "ticker", "liquidity"})


def documents_in_range_body(
    kind: str,
    *,
    since_ms: int,
    until_ms: int,
    trading_mode: str | None = None,
    symbol: str | None = None,
    size: int,
) -> dict[str, Any]:
    """The review's page request: ``size`` documents of ``kind`` (a key of
    ``REVIEW_TIEBREAKERS``) in ``[since_ms, until_ms)``, oldest first in a total order, so that
    ``search_after`` with the last hit's ``sort`` values reads the next page.

    ``trading_mode`` filters the kinds that carry one (``MODE_KINDS``), ``symbol`` (upper-cased)
    those that carry a symbol (``SYMBOL_KINDS``); None takes all.
    """
    terms: dict[str, str | None] = {}
    if kind in MODE_KINDS:
        terms["trading_mode"] = trading_mode
    if kind in SYMBOL_KINDS:
        terms["symbol"] = None if symbol is None else symbol.upper()
    sort: list[dict[str, Any]] = [{"@timestamp": {"order": "asc"}}]
    sort += [
        {name: {"order": "asc", "unmapped_type": field_type}}
        for name, field_type in REVIEW_TIEBREAKERS[kind]
    ]
    return {"query": range_filter(since_ms, until_ms, terms), "sort": sort, "size": size}


# --- runners -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesPoint:
    """One histogram bucket: its start (epoch ms UTC), document count and metric values."""

    ts_ms: int
    doc_count: int
    values: dict[str, float | None]


def run_series(
    client: Elasticsearch, index: str, body: dict[str, Any], metrics: tuple[str, ...]
) -> list[SeriesPoint]:
    """Run a ``*_body`` histogram query on ``index``; one point per bucket, oldest first."""
    response = client.search(index=index, **body)
    buckets = response["aggregations"][HISTOGRAM]["buckets"]
    return [
        SeriesPoint(
            ts_ms=int(bucket["key"]),
            doc_count=int(bucket["doc_count"]),
            values={name: bucket[name]["value"] for name in metrics},
        )
        for bucket in buckets
    ]


def cumulative_profit(
    client: Elasticsearch, *, prefix: str = DEFAULT_INDEX_PREFIX, **options: Any
) -> list[tuple[int, float]]:
    """(bucket start ms, running realised profit in USD) per interval, from the scores."""
    points = run_series(
        client,
        indices_of(CUMULATIVE_PROFIT, prefix),
        cumulative_profit_body(**options),
        ("cumulative_profit",),
    )
    return [(point.ts_ms, float(point.values["cumulative_profit"] or 0.0)) for point in points]


def _single_series(
    client: Elasticsearch, query: VisualizationQuery, prefix: str, body: dict[str, Any]
) -> list[tuple[int, float | None]]:
    """(bucket start ms, the query's one metric) per interval of a one-metric series body."""
    metric = query.metric_fields[0]
    points = run_series(client, indices_of(query, prefix), body, (metric,))
    return [(point.ts_ms, point.values[metric]) for point in points]


def liquidity_ratio_series(
    client: Elasticsearch, *, prefix: str = DEFAULT_INDEX_PREFIX, **options: Any
) -> list[tuple[int, float | None]]:
    """(bucket start ms, average liquidity ratio) per interval with windows."""
    return _single_series(client, LIQUIDITY_RATIO, prefix, liquidity_ratio_body(**options))


def price_vs_forecast(
    client: Elasticsearch, *, prefix: str = DEFAULT_INDEX_PREFIX, **options: Any
) -> list[SeriesPoint]:
    """Per interval: ``mid_price``, ``price_forecast`` and its bounds (None where absent)."""
    return run_series(
        client,
        indices_of(PRICE_VS_FORECAST, prefix),
        price_vs_forecast_body(**options),
        PRICE_VS_FORECAST.metric_fields,
    )


def _table_rows(
    client: Elasticsearch, query: VisualizationQuery, prefix: str, body: dict[str, Any]
) -> list[dict[str, Any]]:
    """The ``_source`` of each hit of a table body (no index yet: no rows)."""
    response = client.search(
        index=indices_of(query, prefix), **body, ignore_unavailable=True, allow_no_indices=True
    )
    return [hit["_source"] for hit in response["hits"]["hits"]]


def orders_table(
    client: Elasticsearch, *, prefix: str = DEFAULT_INDEX_PREFIX, **options: Any
) -> list[dict[str, Any]]:
    """The orders table's rows, newest first (each row holds ``ORDERS_TABLE_COLUMNS``)."""
    return _table_rows(client, ORDERS_TABLE, prefix, orders_table_body(**options))


def run_split_series(
    client: Elasticsearch, index: str, body: dict[str, Any], metric: str
) -> dict[str, list[tuple[int, float | None]]]:
    """Run a :func:`split_series_body` query on ``index``: per split value, its (bucket start
    ms, average ``metric``) points, oldest first."""
    return split_series_points(client.search(index=index, **body).body, metric)


def split_series_points(
    response: Mapping[str, Any], metric: str
) -> dict[str, list[tuple[int, float | None]]]:
    """The series of a split-series answer: per split value (in first-seen order), its (bucket
    start ms, ``metric`` value) points in bucket order; a value absent from a bucket has no
    point there."""
    series: dict[str, list[tuple[int, float | None]]] = {}
    for bucket in response["aggregations"][HISTOGRAM]["buckets"]:
        for split in bucket[SPLIT]["buckets"]:
            point = (int(bucket["key"]), split[metric]["value"])
            series.setdefault(str(split["key"]), []).append(point)
    return series


def _split_series(
    client: Elasticsearch, query: VisualizationQuery, prefix: str, body: dict[str, Any]
) -> dict[str, list[tuple[int, float | None]]]:
    return run_split_series(client, indices_of(query, prefix), body, query.metric_fields[0])


def forecast_by_version(
    client: Elasticsearch, *, prefix: str = DEFAULT_INDEX_PREFIX, **options: Any
) -> dict[str, list[tuple[int, float | None]]]:
    """Per forecast version: (bucket start ms, average forecast price in USD per BTC)."""
    return _split_series(client, FORECAST_BY_VERSION, prefix, forecast_by_version_body(**options))


def fills_by_side(
    client: Elasticsearch, *, prefix: str = DEFAULT_INDEX_PREFIX, **options: Any
) -> dict[str, list[tuple[int, float | None]]]:
    """Per side (buy, sell): (bucket start ms, average fill price in USD per BTC)."""
    return _split_series(client, FILLS_BY_SIDE, prefix, fills_by_side_body(**options))


def equity_series(
    client: Elasticsearch, *, prefix: str = DEFAULT_INDEX_PREFIX, **options: Any
) -> dict[str, list[tuple[int, float | None]]]:
    """Per trading mode: (bucket start ms, average equity in USD)."""
    return _split_series(client, EQUITY, prefix, equity_body(**options))


def depth_imbalance_series(
    client: Elasticsearch, *, prefix: str = DEFAULT_INDEX_PREFIX, **options: Any
) -> list[tuple[int, float | None]]:
    """(bucket start ms, average depth imbalance in [-1, 1]) per interval with windows."""
    return _single_series(client, DEPTH_IMBALANCE, prefix, depth_imbalance_body(**options))


def restarts_table(
    client: Elasticsearch, *, prefix: str = DEFAULT_INDEX_PREFIX, **options: Any
) -> list[dict[str, Any]]:
    """The restarts table's rows, newest first (each row holds ``RESTARTS_TABLE_COLUMNS``)."""
    return _table_rows(client, RESTARTS_TABLE, prefix, restarts_table_body(**options))


def heartbeats_table(
    client: Elasticsearch, *, prefix: str = DEFAULT_INDEX_PREFIX, **options: Any
) -> list[dict[str, Any]]:
    """The heartbeats table's rows, newest first (each row holds ``HEARTBEATS_TABLE_COLUMNS``)."""
    return _table_rows(client, HEARTBEATS_TABLE, prefix, heartbeats_table_body(**options))
