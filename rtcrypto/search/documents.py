"""Pure builders of Elasticsearch documents: ``SearchAction(index, id, source)`` per domain object.

Every document gets a deterministic ``_id`` built from what identifies it in the domain, so
indexing the same thing twice (a retry, a replay, a restarted service) overwrites instead of
duplicating:

==========  =========================================================================
index       ``_id``
==========  =========================================================================
orders      ``client_order_id`` (``exchange:<order_id>`` for an order not sent by us)
fills       ``<client_order_id>:trade:<trade_id>``, else ``<client_order_id>:<sequence>``
scores      the exit (sell) order's ``client_order_id``
liquidity   ``<symbol>:<window_start_ms>`` (the Kafka key of ``liquidity.minute.v1``)
ticker      ``<symbol>:<ts_ms>``
balances    ``<trading_mode>:<ts_ms>``
forecast    ``<version>:<ds epoch ms>``
heartbeat   ``<service>:<instance>:<ts_ms>``
restarts    ``<service>:<ts_ms>``
==========  =========================================================================

Decimals become JSON numbers (``float``) so that Kibana can chart and sum them; money also keeps
an exact decimal string (``pnl_usd_exact``, ...) for audits. Times are epoch milliseconds (UTC);
``@timestamp`` is their ISO 8601 rendering. Symbols are upper case (``BTCUSD``). Nothing here
does I/O or reads a clock: the same input always gives the same action.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rtcrypto.search.indices import DEFAULT_INDEX_PREFIX, INDEX_SPECS

if TYPE_CHECKING:
    import pandas as pd

    from rtcrypto.exchange.base import OrderStatus
    from rtcrypto.market.schemas import Heartbeat, LiquidityMinute
    from rtcrypto.trading.ledger import Fill, RoundTrip
    from rtcrypto.trading.order_types import OrderRequest, TopOfBook

TRADING_MODES = frozenset({"paper", "sandbox", "live"})
MINUTE_MS = 60_000

Number = Decimal | int | float


@dataclass(frozen=True, slots=True)
class SearchAction:
    """One document to index: where, under which ``_id``, and its ``_source``."""

    index: str
    id: str
    source: dict[str, Any]

    def bulk_entry(self) -> dict[str, Any]:
        """The action as the client's bulk helpers take it (an ``index`` op: overwrite)."""
        return {"_op_type": "index", "_index": self.index, "_id": self.id, "_source": self.source}


# --- value conversions -------------------------------------------------------------------------


def iso_utc_ms(ts_ms: int) -> str:
    """Epoch milliseconds -> ``2026-11-27T20:00:00.123Z`` (exact: no float on the way)."""
    seconds, millis = divmod(int(ts_ms), 1000)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


def number(value: Number | None) -> float | None:
    """A finite JSON number (``float``) for a Decimal, int or float; None stays None.

    Raises ``ValueError`` for NaN or infinity, which Elasticsearch would reject anyway.
    """
    if value is None:
        return None
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"not a finite number: {value!r}")
    return result


def exact(value: Decimal | int | None) -> str | None:
    """The exact decimal string (``"0.00000001"``, never exponent notation); None stays None."""
    if value is None:
        return None
    if isinstance(value, float):
        raise TypeError(f"exact values must be Decimal or int, got the float {value!r}")
    decimal = Decimal(value)
    if not decimal.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return format(decimal, "f")


def _money(**values: Decimal | int | None) -> dict[str, Any]:
    """``name`` as a float and ``name_exact`` as the exact string, for each keyword."""
    fields: dict[str, Any] = {}
    for name, value in values.items():
        fields[name] = number(value)
        fields[f"{name}_exact"] = exact(value)
    return fields


def _trading_mode(mode: str) -> str:
    if mode not in TRADING_MODES:
        raise ValueError(f"trading mode must be one of {sorted(TRADING_MODES)}, got {mode!r}")
    return mode


def _symbol(symbol: str) -> str:
    if not symbol:
        raise ValueError("symbol is required")
    return symbol.upper()


def _index(kind: str, prefix: str) -> str:
    return INDEX_SPECS[kind].index_name(prefix)


def _as_mapping(record: Mapping[str, Any] | object) -> Mapping[str, Any]:
    if isinstance(record, Mapping):
        return record
    if is_dataclass(record) and not isinstance(record, type):
        return asdict(record)
    raise TypeError(f"expected a mapping or a dataclass, got {type(record).__name__}")


# --- trading -----------------------------------------------------------------------------------


def order_state(status: OrderStatus | None) -> str:
    """``submitted`` (no exchange answer yet), ``open``, ``filled``, ``partially_filled`` or
    ``cancelled`` (nothing executed)."""
    if status is None:
        return "submitted"
    if status.is_live:
        return "open"
    if status.executed_quantity >= status.original_quantity:
        return "filled"
    if status.executed_quantity > 0:
        return "partially_filled"
    return "cancelled"


