"""The project's Elasticsearch indices, their index templates, and idempotent provisioning.

Every index is ``<prefix>-<kind>`` (prefix ``settings.search_index_prefix``, default ``rtc``).
Each has an index template with an explicit, strict mapping: ``@timestamp`` is a date everywhere, numbers are
``double`` / ``long``, ids, sides, symbols and modes are ``keyword``, and a document with a field
the mapping does not know is rejected (HTTP 400), so a builder and its mapping cannot drift
apart unnoticed. Only core field types are used: the local node has no mapper-extras module
(no ``scaled_float``), so money is a ``double`` for charts plus an exact decimal string
(``*_exact``, keyword) for audits.

:func:`ensure_templates` creates or updates the templates and creates the concrete indices,
and deletes the templates of retired kinds (:data:`RETIRED_KINDS`) that it made earlier;
running it again changes nothing. Every index has one shard and the topology's replicas
(:func:`index_replicas`: 0 on the single node, ``RTC_CLUSTER_SEARCH_REPLICAS`` in the cluster).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import elasticsearch
from elasticsearch import Elasticsearch

from rtcrypto.config import Settings, get_settings
from rtcrypto.config_cluster import Topology
from rtcrypto.search.client import SearchError, SearchUnavailableError

logger = logging.getLogger(__name__)

DEFAULT_INDEX_PREFIX = "rtc"
TEMPLATE_PRIORITY = 200  # above Elasticsearch's built-in templates (priority 100)
MANAGED_BY = "rtcrypto"

# --- field types (core types only: the local node lacks mapper-extras) --------------------------
DATE: dict[str, Any] = {"type": "date", "format": "strict_date_optional_time||epoch_millis"}
KEYWORD: dict[str, Any] = {"type": "keyword"}
DOUBLE: dict[str, Any] = {"type": "double"}
LONG: dict[str, Any] = {"type": "long"}
BOOLEAN: dict[str, Any] = {"type": "boolean"}
TEXT: dict[str, Any] = {"type": "keyword", "ignore_above": 1024}  # long messages: kept, unindexed
NOT_INDEXED_OBJECT: dict[str, Any] = {"type": "object", "enabled": False}  # kept in _source only


def _money(*names: str) -> dict[str, dict[str, Any]]:
    """``name`` as a double and ``name_exact`` as its exact decimal string, for each name."""
    properties: dict[str, dict[str, Any]] = {}
    for name in names:
        properties[name] = DOUBLE
        properties[f"{name}_exact"] = KEYWORD
    return properties


TRADE_LABELS: dict[str, dict[str, Any]] = {
    "trading_mode": KEYWORD,  # paper | sandbox | live
    "forecast_version": KEYWORD,
    "symbol": KEYWORD,
}


@dataclass(frozen=True)
class IndexSpec:
    """One kind of document: its index, template and mapping."""

    kind: str
    description: str
    properties: dict[str, dict[str, Any]]

    def index_name(self, prefix: str = DEFAULT_INDEX_PREFIX) -> str:
        """The concrete index ``<prefix>-<kind>``."""
        return f"{prefix}-{self.kind}"

    def index_pattern(self, prefix: str = DEFAULT_INDEX_PREFIX) -> str:
        """The template's index pattern: the one concrete index."""
        return self.index_name(prefix)

    def template_name(self, prefix: str = DEFAULT_INDEX_PREFIX) -> str:
        return f"{prefix}-{self.kind}"

    def mappings(self) -> dict[str, Any]:
        return {
            "dynamic": "strict",
            "date_detection": False,
            "properties": {"@timestamp": DATE, **self.properties},
        }


