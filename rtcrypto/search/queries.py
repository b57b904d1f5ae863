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
=======================  ==================  =================================================

The trade review (:mod:`rtcrypto.report`, ``rtc report`` and the ``trade_report`` DAG) asks the
same question of the same indices, "the documents of ``[since_ms, until_ms)`` of this trading
mode and symbol": it pages through them with :func:`documents_in_range_body`, whose filter is
:func:`range_filter`, the one the visualization bodies use. It reads documents rather than the
aggregations because it states the ledger's exact Decimal figures (``*_exact``), which a ``sum``
over the ``double`` fields cannot give.

Times are epoch milliseconds (UTC); intervals are Elasticsearch fixed intervals (``1m``, ``1h``).
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class VisualizationQuery:
    """Which saved visualization a body belongs to, and the index kinds it reads."""

    visualization_id: str
    index_kinds: tuple[str, ...]
    metric_fields: tuple[str, ...]  # the numeric fields it aggregates (or shows, for a table)


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
VISUALIZATION_QUERIES = {
    query.visualization_id: query
    for query in (CUMULATIVE_PROFIT, LIQUIDITY_RATIO, PRICE_VS_FORECAST, ORDERS_TABLE)
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
    return {
        "size": 0,
        "query": range_filter(since_ms, until_ms, {"symbol": symbol}),
        "aggs": {
            HISTOGRAM: {
                "date_histogram": _histogram(interval, 1),
                "aggs": {"liquidity_ratio": {"avg": {"field": "liquidity_ratio"}}},
            }
        },
    }


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


def liquidity_ratio_series(
    client: Elasticsearch, *, prefix: str = DEFAULT_INDEX_PREFIX, **options: Any
) -> list[tuple[int, float | None]]:
    """(bucket start ms, average liquidity ratio) per interval with windows."""
    points = run_series(
        client,
        indices_of(LIQUIDITY_RATIO, prefix),
        liquidity_ratio_body(**options),
        ("liquidity_ratio",),
    )
    return [(point.ts_ms, point.values["liquidity_ratio"]) for point in points]


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


def orders_table(
    client: Elasticsearch, *, prefix: str = DEFAULT_INDEX_PREFIX, **options: Any
) -> list[dict[str, Any]]:
    """The orders table's rows, newest first (each row holds ``ORDERS_TABLE_COLUMNS``)."""
    response = client.search(index=indices_of(ORDERS_TABLE, prefix), **orders_table_body(**options))
    return [hit["_source"] for hit in response["hits"]["hits"]]
