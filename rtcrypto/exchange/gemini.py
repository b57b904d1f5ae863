"""The ``gemini`` exchange adapter: Gemini's REST API v1 (live, sandbox, or the simulator).

Orders are ``exchange limit`` orders with ``immediate-or-cancel``, identified by the trader's
``client_order_id``. ``place_order`` is sent once and never retried by this adapter: after a
timeout or a 5xx the order may or may not exist, and the trader reconciles with
``order_status(client_order_id)`` before it sends anything again. Reads (balances, order status,
open orders, the book, the ticker) are retried with exponential backoff on 5xx, connection errors
and 429, each attempt with a fresh nonce.

Fees: Gemini's ``order/new`` answer carries no fee, so for an order that executed the adapter
sums ``fee_amount`` (USD) of the order's trades in ``/v1/mytrades`` (``my_trades``). Only if that
cannot be read it falls back to the trades of ``/v1/order/status`` (``include_trades``), then to
an estimate from the executed notional at ``fallback_fee_pct``, logging which it used.

Private requests pass a token bucket (``private_rate_per_min``, Gemini: 600/min) and are sent one
at a time (a lock), so their nonces reach the exchange in increasing order.

Secrets: the API key and secret are kept as ``SecretStr``; they are never logged, never in a
repr, and redacted from every exception message this module builds.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import requests
from pydantic import SecretStr
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from rtcrypto.exchange import symbol_rules
from rtcrypto.exchange.base import (
    AuthenticationError,
    ExchangeError,
    ExchangeUnavailableError,
    OrderNotFoundError,
    OrderRejectedError,
    OrderStateUnknownError,
    OrderStatus,
    RateLimitError,
)
from rtcrypto.exchange.gemini_answers import (
    decimal_field,
    error_from_response,
    estimated_fee_usd,
    fees_usd,
    latest_order,
    optional_decimal,
    order_from_json,
    redact,
)
from rtcrypto.exchange.gemini_fees import FeeTier, parse_notional_volume
from rtcrypto.exchange.gemini_trades import (
    MAX_LIMIT_TRADES,
    MyTrade,
    fee_usd_of,
    parse_my_trades,
    trades_of_order,
    walk_pages,
)
from rtcrypto.exchange.signing import NonceSource, encode_payload, private_headers, private_payload
from rtcrypto.market.captures.gemini_v1 import decimal_text
from rtcrypto.redact import redact_url
from rtcrypto.trading.order_rules import OrderRules
from rtcrypto.trading.order_types import OrderRequest, TopOfBook

log = logging.getLogger("exchange.gemini")

T = TypeVar("T")

READ_ATTEMPTS = 4  # one try + three retries for reads
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 15.0


class GeminiConfigError(ValueError):
    """The settings do not allow a Gemini adapter (mode, keys, URL); the message says what to set."""


@dataclass(frozen=True, slots=True)
class Ticker:
    """``/v1/pubticker``: best bid and ask, last trade price and 24 h volume (may be None)."""

    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    volume_base: Decimal | None
    volume_quote: Decimal | None
    ts_ms: int


class TokenBucket:
    """``rate_per_min`` requests per minute, bursts up to ``capacity``; ``acquire`` waits. Thread-safe."""

    def __init__(
        self,
        rate_per_min: float,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_min <= 0:
            raise ValueError(f"rate_per_min must be > 0, got {rate_per_min}")
        self.rate_per_s = rate_per_min / 60.0
        # one second's worth by default: Gemini asks for no more than 5-10 private requests/s
        self.capacity = capacity if capacity is not None else max(1.0, self.rate_per_s)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, waiting for it if needed; return the seconds waited.

        The token is reserved at once (the level may go below zero) and the caller sleeps until
        it is due, so concurrent callers queue in order without polling.
        """
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate_per_s)
            self._updated = now
            self._tokens -= 1
            delay = 0.0 if self._tokens >= 0 else -self._tokens / self.rate_per_s
        if delay > 0:
            self._sleep(delay)
        return delay


# --- the adapter --------------------------------------------------------------------------------


