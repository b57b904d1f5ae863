"""The sandbox's account-history endpoints, session heartbeat and resting-order matching.

Private endpoints (registered by :meth:`rtcrypto.simulator.sandbox.Sandbox.add_routes`, signed
like every private request), with Gemini's field names and types:

- ``/v1/mytrades``: the account's fills, newest first (``symbol``, ``timestamp`` in s or ms:
  the earliest ``limit_trades`` at or after it, else the most recent; ``limit_trades`` <= 500,
  default 50); each with ``price``/``amount``/``fee_amount`` as strings,
  ``fee_currency``, ``tid`` (int), ``order_id`` (string), ``timestamp`` (int s),
  ``timestampms`` (int ms), ``type`` (Buy/Sell), ``aggressor`` (bool: False = maker fill).
- ``/v1/orders/history``: closed orders, newest first (``symbol``, ``timestamp``,
  ``limit_orders`` <= 500, default 50), each with its ``trades``.
- ``/v1/order/cancel/all`` and ``/v1/order/cancel/session``: cancel every live order of the key;
  ``{"result": "ok", "details": {"cancelledOrders": [ids], "cancelRejects": []}}``.
- ``/v1/notionalvolume``: the fee tier in basis points (``api_taker_fee_bps``, ... : the sandbox
  charges one rate, ``--sandbox-fee-pct`` x 100) and the 30-day notional of the key's fills.
- ``/v1/heartbeat``: ``{"result": "ok"}``; like any private request it revives the session.

Docs: https://docs.gemini.com/rest/orders and https://docs.gemini.com/rest/session.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rtcrypto.simulator.sandbox import Sandbox, SandboxOrder

log = logging.getLogger("simulator")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MS_THRESHOLD = 100_000_000_000  # a `timestamp` above this is milliseconds, below it seconds
DAY_MS = 86_400_000
FEE_CHANNELS = ("web", "api", "fix")
FEE_KINDS = ("maker", "taker", "auction")

PrivateHandler = Callable[[str, dict[str, Any]], dict[str, Any] | list[Any]]


def private_handlers(sandbox: Sandbox) -> dict[str, PrivateHandler]:
    """The endpoints of this module bound to ``sandbox``, by path."""
    return {
        "/v1/mytrades": lambda key, payload: my_trades(sandbox, key, payload),
        "/v1/orders/history": lambda key, payload: orders_history(sandbox, key, payload),
        "/v1/order/cancel/all": lambda key, payload: cancel_all(sandbox, key),
        "/v1/order/cancel/session": lambda key, payload: cancel_all(sandbox, key),
        "/v1/notionalvolume": lambda key, payload: notional_volume(sandbox, key),
        "/v1/heartbeat": lambda key, payload: {"result": "ok"},
    }


# --- request parameters (pure) ----------------------------------------------------------------


def whole_number(value: Any) -> int | None:
    """``value`` (an int or a string of ASCII digits) as a non-negative int, else None."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() else None


def since_ms(value: Any, name: str = "timestamp") -> int:
    """A Gemini ``timestamp`` parameter (seconds or milliseconds, int or digit string) in ms;
    0 when absent. Raises ``ValueError`` naming the parameter."""
    if value is None:
        return 0
    number = whole_number(value)
    if number is None:
        raise ValueError(f"{name} must be a whole number of seconds or milliseconds, got {value!r}")
    return number if number >= MS_THRESHOLD else number * 1000


def limit_of(value: Any, name: str) -> int:
    """A ``limit_*`` parameter: 1..500, default 50. Raises ``ValueError`` naming it."""
    if value is None:
        return DEFAULT_LIMIT
    number = whole_number(value)
    if number is None:
        raise ValueError(f"{name} must be a whole number from 1 to {MAX_LIMIT}, got {value!r}")
    if not 1 <= number <= MAX_LIMIT:
        raise ValueError(f"{name} must be from 1 to {MAX_LIMIT}, got {number}")
    return number


def _parameters(payload: dict[str, Any], limit_name: str) -> tuple[str | None, int, int]:
    from rtcrypto.simulator.sandbox import SandboxError

    try:
        start_ms = since_ms(payload.get("timestamp"))
        limit = limit_of(payload.get(limit_name), limit_name)
    except ValueError as error:
        raise SandboxError(400, "InvalidParameter", str(error)) from None
    symbol = payload.get("symbol")
    return (str(symbol).lower() if symbol else None), start_ms, limit


# --- endpoints -------------------------------------------------------------------------------


def _own_orders(sandbox: Sandbox, api_key: str, symbol: str | None) -> list[SandboxOrder]:
    return [
        order
        for order in sandbox.orders.values()
        if order.api_key == api_key and (symbol is None or order.symbol == symbol)
    ]