def order_document(
    request: OrderRequest | None,
    status: OrderStatus | None,
    *,
    trading_mode: str,
    forecast_version: str | None,
    exchange: str | None = None,
    ts_ms: int | None = None,
    prefix: str = DEFAULT_INDEX_PREFIX,
) -> SearchAction:
    """An order as asked (``request``) and as the exchange reported it (``status``).

    Either may be missing: a request alone is ``submitted`` and needs ``ts_ms``; a later status
    for the same ``client_order_id`` overwrites it. ``@timestamp`` is the status's time.
    """
    if request is None and status is None:
        raise ValueError("an order document needs the request, the status, or both")
    client_order_id = (request.client_order_id if request else None) or (
        status.client_order_id if status else None
    )
    if client_order_id:
        document_id = client_order_id
    elif status is not None and status.order_id:
        document_id = f"exchange:{status.order_id}"
    else:
        raise ValueError("an order needs a client_order_id or an exchange order_id")
    when = status.ts_ms if status is not None else ts_ms
    if when is None:
        raise ValueError(f"order {document_id}: ts_ms is required when there is no status")
    if request is not None:
        symbol, side = request.symbol, request.side
        limit_price, quantity = request.limit_price, request.quantity
    else:
        assert status is not None  # checked above
        symbol, side = status.symbol, status.side
        limit_price, quantity = status.limit_price, status.original_quantity
    source: dict[str, Any] = {
        "@timestamp": iso_utc_ms(when),
        "ts_ms": int(when),
        "client_order_id": client_order_id,
        "order_id": status.order_id if status else None,
        "exchange": exchange,
        "symbol": _symbol(symbol),
        "side": str(side),
        "state": order_state(status),
        "trading_mode": _trading_mode(trading_mode),
        "forecast_version": forecast_version,
        **_money(
            limit_price=limit_price,
            quantity=quantity,
            executed_quantity=status.executed_quantity if status else None,
            remaining_quantity=status.remaining_quantity if status else None,
            average_execution_price=status.average_execution_price if status else None,
            fee_usd=status.fee_usd if status else None,
        ),
        "is_live": status.is_live if status else None,
        "is_cancelled": status.is_cancelled if status else None,
    }
    return SearchAction(_index("orders", prefix), document_id, source)


def fill_id(client_order_id: str, *, sequence: int = 0, trade_id: str | int | None = None) -> str:
    """``<client_order_id>:trade:<trade_id>`` when the exchange names the trade, else
    ``<client_order_id>:<sequence>`` (the fill's position among the order's fills, from 0)."""
    if not client_order_id:
        raise ValueError("a fill needs its order's client_order_id")
    if trade_id is not None and str(trade_id) != "":
        return f"{client_order_id}:trade:{trade_id}"
    if sequence < 0:
        raise ValueError(f"fill sequence must be >= 0, got {sequence}")
    return f"{client_order_id}:{sequence}"


def fill_document(
    fill: Fill,
    *,
    client_order_id: str,
    symbol: str,
    trading_mode: str,
    forecast_version: str | None,
    sequence: int = 0,
    trade_id: str | int | None = None,
    prefix: str = DEFAULT_INDEX_PREFIX,
) -> SearchAction:
    """One executed fill with its fee and the balances after it (USD, BTC)."""
    source: dict[str, Any] = {
        "@timestamp": iso_utc_ms(fill.ts_event_ms),
        "ts_event_ms": int(fill.ts_event_ms),
        "client_order_id": client_order_id,
        "fill_sequence": sequence,
        "trade_id": None if trade_id is None else str(trade_id),
        "symbol": _symbol(symbol),
        "side": str(fill.side),
        "trading_mode": _trading_mode(trading_mode),
        "forecast_version": forecast_version,
        **_money(
            price=fill.price,
            base_quantity=fill.base_quantity,
            quote_amount=fill.quote_amount,
            fee_usd=fill.fee_usd,
            usd_after=fill.balances_after.usd,
            btc_after=fill.balances_after.btc,
        ),
    }
    document_id = fill_id(client_order_id, sequence=sequence, trade_id=trade_id)
    return SearchAction(_index("fills", prefix), document_id, source)


