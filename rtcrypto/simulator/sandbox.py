"""The simulator as a Gemini sandbox: private REST endpoints, accounts, and order matching.

Routes (added to the simulator's app by :meth:`Sandbox.add_routes`):

- ``POST /v1/balances``, ``/v1/order/new``, ``/v1/order/status``, ``/v1/order/cancel``,
  ``/v1/orders`` and (:mod:`rtcrypto.simulator.sandbox_trades`) ``/v1/mytrades``,
  ``/v1/orders/history``, ``/v1/order/cancel/all``, ``/v1/order/cancel/session``,
  ``/v1/notionalvolume``, ``/v1/heartbeat``: authenticated like Gemini (:func:`rtcrypto.exchange.signing.
  verify_private_request`): a missing header -> 400 ``Missing...Header``; an unknown key or a bad
  signature -> 400 ``InvalidSignature``; a payload whose ``request`` is not the path -> 400
  ``InvalidSignature``; a nonce not greater than the key's last accepted one -> 400 ``InvalidNonce``.
- ``GET /v1/book/{symbol}?limit_bids=N&limit_asks=N``: the replayed book (0 = every level);
  ``/v1/symbols/details/{symbol}``, ``/v2/ticker/{symbol}``, ``/v1/trades/{symbol}``: see
  :mod:`rtcrypto.simulator.sandbox_public`.

Orders are checked against the symbol's details (:mod:`rtcrypto.simulator.symbol_details`): a
quantity below ``min_order_size`` or off ``tick_size`` -> 400 ``InvalidQuantity``, a price off
``quote_increment`` -> 400 ``InvalidPrice``.

Matching: an ``exchange limit`` order is matched at once against the replayed book's current
state: a buy against asks <= its limit, a sell against bids >= its limit, best price first, each
fill at the level's price (partial fills allowed). ``immediate-or-cancel`` cancels the rest,
``fill-or-kill`` fills all or nothing, ``maker-or-cancel`` is cancelled if it would cross (else it
rests), and an order without options rests (live, funds held) until cancelled, and fills as a maker at its own
price when the replayed book later crosses it (checked every ``MAINTAIN_INTERVAL_S``). Every fill
pays the fee (``--sandbox-fee-pct``, default RTC_TAKER_FEE_PCT, of the notional, in the quote
currency). A "Requires Heartbeat" account's live orders are cancelled after
``heartbeat_timeout_s`` without a private request.

The replayed book itself is never changed: a fill hides the quantity it took from that price level
for ``CONSUMED_MEMORY_S`` (60) wall seconds, for matching and for ``/v1/book``, so two orders in a
row cannot take the same liquidity twice; after that the level shows the capture's size again.

Accounts come from the options (``--sandbox-account KEY:SECRET``); secrets are never logged.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from rtcrypto.exchange.signing import SignedRequestError, verify_private_request
from rtcrypto.market.captures.gemini_v1 import LevelBook, decimal_text
from rtcrypto.simulator import sandbox_public, sandbox_trades
from rtcrypto.simulator.order_events import OrderEventHub
from rtcrypto.simulator.replay import StreamEngine
from rtcrypto.simulator.sandbox_accounts import (
    DEFAULT_BTC,
    DEFAULT_USD,
    SandboxAccount,
    parse_sandbox_account,
    request_counter,
    sandbox_accounts_from_flags,
)
from rtcrypto.simulator.sandbox_guards import RateWindow
from rtcrypto.simulator.symbol_details import price_problem, quantity_problem, symbol_details
from rtcrypto.simulator.wire import invalid_symbol_body, split_symbol

__all__ = [
    "DEFAULT_BTC",
    "DEFAULT_USD",
    "Sandbox",
    "SandboxAccount",
    "SandboxError",
    "match_limit_order",
    "parse_sandbox_account",
    "request_counter",
    "sandbox_accounts_from_flags",
]

log = logging.getLogger("simulator")

CONSUMED_MEMORY_S = 60.0
DEFAULT_FEE_PCT = Decimal("0.25")
DEFAULT_HEARTBEAT_TIMEOUT_S = 30.0  # Gemini's "Requires Heartbeat" window
MAINTAIN_INTERVAL_S = 0.2  # how often resting orders and heartbeat sessions are checked
MAX_CLIENT_ORDER_ID = 100
SUPPORTED_OPTIONS = ("immediate-or-cancel", "fill-or-kill", "maker-or-cancel")
FIRST_ORDER_ID = 7_000_000_001  # Gemini-like large integers


class SandboxError(Exception):
    """A refused sandbox request: Gemini's HTTP status, ``reason`` and ``message``."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    def body(self) -> dict[str, str]:
        return {"result": "error", "reason": self.reason, "message": self.message}