class GeminiAdapter:
    """:class:`~rtcrypto.exchange.base.ExchangeAdapter` over Gemini's REST API at ``base_url``."""

    name = "gemini"

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | str,
        api_secret: SecretStr | str,
        *,
        private_rate_per_min: float = 600,
        fallback_fee_pct: Decimal = Decimal("0.25"),
        nonce_source: Callable[[], int] | None = None,  # NonceSource, PersistentNonceSource
        read_attempts: int = READ_ATTEMPTS,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 8.0,
        timeout_s: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
        session: requests.Session | None = None,
        public_only: bool = False,
        clock_ms: Callable[[], int] | None = None,
        symbol_details_refresh_s: float = 3600.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # GET /v1/symbols/details/{symbol} on first use, again after symbol_details_refresh_s
        self.rules_cache = symbol_rules.SymbolRulesCache(
            symbol_rules.fetch_over(self._public, self._read), symbol_details_refresh_s
        )
        # when a book was read, on the feed's clock (rtcrypto/exchange/feedclock.py); wall clock by default
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.public_only = public_only
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self._api_secret = (
            api_secret if isinstance(api_secret, SecretStr) else SecretStr(api_secret)
        )
        keys_missing = (
            not self._api_key.get_secret_value() or not self._api_secret.get_secret_value()
        )
        if keys_missing and not public_only:
            raise GeminiConfigError("a Gemini API key and secret are both required")
        self.fallback_fee_pct = fallback_fee_pct
        self.nonce: Callable[[], int] = nonce_source or NonceSource()
        self.bucket = TokenBucket(private_rate_per_min)
        self.read_attempts = max(1, read_attempts)
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self._send_lock = threading.Lock()  # one private request in flight: nonces stay ordered

    @property
    def request_lock(self) -> threading.Lock:
        """Held while a private request draws its nonce and is sent: another signed channel of
        the same key (the order-events handshake) takes it too, so nonces reach Gemini in order."""
        return self._send_lock

    def __repr__(self) -> str:
        return f"GeminiAdapter(base_url={redact_url(self.base_url)!r}, api_key='**********')"

    @property
    def _secrets(self) -> tuple[str, ...]:
        return (self._api_secret.get_secret_value(), self._api_key.get_secret_value())

    # --- transport ------------------------------------------------------------------------------
    def _send(
        self, method: str, path: str, headers: Mapping[str, str] | None, params: Mapping[str, Any]
    ) -> Any:
        """One HTTP request; the decoded JSON of a 2xx answer, else the mapped exception."""
        url = self.base_url + path
        try:
            response = self.session.request(
                method,
                url,
                headers=dict(headers) if headers else None,
                params=dict(params) if params else None,
                timeout=self.timeout_s,
            )
        except requests.RequestException as error:
            raise ExchangeUnavailableError(
                redact(
                    f"gemini {path}: no answer from {redact_url(self.base_url)} ({error})",
                    self._secrets,
                ),
                reason="ConnectionError",
            ) from None
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 300:
            raise error_from_response(response.status_code, body, path, self._secrets)
        if not isinstance(body, dict | list):
            raise ExchangeError(
                f"gemini {path}: HTTP {response.status_code} answer is not JSON",
                reason="UnreadableAnswer",
                status=response.status_code,
            )
        return body

    def _private(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """A signed POST: rate-limited, one at a time, with a fresh nonce."""
        if self.public_only:
            raise AuthenticationError(
                f"gemini {path}: this adapter reads public market data only (no API key)",
                reason="MissingApikeyHeader",
            )
        waited = self.bucket.acquire()
        if waited > 0:
            log.debug("private rate limit: waited %.3f s before %s", waited, path)
        with self._send_lock:
            payload_b64 = encode_payload(private_payload(path, self.nonce(), params))
            headers = private_headers(
                self._api_key.get_secret_value(), self._api_secret.get_secret_value(), payload_b64
            )
            return self._send("POST", path, headers, {})

    def _public(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        return self._send("GET", path, None, query or {})

    def _read(self, what: str, call: Callable[[], T]) -> T:
        """``call`` retried on 5xx / no answer / 429 with exponential backoff (reads only)."""
        retrying = Retrying(
            retry=retry_if_exception_type((ExchangeUnavailableError, RateLimitError)),
            stop=stop_after_attempt(self.read_attempts),
            wait=wait_exponential(multiplier=self.retry_initial_s, max=self.retry_max_s),
            before_sleep=lambda state: log.warning(
                "gemini %s failed (attempt %d), retrying: %s",
                what,
                state.attempt_number,
                state.outcome.exception() if state.outcome else "",
            ),
            reraise=True,
        )
        return retrying(call)

    # --- public data ----------------------------------------------------------------------------
    def top_of_book(self, symbol: str) -> TopOfBook:
        """Best bid and ask from ``/v1/book`` (one level each); ``ts_ms`` is when it was read
        (on the adapter's clock: the feed clock in the trader)."""
        book = self._read(
            "book",
            lambda: self._public(f"/v1/book/{symbol.lower()}", {"limit_bids": 1, "limit_asks": 1}),
        )
        bids, asks = book.get("bids") or [], book.get("asks") or []
        if not bids or not asks:
            raise ExchangeError(
                f"gemini /v1/book/{symbol.lower()}: one side of the book is empty "
                f"(bids={len(bids)}, asks={len(asks)})",
                reason="EmptyBook",
            )
        return TopOfBook(
            symbol=symbol.lower(),
            bid=decimal_field(bids[0]["price"], "bid price"),
            bid_quantity=decimal_field(bids[0]["amount"], "bid amount"),
            ask=decimal_field(asks[0]["price"], "ask price"),
            ask_quantity=decimal_field(asks[0]["amount"], "ask amount"),
            ts_ms=self._clock_ms(),
        )

    def ticker(self, symbol: str) -> Ticker:
        """``/v1/pubticker/{symbol}``: bid, ask, last price and the 24 h volume."""
        body = self._read("pubticker", lambda: self._public(f"/v1/pubticker/{symbol.lower()}"))
        volume = body.get("volume") or {}
        # the volume object is keyed by the base and the quote currency (and "timestamp")
        upper = symbol.upper()
        base = next((key for key in volume if key != "timestamp" and upper.startswith(key)), "")
        quote = next((key for key in volume if key != "timestamp" and upper.endswith(key)), "")
        return Ticker(
            symbol=symbol.lower(),
            bid=optional_decimal(body.get("bid")),
            ask=optional_decimal(body.get("ask")),
            last=optional_decimal(body.get("last")),
            volume_base=optional_decimal(volume.get(base)),
            volume_quote=optional_decimal(volume.get(quote)),
            ts_ms=int(volume.get("timestamp") or time.time_ns() // 1_000_000),
        )

    # --- private --------------------------------------------------------------------------------
    def balances(self) -> dict[str, Decimal]:
        """``available`` per currency of the exchange account, lower case."""
        rows = self._read("balances", lambda: self._private("/v1/balances"))
        if not isinstance(rows, list):
            raise ExchangeError("gemini /v1/balances: expected a list")
        return {
            str(row["currency"]).lower(): decimal_field(
                row.get("available", row["amount"]), "available"
            )
            for row in rows
            if row.get("type", "exchange") == "exchange"
        }

    def order_rules(self, symbol: str) -> OrderRules:
        """The symbol's increments and minimum from ``/v1/symbols/details`` (cached, refreshed)."""
        return self.rules_cache.get(symbol)

    def place_order(self, order: OrderRequest) -> OrderStatus:
        """Send one IOC limit order (rounded to ``order_rules``; below their minimum never sent,
        never re-sent here) and return its final state with fees."""
        order = symbol_rules.order_for_exchange(order, self.order_rules(order.symbol))
        params = {
            "client_order_id": order.client_order_id,
            "symbol": order.symbol.lower(),
            "amount": decimal_text(order.quantity),
            "price": decimal_text(order.limit_price),
            "side": order.side.value,
            "type": "exchange limit",
            "options": ["immediate-or-cancel"],
        }
        try:
            answer = self._private("/v1/order/new", params)
        except ExchangeUnavailableError as error:
            raise ExchangeUnavailableError(
                f"{error} -- order client_order_id={order.client_order_id} may or may not have "
                f"reached the exchange: check order_status({order.client_order_id!r}) before "
                "sending it again",
                reason=error.reason,
                status=error.status,
            ) from None
        except OrderRejectedError as error:  # off the increments: the exchange changed them?
            raise self.rules_cache.refusal(error, order) from None
        except ExchangeError as error:
            if error.status is None or error.status >= 300:
                raise
            raise OrderStateUnknownError(
                f"{error}; order client_order_id={order.client_order_id} stays pending until "
                "order_status finds it",
                reason=error.reason,
                status=error.status,
            ) from None
        try:
            status = order_from_json(answer, Decimal(0))
        except ExchangeError as error:  # 2xx: the order exists, its state is unknown
            raise OrderStateUnknownError(
                f"gemini /v1/order/new answered 2xx with a body that cannot be read ({error}); "
                f"order client_order_id={order.client_order_id} stays pending until "
                "order_status finds it",
                reason="UnreadableAnswer",
            ) from None
        log.info(
            "order sent client_order_id=%s order_id=%s side=%s executed=%s/%s avg=%s",
            order.client_order_id,
            status.order_id,
            status.side,
            status.executed_quantity,
            status.original_quantity,
            status.average_execution_price,
        )
        return self._with_fees(answer, status)

    def _with_fees(self, answer: Mapping[str, Any], status: OrderStatus) -> OrderStatus:
        """``status`` with the fee its trades were charged: the sum of ``fee_amount`` of its
        trades in ``/v1/mytrades``; only when that cannot be read, the answer's (or
        ``order/status``'s) trades, then the estimate at ``fallback_fee_pct`` (logged)."""
        if status.executed_quantity == 0:
            return status
        try:
            mine = trades_of_order(self.my_trades(status.symbol, status.ts_ms), status.order_id)
            if sum((trade.amount for trade in mine), Decimal(0)) == status.executed_quantity:
                return dataclasses.replace(status, fee_usd=fee_usd_of(mine))
            log.warning(
                "fee of order_id=%s: mytrades lists %d trades not adding up to executed=%s; "
                "the order's own trades are used",
                status.order_id,
                len(mine),
                status.executed_quantity,
            )
        except ExchangeError as error:
            log.warning("fee of order_id=%s: mytrades unreadable (%s)", status.order_id, error)
        trades = answer.get("trades")
        if trades is None:
            try:
                detailed = self._read(
                    "order status",
                    lambda: self._private(
                        "/v1/order/status",
                        {"order_id": int(status.order_id), "include_trades": True},
                    ),
                )
                trades = detailed.get("trades") if isinstance(detailed, dict) else None
            except ExchangeError as error:
                log.warning(
                    "fee of order_id=%s estimated at %s %%: trades unreadable (%s)",
                    status.order_id,
                    self.fallback_fee_pct,
                    error,
                )
        if trades is None:
            fee = estimated_fee_usd(status, self.fallback_fee_pct)
        else:
            log.warning("fee of order_id=%s read from the order's trades", status.order_id)
            fee = fees_usd(list(trades))
        return dataclasses.replace(status, fee_usd=fee)

    def my_trades(self, symbol: str, since_ms: int, limit: int = MAX_LIMIT_TRADES) -> list[MyTrade]:
        """Every fill of ``symbol`` at or after ``since_ms`` (``/v1/mytrades``, paged by
        ``timestamp`` until a page is not full), oldest first, each ``tid`` once."""

        def page(start_ms: int, size: int) -> list[MyTrade]:
            params = {"symbol": symbol.lower(), "timestamp": start_ms, "limit_trades": size}
            body = self._read("mytrades", lambda: self._private("/v1/mytrades", params))
            return parse_my_trades(body)

        return walk_pages(page, max(0, since_ms), limit)

    def fee_tier(self) -> FeeTier:
        """The account's fee rates and 30-day volume (``/v1/notionalvolume``, read with retries)."""
        body = self._read("notional volume", lambda: self._private("/v1/notionalvolume"))
        return parse_notional_volume(body)

    def order_status(self, client_order_id: str) -> OrderStatus | None:
        """The newest order sent with ``client_order_id``, or None when Gemini has none."""
        try:
            answer = self._read(
                "order status",
                lambda: self._private(
                    "/v1/order/status",
                    {"client_order_id": client_order_id, "include_trades": True},
                ),
            )
        except OrderNotFoundError:
            return None
        order = latest_order(answer) if isinstance(answer, list) else answer
        if order is None:
            return None
        return self._with_fees(order, order_from_json(order, Decimal(0)))

    def open_orders(self) -> list[OrderStatus]:
        """Orders still live (``/v1/orders``), with the fees of what they executed so far."""
        rows = self._read("open orders", lambda: self._private("/v1/orders"))
        return [self._with_fees(row, order_from_json(row, Decimal(0))) for row in rows]

    def cancel_order(self, order_id: str) -> OrderStatus:
        """Cancel a live order (``/v1/order/cancel``; not retried) and return its final state."""
        answer = self._private("/v1/order/cancel", {"order_id": int(order_id)})
        return self._with_fees(answer, order_from_json(answer, Decimal(0)))