INDEX_SPECS: dict[str, IndexSpec] = {
    spec.kind: spec
    for spec in (
        IndexSpec(
            "liquidity",
            "liquidity.minute.v1: price-weighted volume per side and their ratio, per minute",
            {
                "symbol": KEYWORD,
                "schema_version": LONG,
                "window_start_ms": LONG,
                "window_end_ms": LONG,
                "window_start": DATE,
                "window_end": DATE,
                "ts_event_ms": LONG,
                "bid_price_weighted_volume": DOUBLE,
                "ask_price_weighted_volume": DOUBLE,
                "liquidity_ratio": DOUBLE,
                "event_count": LONG,
                "mid_price": DOUBLE,
                "bid_depth": DOUBLE,
                "ask_depth": DOUBLE,
                "depth_imbalance": DOUBLE,
                "depth_band_pct": DOUBLE,
                "emitted_at_ms": LONG,
            },
        ),
        IndexSpec(
            "orders",
            "the trader's orders: what was asked and what the exchange reported",
            {
                **TRADE_LABELS,
                "client_order_id": KEYWORD,
                "order_id": KEYWORD,
                "exchange": KEYWORD,
                "side": KEYWORD,  # buy | sell
                "state": KEYWORD,  # submitted | open | filled | partially_filled | cancelled
                **_money(
                    "limit_price",
                    "quantity",
                    "executed_quantity",
                    "remaining_quantity",
                    "average_execution_price",
                    "fee_usd",
                ),
                "is_live": BOOLEAN,
                "is_cancelled": BOOLEAN,
                "ts_ms": LONG,
            },
        ),
        IndexSpec(
            "fills",
            "executed orders with fees and the balances after each",
            {
                **TRADE_LABELS,
                "client_order_id": KEYWORD,
                "fill_sequence": LONG,
                "trade_id": KEYWORD,
                "side": KEYWORD,
                **_money("price", "base_quantity", "quote_amount", "fee_usd", "usd_after"),
                **_money("btc_after"),
                "ts_event_ms": LONG,
            },
        ),
        IndexSpec(
            "balances",
            "balance snapshots per trading mode",
            {
                "trading_mode": KEYWORD,
                **_money("usd", "btc", "equity_usd"),
                "mark_price": DOUBLE,
                "ts_ms": LONG,
            },
        ),
        IndexSpec(
            "ticker",
            "best bid and ask",
            {
                "symbol": KEYWORD,
                "bid": DOUBLE,
                "bid_quantity": DOUBLE,
                "ask": DOUBLE,
                "ask_quantity": DOUBLE,
                "mid_price": DOUBLE,
                "spread": DOUBLE,
                "ts_ms": LONG,
            },
        ),
        IndexSpec(
            "scores",
            "round trips: each sell scored against the last buy, fees included",
            {
                **TRADE_LABELS,
                "exit_client_order_id": KEYWORD,
                "entry_client_order_id": KEYWORD,
                **_money("entry_price", "exit_price", "base_quantity"),
                **_money("entry_fee_usd", "exit_fee_usd", "pnl_usd", "return_pct"),
                "profitable": BOOLEAN,
                "entry_ts_ms": LONG,
                "exit_ts_ms": LONG,
                "holding_minutes": DOUBLE,
            },
        ),
        IndexSpec(
            "forecast",
            "published forecasts: log price, bounds, price and side per minute, per version",
            {
                "forecast_version": KEYWORD,
                "ds": DATE,
                "yhat": DOUBLE,
                "yhat_lower": DOUBLE,
                "yhat_upper": DOUBLE,
                "price_forecast": DOUBLE,
                "price_forecast_lower": DOUBLE,
                "price_forecast_upper": DOUBLE,
                "side": KEYWORD,
            },
        ),
        IndexSpec(
            "heartbeat",
            "service heartbeats (service.heartbeat.v1)",
            {
                "service": KEYWORD,
                "instance": KEYWORD,
                "ts_ms": LONG,
                "processed": LONG,
                "last_event_ms": LONG,
                "lag_ms": LONG,
                "reconnects": LONG,
                "gaps": LONG,
                "dead_letters": LONG,
                "last_error": TEXT,
                "details": NOT_INDEXED_OBJECT,  # service-specific counters, kept as sent
            },
        ),
        IndexSpec(
            "restarts",
            "service restarts recorded by the supervisor",
            {
                "service": KEYWORD,
                "reason": TEXT,
                "ts_ms": LONG,
                "pid": LONG,
            },
        ),
    )
}

# Kinds that no longer exist. ``orderbook`` (daily ``<prefix>-orderbook-YYYY.MM.DD``) had a
# template but never a writer; its template is deleted where this project created it.
RETIRED_KINDS: tuple[str, ...] = ("orderbook",)