# --- pure matching -----------------------------------------------------------------------------


def match_limit_order(
    levels: Iterable[tuple[Decimal, Decimal]], side: str, limit_price: Decimal, quantity: Decimal
) -> list[tuple[Decimal, Decimal]]:
    """Fills ``(price, quantity)`` of a limit order against the opposite side's ``levels``.

    ``levels`` must be best first (asks ascending for a buy, bids descending for a sell); a buy
    takes asks priced <= ``limit_price``, a sell bids >= it, until ``quantity`` is filled.
    """
    fills: list[tuple[Decimal, Decimal]] = []
    remaining = quantity
    for price, size in levels:
        if remaining <= 0:
            break
        crosses = price <= limit_price if side == "buy" else price >= limit_price
        if not crosses:
            break
        if size <= 0:
            continue
        taken = min(size, remaining)
        fills.append((price, taken))
        remaining -= taken
    return fills


def _text(value: Decimal) -> str:
    """A decimal as Gemini writes it: plain, without trailing zeros (``"0"`` for zero)."""
    return decimal_text(value.normalize()) if value else "0"


# --- state ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class SandboxOrder:
    """One order of the sandbox, in the units Gemini reports."""

    order_id: int
    api_key: str
    client_order_id: str | None
    symbol: str  # lower case
    side: str
    price: Decimal
    original_amount: Decimal
    options: list[str]
    ts_ms: int
    executed_amount: Decimal = Decimal(0)
    closed_ms: int | None = None  # when it stopped being live (filled or cancelled)
    notional: Decimal = Decimal(0)
    is_live: bool = False
    is_cancelled: bool = False
    trades: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, include_trades: bool = False) -> dict[str, Any]:
        average = self.notional / self.executed_amount if self.executed_amount else Decimal(0)
        body: dict[str, Any] = {
            "order_id": str(self.order_id),
            "id": str(self.order_id),
            "client_order_id": self.client_order_id,
            "symbol": self.symbol,
            "exchange": "gemini",
            "avg_execution_price": _text(average),
            "side": self.side,
            "type": "exchange limit",
            "timestamp": str(self.ts_ms // 1000),
            "timestampms": self.ts_ms,
            "is_live": self.is_live,
            "is_cancelled": self.is_cancelled,
            "is_hidden": False,
            "was_forced": False,
            "executed_amount": _text(self.executed_amount),
            "remaining_amount": _text(self.original_amount - self.executed_amount),
            "options": list(self.options),
            "price": _text(self.price),
            "original_amount": _text(self.original_amount),
        }
        if include_trades:
            body["trades"] = list(self.trades)
        return body


@dataclass(slots=True)
class AccountState:
    """Balances (``amount``) and what resting orders hold of them, per lower-case currency."""

    amounts: dict[str, Decimal]
    held: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def available(self, currency: str) -> Decimal:
        return self.amounts.get(currency, Decimal(0)) - self.held.get(currency, Decimal(0))

    def add(self, currency: str, amount: Decimal) -> None:
        self.amounts[currency] = self.amounts.get(currency, Decimal(0)) + amount


class Sandbox:
    """Accounts, orders and matching against ``engine``'s books (the REST side of the simulator)."""

    def __init__(
        self,
        engine: StreamEngine,
        accounts: Sequence[SandboxAccount],
        valid_symbols: set[str],
        taker_fee_pct: Decimal = DEFAULT_FEE_PCT,
        wall: Callable[[], float] = time.monotonic,
        heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S,
        private_rate_per_min: int = 0,  # 0: no limit
    ) -> None:
        if taker_fee_pct < 0:
            raise ValueError(f"--sandbox-fee-pct must be >= 0, got {taker_fee_pct}")
        self.engine = engine
        self.valid_symbols = valid_symbols
        self.fee_rate = taker_fee_pct / Decimal(100)
        self.wall = wall
        if heartbeat_timeout_s <= 0:
            raise ValueError(f"heartbeat timeout must be > 0 s, got {heartbeat_timeout_s}")
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.rate = RateWindow(private_rate_per_min, wall)
        self.heartbeat_keys = {
            account.api_key for account in accounts if account.requires_heartbeat
        }
        self.last_message_wall: dict[str, float] = {}  # api key -> wall time of its last request
        self.secrets = {account.api_key: account.api_secret for account in accounts}
        self.accounts = {
            account.api_key: AccountState(dict(account.balances)) for account in accounts
        }
        self.last_nonce: dict[str, int] = {}
        self.orders: dict[int, SandboxOrder] = {}
        self.next_order_id = FIRST_ORDER_ID
        self.next_trade_id = FIRST_ORDER_ID + 500_000_000
        self.rejections: Counter[str] = Counter()
        # (symbol, book side, price) -> [(wall time, quantity taken)]
        self.consumed: dict[tuple[str, str, Decimal], deque[tuple[float, Decimal]]] = defaultdict(
            deque
        )
        self.order_events = OrderEventHub(self)  # GET /v1/order/events (its route: server.py)

    @property
    def enabled(self) -> bool:
        return bool(self.secrets)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v1/book/{symbol}", self.handle_book)
        sandbox_public.add_public_routes(router, self.engine, self.valid_symbols)
        handlers: dict[str, Callable[[str, dict[str, Any]], dict[str, Any] | list[Any]]] = {
            "/v1/balances": self.balances,
            "/v1/order/new": self.new_order,
            "/v1/order/status": self.order_status,
            "/v1/order/cancel": self.cancel_order,
            "/v1/orders": self.live_orders,
        }
        handlers.update(sandbox_trades.private_handlers(self))
        for path, handler in handlers.items():
            router.add_post(path, self._private_handler(path, handler))

    async def run(self) -> None:
        """Every ``MAINTAIN_INTERVAL_S``: fill resting orders the book crosses, cancel the orders
        of silent heartbeat sessions (cancelled with the server)."""
        while True:
            await asyncio.sleep(MAINTAIN_INTERVAL_S)
            sandbox_trades.maintain(self)

    def status(self) -> dict[str, Any]:
        """The sandbox part of ``/_sim/status`` (no keys, no secrets)."""
        return {
            "accounts": len(self.accounts),
            "taker_fee_pct": _text(self.fee_rate * 100),
            "orders": len(self.orders),
            "fills": sum(len(order.trades) for order in self.orders.values()),
            "live_orders": sum(order.is_live for order in self.orders.values()),
            "rejections": dict(self.rejections),
        }

    # --- HTTP -----------------------------------------------------------------------------------
    def _private_handler(
        self, path: str, handler: Callable[[str, dict[str, Any]], dict[str, Any] | list[Any]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            try:
                verified = verify_private_request(
                    request.headers, path, self.secrets.get, self.last_nonce.get
                )
            except SignedRequestError as error:
                return self._refuse(SandboxError(400, error.reason, error.message), path)
            if not self.rate.allow(verified.api_key):
                limit = self.rate.rate_per_min
                message = f"Too many requests: at most {limit} private requests per minute"
                return self._refuse(SandboxError(429, "RateLimit", message), path)
            self.last_nonce[verified.api_key] = verified.nonce
            sandbox_trades.expire_silent_sessions(self)  # before this request revives its own
            self.last_message_wall[verified.api_key] = self.wall()
            try:
                return web.json_response(handler(verified.api_key, verified.payload))
            except SandboxError as error:
                self.order_events.refused(path, verified.api_key, verified.payload, error.reason)
                return self._refuse(error, path)

        return handle

    def _refuse(self, error: SandboxError, path: str) -> web.Response:
        self.rejections[error.reason] += 1
        log.info("sandbox refused path=%s reason=%s", path, error.reason)
        return web.json_response(error.body(), status=error.status)

    async def handle_book(self, request: web.Request) -> web.Response:
        """``GET /v1/book/{symbol}``: best levels first, with liquidity taken by fills hidden."""
        symbol = request.match_info["symbol"].upper()
        if symbol not in self.valid_symbols:
            return web.json_response(invalid_symbol_body(symbol.lower()), status=400)
        try:
            limit_bids = int(request.query.get("limit_bids", "50"))
            limit_asks = int(request.query.get("limit_asks", "50"))
        except ValueError:
            return web.json_response(
                {"result": "error", "reason": "BadRequest", "message": "limits must be integers"},
                status=400,
            )
        seconds = str(self.engine.stream_time_ms() // 1000)

        def rows(side: str, limit: int) -> list[dict[str, str]]:
            levels = self.levels(symbol, side)
            chosen = levels if limit <= 0 else itertools.islice(levels, limit)
            return [
                {"price": _text(price), "amount": _text(size), "timestamp": seconds}
                for price, size in chosen
            ]

        return web.json_response({"bids": rows("bid", limit_bids), "asks": rows("ask", limit_asks)})

    # --- book view ------------------------------------------------------------------------------
    def levels(self, symbol: str, side: str) -> Iterator[tuple[Decimal, Decimal]]:
        """``side`` (bid/ask) of the replayed book, best first, minus recently consumed size;
        lazy, so a caller that needs the best few levels does not pay for the whole book."""
        book: LevelBook | None = self.engine.books.get(symbol)
        if book is None:
            return
        source = book.bids if side == "bid" else book.asks
        for price in sorted(source, reverse=side == "bid"):
            size = source[price].size - self._recently_consumed(symbol, side, price)
            if size > 0:
                yield price, size

    def _recently_consumed(self, symbol: str, side: str, price: Decimal) -> Decimal:
        key = (symbol, side, price)
        if key not in self.consumed:
            return Decimal(0)
        taken = self.consumed[key]
        horizon = self.wall() - CONSUMED_MEMORY_S
        while taken and taken[0][0] < horizon:
            taken.popleft()
        if not taken:
            del self.consumed[key]
            return Decimal(0)
        return sum((quantity for _, quantity in taken), Decimal(0))

    # --- endpoints ------------------------------------------------------------------------------
    def balances(self, api_key: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        account = self.accounts[api_key]
        return [
            {
                "type": "exchange",
                "currency": currency.upper(),
                "amount": _text(amount),
                "available": _text(account.available(currency)),
                "availableForWithdrawal": _text(account.available(currency)),
            }
            for currency, amount in sorted(account.amounts.items())
        ]

    def new_order(self, api_key: str, payload: dict[str, Any]) -> dict[str, Any]:
        symbol, side, amount, price, options, client_order_id = self._validate_order(payload)
        account = self.accounts[api_key]
        base, quote = (currency.lower() for currency in split_symbol(symbol))
        if side == "buy":
            needed, currency = amount * price * (1 + self.fee_rate), quote
        else:
            needed, currency = amount, base
        if account.available(currency) < needed:
            raise SandboxError(
                406,
                "InsufficientFunds",
                f"Insufficient funds: {currency.upper()} available {_text(account.available(currency))}"
                f", the order needs {_text(needed)}",
            )
        book_side = "ask" if side == "buy" else "bid"
        fills = match_limit_order(self.levels(symbol.upper(), book_side), side, price, amount)
        filled = sum((quantity for _, quantity in fills), Decimal(0))
        would_take = "maker-or-cancel" in options and bool(fills)
        if ("fill-or-kill" in options and filled < amount) or would_take:
            fills, filled = [], Decimal(0)
        order = SandboxOrder(
            order_id=self.next_order_id,
            api_key=api_key,
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            price=price,
            original_amount=amount,
            options=options,
            ts_ms=self.engine.stream_time_ms(),
        )
        self.next_order_id += 1
        self.order_events.accepted(order)
        for fill_price, quantity in fills:
            self._fill(order, account, book_side, fill_price, quantity, order.ts_ms, True)
        # a plain limit order rests its remainder; maker-or-cancel rests when it would not take
        rests = filled < amount and (
            not options or (options == ["maker-or-cancel"] and not would_take)
        )
        if rests:
            order.is_live = True
            self._hold(order, account, base, quote, +1)
        else:
            order.is_cancelled = filled < amount
            order.closed_ms = order.ts_ms
        self.orders[order.order_id] = order
        self.order_events.settled(order)  # booked, or cancelled (the rest) and closed
        log.info(
            "sandbox order order_id=%d symbol=%s side=%s amount=%s price=%s executed=%s live=%s",
            order.order_id,
            symbol,
            side,
            amount,
            price,
            order.executed_amount,
            order.is_live,
        )
        return order.to_json()

    def _validate_order(
        self, payload: dict[str, Any]
    ) -> tuple[str, str, Decimal, Decimal, list[str], str | None]:
        symbol = str(payload.get("symbol", "")).lower()
        if symbol.upper() not in self.valid_symbols:
            raise SandboxError(400, "InvalidSymbol", invalid_symbol_body(symbol)["message"])
        side = str(payload.get("side", ""))
        if side not in ("buy", "sell"):
            raise SandboxError(400, "InvalidSide", f"Invalid side for symbol {symbol}: {side!r}")
        if payload.get("type") != "exchange limit":
            raise SandboxError(
                400, "InvalidOrderType", f"Invalid order type: {payload.get('type')!r}"
            )
        details = symbol_details(symbol)
        amount = _positive_decimal(payload.get("amount"), "InvalidQuantity", "amount")
        problem = quantity_problem(details, amount)
        if problem is not None:
            raise SandboxError(
                400,
                "InvalidQuantity",
                f"Invalid quantity for symbol {symbol}: {payload.get('amount')} is {problem}",
            )
        price = _positive_decimal(payload.get("price"), "InvalidPrice", "price")
        problem = price_problem(details, price)
        if problem is not None:
            raise SandboxError(
                400,
                "InvalidPrice",
                f"Invalid price for symbol {symbol}: {payload.get('price')} is {problem}",
            )
        options = payload.get("options", [])
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise SandboxError(400, "UnsupportedOption", "options must be a list of strings")
        if len(options) > 1:
            raise SandboxError(400, "ConflictingOptions", "at most one execution option")
        if options and options[0] not in SUPPORTED_OPTIONS:
            raise SandboxError(400, "UnsupportedOption", f"Option {options[0]!r} is not supported")
        client_order_id = payload.get("client_order_id")
        if client_order_id is not None:
            if not isinstance(client_order_id, str):
                raise SandboxError(
                    400, "ClientOrderIdMustBeString", "The client_order_id must be a string"
                )
            if len(client_order_id) >= MAX_CLIENT_ORDER_ID:
                raise SandboxError(
                    400, "ClientOrderIdTooLong", "The client_order_id must be under 100 characters"
                )
        return symbol, side, amount, price, list(options), client_order_id

    def _fill(
        self,
        order: SandboxOrder,
        account: AccountState,
        book_side: str,
        price: Decimal,
        quantity: Decimal,
        ts_ms: int,
        aggressor: bool,
        level_price: Decimal | None = None,
    ) -> None:
        """Book one fill of ``order`` (taker when ``aggressor``) at ``price``, at ``ts_ms``; the
        quantity is hidden from the book level at ``level_price`` (default ``price``)."""
        base, quote = (currency.lower() for currency in split_symbol(order.symbol))
        notional = price * quantity
        fee = notional * self.fee_rate
        if order.side == "buy":
            account.add(quote, -(notional + fee))
            account.add(base, quantity)
        else:
            account.add(base, -quantity)
            account.add(quote, notional - fee)
        order.executed_amount += quantity
        order.notional += notional
        level = price if level_price is None else level_price
        self.consumed[(order.symbol.upper(), book_side, level)].append((self.wall(), quantity))
        order.trades.append(
            {
                "price": _text(price),
                "amount": _text(quantity),
                "timestamp": ts_ms // 1000,
                "timestampms": ts_ms,
                "type": "Buy" if order.side == "buy" else "Sell",
                "aggressor": aggressor,
                "fee_currency": quote.upper(),
                "fee_amount": _text(fee),
                "tid": self.next_trade_id,
                "order_id": str(order.order_id),
                "client_order_id": order.client_order_id,
                "exchange": "gemini",
                "is_auction_fill": False,
                "symbol": order.symbol.upper(),
            }
        )
        self.next_trade_id += 1
        self.order_events.filled(order, order.trades[-1])

    def _hold(
        self, order: SandboxOrder, account: AccountState, base: str, quote: str, sign: int
    ) -> None:
        remaining = order.original_amount - order.executed_amount
        if order.side == "buy":
            account.held[quote] += sign * remaining * order.price * (1 + self.fee_rate)
        else:
            account.held[base] += sign * remaining

    def _own_order(self, api_key: str, payload: dict[str, Any]) -> SandboxOrder:
        raw = payload.get("order_id")
        if raw is None:
            raise SandboxError(400, "MissingOrderField", "order_id is required")
        try:
            order_id = int(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise SandboxError(404, "OrderNotFound", f"Order {raw!r} not found") from None
        order = self.orders.get(order_id)
        if order is None or order.api_key != api_key:
            raise SandboxError(404, "OrderNotFound", f"Order {order_id} not found")
        return order

    def order_status(self, api_key: str, payload: dict[str, Any]) -> dict[str, Any] | list[Any]:
        """By ``order_id`` one order; by ``client_order_id`` a list, as Gemini answers."""
        include_trades = bool(payload.get("include_trades", False))
        if payload.get("order_id") is not None:
            return self._own_order(api_key, payload).to_json(include_trades)
        client_order_id = payload.get("client_order_id")
        if client_order_id is None:
            raise SandboxError(400, "MissingOrderField", "order_id or client_order_id is required")
        matches = [
            order.to_json(include_trades)
            for order in self.orders.values()
            if order.api_key == api_key and order.client_order_id == client_order_id
        ]
        if not matches:
            raise SandboxError(
                404, "OrderNotFound", f"No order with client_order_id {client_order_id!r}"
            )
        return matches

    def cancel_order(self, api_key: str, payload: dict[str, Any]) -> dict[str, Any]:
        order = self._own_order(api_key, payload)
        if order.is_live:
            base, quote = (currency.lower() for currency in split_symbol(order.symbol))
            self._hold(order, self.accounts[api_key], base, quote, -1)
            order.is_live, order.is_cancelled = False, True
            order.closed_ms = self.engine.stream_time_ms()
            log.info("sandbox order cancelled order_id=%d", order.order_id)
            self.order_events.cancelled(order)
        return order.to_json()

    def live_orders(self, api_key: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            order.to_json()
            for order in self.orders.values()
            if order.api_key == api_key and order.is_live
        ]


def _positive_decimal(value: Any, reason: str, name: str) -> Decimal:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise SandboxError(400, reason, f"{name} must be a decimal string, got {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise SandboxError(400, reason, f"{name} {value!r} is not a number") from None
    if not number.is_finite() or number <= 0:
        raise SandboxError(400, reason, f"{name} must be > 0, got {value!r}")
    return number