def score_document(
    trip: RoundTrip,
    *,
    exit_client_order_id: str,
    symbol: str,
    trading_mode: str,
    forecast_version: str | None,
    entry_client_order_id: str | None = None,
    prefix: str = DEFAULT_INDEX_PREFIX,
) -> SearchAction:
    """A round trip (sell scored against the last buy), ``_id`` = the sell's client order id.

    ``pnl_usd`` is net of both fees; ``pnl_usd_exact`` is the ledger's Decimal as a string.
    """
    if not exit_client_order_id:
        raise ValueError("a score needs the exit order's client_order_id")
    entry, exit_fill = trip.entry, trip.exit
    source: dict[str, Any] = {
        "@timestamp": iso_utc_ms(exit_fill.ts_event_ms),
        "exit_ts_ms": int(exit_fill.ts_event_ms),
        "entry_ts_ms": int(entry.ts_event_ms),
        "holding_minutes": (exit_fill.ts_event_ms - entry.ts_event_ms) / MINUTE_MS,
        "exit_client_order_id": exit_client_order_id,
        "entry_client_order_id": entry_client_order_id,
        "symbol": _symbol(symbol),
        "trading_mode": _trading_mode(trading_mode),
        "forecast_version": forecast_version,
        **_money(
            entry_price=entry.price,
            exit_price=exit_fill.price,
            base_quantity=exit_fill.base_quantity,
            entry_fee_usd=entry.fee_usd,
            exit_fee_usd=exit_fill.fee_usd,
            pnl_usd=trip.pnl_usd,
            return_pct=trip.return_pct,
        ),
        "profitable": trip.pnl_usd > 0,
    }
    return SearchAction(_index("scores", prefix), exit_client_order_id, source)


def balances_document(
    usd: Decimal,
    btc: Decimal,
    ts_ms: int,
    *,
    trading_mode: str,
    mark_price: Decimal | None = None,
    prefix: str = DEFAULT_INDEX_PREFIX,
) -> SearchAction:
    """A balance snapshot; with ``mark_price`` (USD per BTC) also ``equity_usd`` = usd + btc x price."""
    equity = usd + btc * mark_price if mark_price is not None else None
    source: dict[str, Any] = {
        "@timestamp": iso_utc_ms(ts_ms),
        "ts_ms": int(ts_ms),
        "trading_mode": _trading_mode(trading_mode),
        **_money(usd=usd, btc=btc, equity_usd=equity),
        "mark_price": number(mark_price),
    }
    return SearchAction(_index("balances", prefix), f"{trading_mode}:{int(ts_ms)}", source)


def ticker_document(book: TopOfBook, *, prefix: str = DEFAULT_INDEX_PREFIX) -> SearchAction:
    """Best bid and ask; ``mid_price`` and ``spread`` are null when a side is empty (price 0)."""
    both_sides = book.bid > 0 and book.ask > 0
    symbol = _symbol(book.symbol)
    source: dict[str, Any] = {
        "@timestamp": iso_utc_ms(book.ts_ms),
        "ts_ms": int(book.ts_ms),
        "symbol": symbol,
        "bid": number(book.bid),
        "bid_quantity": number(book.bid_quantity),
        "ask": number(book.ask),
        "ask_quantity": number(book.ask_quantity),
        "mid_price": number((book.bid + book.ask) / 2) if both_sides else None,
        "spread": number(book.ask - book.bid) if both_sides else None,
    }
    return SearchAction(_index("ticker", prefix), f"{symbol}:{int(book.ts_ms)}", source)


# --- market data and forecast ------------------------------------------------------------------

LIQUIDITY_NUMBERS = (
    "bid_price_weighted_volume",
    "ask_price_weighted_volume",
    "liquidity_ratio",
    "mid_price",
    "bid_depth",
    "ask_depth",
    "depth_imbalance",
    "depth_band_pct",
)
LIQUIDITY_INTEGERS = ("schema_version", "ts_event_ms", "event_count", "emitted_at_ms")
# Kafka envelope fields that the document carries elsewhere (``_id``) or not at all.
LIQUIDITY_ENVELOPE = ("type", "key")


def liquidity_document(
    record: Mapping[str, Any] | LiquidityMinute, *, prefix: str = DEFAULT_INDEX_PREFIX
) -> SearchAction:
    """A ``liquidity.minute.v1`` record (as read from Kafka, or a ``LiquidityMinute``).

    ``@timestamp`` is the window's start. Fields the record lacks are null.
    """
    fields = _as_mapping(record)
    symbol = _symbol(str(fields["symbol"]))
    start_ms = int(fields["window_start_ms"])
    end_ms = int(fields["window_end_ms"])
    source: dict[str, Any] = {
        "@timestamp": iso_utc_ms(start_ms),
        "symbol": symbol,
        "window_start_ms": start_ms,
        "window_end_ms": end_ms,
        "window_start": iso_utc_ms(start_ms),
        "window_end": iso_utc_ms(end_ms),
    }
    for name in LIQUIDITY_NUMBERS:
        source[name] = number(fields.get(name))
    for name in LIQUIDITY_INTEGERS:
        value = fields.get(name)
        source[name] = None if value is None else int(value)
    return SearchAction(_index("liquidity", prefix), f"{symbol}:{start_ms}", source)