INDEX_SETTINGS: dict[str, Any] = {
    "number_of_shards": 1,
    "number_of_replicas": 0,  # one node: a replica could never be assigned (status yellow)
}


def index_replicas(settings: Settings | None = None) -> int:
    """Replicas of every index: 0 in the single topology (one node), ``cluster.search_replicas``
    (default 1) in the cluster topology, where a node's loss leaves a copy of every shard."""
    settings = settings or get_settings()
    return settings.cluster.search_replicas if settings.topology is Topology.CLUSTER else 0


def index_settings(replicas: int = 0) -> dict[str, Any]:
    """The index settings of every template: one shard, ``replicas`` replicas."""
    return {**INDEX_SETTINGS, "number_of_replicas": replicas}


def index_name(kind: str, prefix: str = DEFAULT_INDEX_PREFIX) -> str:
    """``<prefix>-<kind>``; raises ``KeyError`` naming the kinds for an unknown one."""
    try:
        return INDEX_SPECS[kind].index_name(prefix)
    except KeyError:
        raise KeyError(f"unknown index kind {kind!r}; known: {', '.join(INDEX_SPECS)}") from None


def template_body(
    spec: IndexSpec, prefix: str = DEFAULT_INDEX_PREFIX, replicas: int = 0
) -> dict[str, Any]:
    """The ``PUT _index_template/<name>`` body, with a fingerprint of itself in ``_meta``."""
    body: dict[str, Any] = {
        "index_patterns": [spec.index_pattern(prefix)],
        "priority": TEMPLATE_PRIORITY,
        "template": {"settings": index_settings(replicas), "mappings": spec.mappings()},
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    body["_meta"] = {
        "managed_by": MANAGED_BY,
        "description": spec.description,
        "fingerprint": hashlib.sha256(canonical.encode()).hexdigest()[:16],
    }
    return body


@dataclass
class ProvisionReport:
    """What :func:`ensure_templates` changed (names of templates and indices)."""

    templates_created: list[str] = field(default_factory=list)
    templates_updated: list[str] = field(default_factory=list)
    templates_unchanged: list[str] = field(default_factory=list)
    indices_created: list[str] = field(default_factory=list)
    mappings_extended: list[str] = field(default_factory=list)
    templates_deleted: list[str] = field(default_factory=list)  # of retired kinds
    replicas_changed: list[str] = field(default_factory=list)  # indices of another topology

    @property
    def changed(self) -> bool:
        return bool(
            self.templates_created
            or self.templates_updated
            or self.indices_created
            or self.mappings_extended
            or self.templates_deleted
            or self.replicas_changed
        )

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "templates_created": self.templates_created,
            "templates_updated": self.templates_updated,
            "templates_unchanged": self.templates_unchanged,
            "indices_created": self.indices_created,
            "mappings_extended": self.mappings_extended,
            "templates_deleted": self.templates_deleted,
            "replicas_changed": self.replicas_changed,
        }


def _stored_meta(client: Elasticsearch, name: str) -> dict[str, Any] | None:
    """The ``_meta`` of template ``name`` as stored ({} if it has none), None if it is absent."""
    response = client.options(ignore_status=404).indices.get_index_template(name=name)
    templates = response.body.get("index_templates", []) if response.meta.status == 200 else []
    if not templates:
        return None
    return dict(templates[0]["index_template"].get("_meta") or {})


def _existing_fingerprint(client: Elasticsearch, name: str) -> str | None:
    """The fingerprint of template ``name`` as stored, "" if it has none, None if it is absent."""
    meta = _stored_meta(client, name)
    return None if meta is None else str(meta.get("fingerprint", ""))


def _delete_retired(client: Elasticsearch, prefix: str, report: ProvisionReport) -> None:
    """Delete the templates of :data:`RETIRED_KINDS` that this project made (``managed_by``).

    Indices are left alone: deleting data is a person's decision.
    """
    for kind in RETIRED_KINDS:
        name = f"{prefix}-{kind}"
        meta = _stored_meta(client, name)
        if meta is None or meta.get("managed_by") != MANAGED_BY:
            continue
        client.indices.delete_index_template(name=name)
        report.templates_deleted.append(name)
        logger.info("index template %s deleted (kind %s is retired)", name, kind)