def my_trades(sandbox: Sandbox, api_key: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """``/v1/mytrades``: the key's fills, newest first. Without ``timestamp`` the most recent
    ``limit_trades``; with it the earliest ``limit_trades`` at or after it, so that Gemini's
    documented paging (``timestamp`` = the page's highest + 1, until an empty page) walks the
    whole history."""
    symbol, start_ms, limit = _parameters(payload, "limit_trades")
    trades = [
        trade
        for order in _own_orders(sandbox, api_key, symbol)
        for trade in order.trades
        if trade["timestampms"] >= start_ms
    ]
    trades.sort(key=lambda trade: (trade["timestampms"], trade["tid"]), reverse=True)
    if payload.get("timestamp") is None:
        return trades[:limit]
    return trades[-limit:]


def orders_history(sandbox: Sandbox, api_key: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """``/v1/orders/history``: the key's closed orders at or after ``timestamp``, newest first."""
    symbol, start_ms, limit = _parameters(payload, "limit_orders")
    closed = [
        order
        for order in _own_orders(sandbox, api_key, symbol)
        if not order.is_live and order.ts_ms >= start_ms
    ]
    closed.sort(key=lambda order: (order.ts_ms, order.order_id), reverse=True)
    return [order.to_json(include_trades=True) for order in closed[:limit]]


def cancel_all(sandbox: Sandbox, api_key: str) -> dict[str, Any]:
    """Cancel every live order of ``api_key``; Gemini's ``details`` lists their ids."""
    cancelled = []
    for order in _own_orders(sandbox, api_key, None):
        if order.is_live:
            sandbox.cancel_order(api_key, {"order_id": order.order_id})
            cancelled.append(order.order_id)
    return {"result": "ok", "details": {"cancelledOrders": cancelled, "cancelRejects": []}}


def fee_bps(fee_rate: Decimal) -> int | float:
    """A fee rate (0.0025) in basis points as Gemini types it: an integer when whole (25)."""
    bps = fee_rate * 10_000
    return int(bps) if bps == bps.to_integral_value() else float(bps)


def notional_volume(sandbox: Sandbox, api_key: str) -> dict[str, Any]:
    """``/v1/notionalvolume``: the fee tier (one rate for every channel and kind) and the
    notional (quote currency) of the key's fills in the 30 days up to the replay's now."""
    now_ms = sandbox.engine.stream_time_ms()
    per_day: dict[str, Decimal] = defaultdict(Decimal)
    total = Decimal(0)
    for order in _own_orders(sandbox, api_key, None):
        for trade in order.trades:
            if trade["timestampms"] < now_ms - 30 * DAY_MS:
                continue
            notional = Decimal(trade["price"]) * Decimal(trade["amount"])
            total += notional
            per_day[_utc_date(trade["timestampms"])] += notional
    bps = fee_bps(sandbox.fee_rate)
    body: dict[str, Any] = {
        f"{channel}_{kind}_fee_bps": bps for channel in FEE_CHANNELS for kind in FEE_KINDS
    }
    body.update(
        {
            "block_maker_fee_bps": bps,
            "block_taker_fee_bps": bps,
            "notional_30d_volume": float(total),
            "last_updated_ms": now_ms,
            "date": _utc_date(now_ms),
            "notional_1d_volume": [
                {"date": day, "notional_volume": float(volume)}
                for day, volume in sorted(per_day.items(), reverse=True)
            ],
        }
    )
    return body


def _utc_date(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


# --- background: heartbeat sessions and resting orders -------------------------------------


def maintain(sandbox: Sandbox) -> None:
    """One pass of the sandbox's background work (see :meth:`Sandbox.run`)."""
    expire_silent_sessions(sandbox)
    match_resting_orders(sandbox)


def expire_silent_sessions(sandbox: Sandbox) -> list[int]:
    """Cancel the live orders of every "Requires Heartbeat" key silent for longer than the
    timeout (Gemini's session expiry); return the cancelled order ids."""
    now = sandbox.wall()
    cancelled: list[int] = []
    for api_key in sandbox.heartbeat_keys:
        last = sandbox.last_message_wall.get(api_key)
        if last is None or now - last <= sandbox.heartbeat_timeout_s:
            continue
        ids = cancel_all(sandbox, api_key)["details"]["cancelledOrders"]
        if ids:
            log.info(
                "sandbox heartbeat expired after %.1f s: cancelled %d orders", now - last, len(ids)
            )
        cancelled.extend(ids)
    return cancelled


def match_resting_orders(sandbox: Sandbox) -> int:
    """Fill live orders the replayed book now crosses, as maker fills at the order's price,
    up to the crossing liquidity; return how many fills were booked."""
    from rtcrypto.simulator.sandbox import match_limit_order
    from rtcrypto.simulator.wire import split_symbol

    fills_booked = 0
    for order in [order for order in sandbox.orders.values() if order.is_live]:
        book_side = "ask" if order.side == "buy" else "bid"
        remaining = order.original_amount - order.executed_amount
        levels = sandbox.levels(order.symbol.upper(), book_side)
        fills = match_limit_order(levels, order.side, order.price, remaining)
        if not fills:
            continue
        account = sandbox.accounts[order.api_key]
        base, quote = (currency.lower() for currency in split_symbol(order.symbol))
        ts_ms = sandbox.engine.stream_time_ms()
        sandbox._hold(order, account, base, quote, -1)
        for level_price, quantity in fills:
            sandbox._fill(
                order, account, book_side, order.price, quantity, ts_ms, False, level_price
            )
            fills_booked += 1
        if order.executed_amount >= order.original_amount:
            order.is_live, order.closed_ms = False, ts_ms
            sandbox.order_events.closed(order)
        else:
            sandbox._hold(order, account, base, quote, +1)
        log.info(
            "sandbox resting order filled order_id=%d executed=%s live=%s",
            order.order_id,
            order.executed_amount,
            order.is_live,
        )
    return fills_booked