def forecast_document(
    version: str,
    ds_ms: int,
    yhat: float,
    yhat_lower: float,
    yhat_upper: float,
    side: str,
    *,
    prefix: str = DEFAULT_INDEX_PREFIX,
    timestamp_offset_ms: int = 0,
) -> SearchAction:
    """One forecast minute: ``yhat`` and bounds are log prices; ``price_forecast*`` = exp of them.

    ``@timestamp`` is ``ds`` moved by ``timestamp_offset_ms``: the simulator replays an old
    capture shifted to now, and the forecast is drawn on the replay's clock (``ds`` stays).
    """
    if not version:
        raise ValueError("a forecast document needs its version")
    if side not in ("buy", "sell"):
        raise ValueError(f"forecast side must be buy or sell, got {side!r}")
    source: dict[str, Any] = {
        "@timestamp": iso_utc_ms(ds_ms + timestamp_offset_ms),
        "ds": iso_utc_ms(ds_ms),
        "forecast_version": version,
        "yhat": number(yhat),
        "yhat_lower": number(yhat_lower),
        "yhat_upper": number(yhat_upper),
        "price_forecast": number(math.exp(yhat)),
        "price_forecast_lower": number(math.exp(yhat_lower)),
        "price_forecast_upper": number(math.exp(yhat_upper)),
        "side": side,
    }
    return SearchAction(_index("forecast", prefix), f"{version}:{int(ds_ms)}", source)


def forecast_documents(
    frame: pd.DataFrame,
    version: str,
    *,
    prefix: str = DEFAULT_INDEX_PREFIX,
    timestamp_offset_ms: int = 0,
) -> Iterator[SearchAction]:
    """Every row of a published forecast frame (ds UTC, yhat, yhat_lower, yhat_upper, side)."""
    import pandas as pd

    ds_ms = pd.to_datetime(frame["ds"], utc=True).astype("int64").to_numpy() // 1_000_000
    columns = zip(
        ds_ms.tolist(),
        frame["yhat"].to_numpy(dtype=float).tolist(),
        frame["yhat_lower"].to_numpy(dtype=float).tolist(),
        frame["yhat_upper"].to_numpy(dtype=float).tolist(),
        frame["side"].astype(str).tolist(),
        strict=True,
    )
    for ds, yhat, lower, upper, side in columns:
        yield forecast_document(
            version,
            ds,
            yhat,
            lower,
            upper,
            side,
            prefix=prefix,
            timestamp_offset_ms=timestamp_offset_ms,
        )


# --- operations --------------------------------------------------------------------------------

HEARTBEAT_FIELDS = (
    "processed",
    "last_event_ms",
    "lag_ms",
    "reconnects",
    "gaps",
    "dead_letters",
)
HEARTBEAT_ENVELOPE = ("type", "schema_version", "service", "instance", "ts_ms", "last_error")


def heartbeat_document(
    heartbeat: Heartbeat | Mapping[str, Any], *, prefix: str = DEFAULT_INDEX_PREFIX
) -> SearchAction:
    """A ``service.heartbeat.v1`` record; service-specific extra fields go to ``details``.

    ``_id`` includes the instance: two instances of one service may beat in the same ms.
    """
    fields = _as_mapping(heartbeat)
    service = str(fields["service"])
    instance = str(fields.get("instance") or "")
    ts_ms = int(fields["ts_ms"])
    if not service:
        raise ValueError("a heartbeat needs its service")
    source: dict[str, Any] = {
        "@timestamp": iso_utc_ms(ts_ms),
        "ts_ms": ts_ms,
        "service": service,
        "instance": instance,
        "last_error": fields.get("last_error"),
    }
    for name in HEARTBEAT_FIELDS:
        value = fields.get(name)
        source[name] = None if value is None else int(value)
    known = set(HEARTBEAT_FIELDS) | set(HEARTBEAT_ENVELOPE)
    details = {name: value for name, value in fields.items() if name not in known}
    if not details.get("alerts"):
        details.pop("alerts", None)  # most heartbeats have none; when set they go to details
    source["details"] = details or None
    document_id = f"{service}:{instance}:{ts_ms}"
    return SearchAction(_index("heartbeat", prefix), document_id, source)


def restart_document(
    service: str,
    ts_ms: int,
    *,
    reason: str,
    pid: int | None = None,
    prefix: str = DEFAULT_INDEX_PREFIX,
) -> SearchAction:
    """A service restart recorded by the supervisor (``pid`` of the new process, if known)."""
    if not service:
        raise ValueError("a restart needs its service")
    source: dict[str, Any] = {
        "@timestamp": iso_utc_ms(ts_ms),
        "ts_ms": int(ts_ms),
        "service": service,
        "reason": reason,
        "pid": pid,
    }
    return SearchAction(_index("restarts", prefix), f"{service}:{int(ts_ms)}", source)