def _extend_mapping(client: Elasticsearch, spec: IndexSpec, index: str) -> bool:
    """Add fields the template has and ``index`` lacks; True if any was added.

    Raises :class:`SearchError` when a field exists with another type: Elasticsearch cannot
    change it in place, so the index has to be reindexed (or deleted, for a fresh start).
    """
    current = client.indices.get_mapping(index=index)[index]["mappings"].get("properties", {})
    wanted = spec.mappings()["properties"]
    conflicts = [
        f"{name}: {current[name].get('type', 'object')} != {wanted[name]['type']}"
        for name in wanted
        if name in current and current[name].get("type", "object") != wanted[name]["type"]
    ]
    if conflicts:
        raise SearchError(
            f"index {index} has fields of another type than its template ({'; '.join(conflicts)}); "
            f"reindex it into a new index, or delete it if its documents can be replayed"
        )
    missing = {name: wanted[name] for name in wanted if name not in current}
    if not missing:
        return False
    client.indices.put_mapping(index=index, properties=missing)
    return True


def _align_replicas(client: Elasticsearch, index: str, replicas: int) -> bool:
    """Set ``number_of_replicas`` of ``index`` (a dynamic setting); True if it was another."""
    current = client.indices.get_settings(index=index, name="index.number_of_replicas")
    found = current[index]["settings"]["index"]["number_of_replicas"]
    if int(found) == replicas:
        return False
    client.indices.put_settings(index=index, settings={"index": {"number_of_replicas": replicas}})
    return True


def ensure_templates(
    client: Elasticsearch, prefix: str = DEFAULT_INDEX_PREFIX, *, replicas: int | None = None
) -> ProvisionReport:
    """Create or update every index template, create the concrete indices, extend old mappings.

    Idempotent: a second run reports every template unchanged and creates nothing. A template
    whose stored fingerprint differs from the code's is replaced (new indices use it), and
    existing indices get the fields they lack and ``replicas`` replicas (None: those of the
    topology, :func:`index_replicas`). Raises :class:`SearchUnavailableError` when the
    cluster cannot be reached and :class:`SearchError` when it refuses a template or mapping.
    """
    report = ProvisionReport()
    replicas = index_replicas() if replicas is None else replicas
    try:
        for spec in INDEX_SPECS.values():
            name = spec.template_name(prefix)
            body = template_body(spec, prefix, replicas)
            stored = _existing_fingerprint(client, name)
            if stored != body["_meta"]["fingerprint"]:
                client.indices.put_index_template(name=name, **body)
                (report.templates_created if stored is None else report.templates_updated).append(
                    name
                )
                logger.info(
                    "index template %s %s", name, "created" if stored is None else "updated"
                )
            else:
                report.templates_unchanged.append(name)
            existing = client.options(ignore_status=404).indices.get(
                index=spec.index_pattern(prefix), allow_no_indices=True, expand_wildcards="open"
            )
            existing_names = sorted(existing.body) if existing.meta.status == 200 else []
            for index in existing_names:
                if _extend_mapping(client, spec, index):
                    report.mappings_extended.append(index)
                if _align_replicas(client, index, replicas):
                    report.replicas_changed.append(index)
            if spec.index_name(prefix) not in existing_names:
                response = client.options(ignore_status=400).indices.create(
                    index=spec.index_name(prefix)
                )
                if response.meta.status == 200:
                    report.indices_created.append(spec.index_name(prefix))
                elif "resource_already_exists" not in str(response.body):
                    raise SearchError(
                        f"creating index {spec.index_name(prefix)} failed: {response.body}"
                    )
        _delete_retired(client, prefix, report)
    except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as error:
        raise SearchUnavailableError(
            f"Elasticsearch does not answer while provisioning indices: {error}. Start the local "
            f"node with `rtc stack up`, or set RTC_SEARCH_URL"
        ) from error
    except elasticsearch.ApiError as error:
        raise SearchError(f"Elasticsearch refused an index template or index: {error}") from error
    return report
