"""The ``paper`` exchange: immediate-or-cancel fills simulated against the top of the real book.

A buy at limit L fills ``min(quantity, ask quantity)`` at the best ask when ask <= L; a sell fills
``min(quantity, bid quantity)`` at the best bid when bid >= L; the rest is cancelled (partial
fills). The taker fee is charged on the filled notional. The top of book comes from a market-data
source (the simulator's or Gemini's public ``/v1/book``), so paper fills see the same prices a live
order would.

The account (balances and every order) is kept in a JSON file, rewritten atomically before
``place_order`` returns, like a remote exchange that remembers orders across a trader crash: the
restarted trader finds the order by its ``client_order_id``. Each order also keeps the top of the
book it was matched against (``matched_books``), so a backtest can be fed the exact quotes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from rtcrypto.exchange.base import (
    InsufficientFundsError,
    OrderNotFoundError,
    OrderRejectedError,
    OrderStatus,
)
from rtcrypto.exchange.codec import book_from_json, book_to_json, status_from_json, status_to_json
from rtcrypto.trading.order_rules import OrderRules
from rtcrypto.trading.order_types import OrderRequest, TopOfBook
from rtcrypto.trading.orders import ioc_fill, taker_fee_usd
from rtcrypto.trading.strategy import Side

log = logging.getLogger(__name__)

HUNDRED = Decimal(100)


def matched_books_by_client_order_id(account_path: Path) -> dict[str, TopOfBook]:
    """The book each order of a paper account file was matched against, by client order id."""
    data = json.loads(Path(account_path).read_text())
    orders = data.get("orders", {})
    return {
        str(orders[order_id]["client_order_id"]): book_from_json(book)
        for order_id, book in data.get("matched_books", {}).items()
        if order_id in orders
    }


class PaperExchange:
    """A paper account; implements ``ExchangeAdapter``."""

    name = "paper"

    def __init__(
        self,
        account_path: Path,
        top_of_book: Callable[[str], TopOfBook],
        *,
        usd: Decimal,
        btc: Decimal = Decimal(0),
        taker_fee_pct: Decimal = Decimal("0.25"),
        clock_ms: Callable[[], int] | None = None,
        order_rules: OrderRules | None = None,
    ) -> None:
        self.account_path = Path(account_path)
        self._order_rules = order_rules  # the traded symbol's, from settings (factory.py)
        self._top_of_book = top_of_book
        self.fee_rate = Decimal(taker_fee_pct) / HUNDRED
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._lock = threading.Lock()
        self._balances: dict[str, Decimal]
        self._orders: dict[str, OrderStatus] = {}
        self._matched_books: dict[str, TopOfBook] = {}  # by order id
        if self.account_path.exists():
            self._load()
            log.info(
                "paper account loaded path=%s usd=%s btc=%s orders=%d",
                self.account_path,
                self._balances["usd"],
                self._balances["btc"],
                len(self._orders),
            )
        else:
            self._balances = {"usd": Decimal(usd), "btc": Decimal(btc)}
            self._save()
            log.info("paper account opened path=%s usd=%s btc=%s", self.account_path, usd, btc)

    # --- persistence ----------------------------------------------------------------------------
    def _load(self) -> None:
        data = json.loads(self.account_path.read_text())
        self._balances = {
            currency: Decimal(amount) for currency, amount in data["balances"].items()
        }
        self._orders = {order_id: status_from_json(o) for order_id, o in data["orders"].items()}
        self._matched_books = {
            order_id: book_from_json(book)
            for order_id, book in data.get("matched_books", {}).items()
        }

    def _save(self) -> None:
        self.account_path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "balances": {currency: str(amount) for currency, amount in self._balances.items()},
            "orders": {order_id: status_to_json(o) for order_id, o in self._orders.items()},
            "matched_books": {
                order_id: book_to_json(book) for order_id, book in self._matched_books.items()
            },
        }
        descriptor, temporary = tempfile.mkstemp(prefix=".paper-", dir=self.account_path.parent)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.account_path)

    # --- ExchangeAdapter ------------------------------------------------------------------------
    def balances(self) -> dict[str, Decimal]:
        with self._lock:
            return dict(self._balances)

    def top_of_book(self, symbol: str) -> TopOfBook:
        return self._top_of_book(symbol)

    def order_rules(self, symbol: str) -> OrderRules | None:
        """The rules the account was opened with (``RTC_PAPER_*`` settings), for any symbol;
        None when it was opened without (no increment beyond a satoshi, no minimum)."""
        if self._order_rules is None or self._order_rules.symbol == symbol.upper():
            return self._order_rules
        return dataclasses.replace(self._order_rules, symbol=symbol.upper(), base_currency="")

    def place_order(self, order: OrderRequest) -> OrderStatus:
        book = self._top_of_book(order.symbol)
        quantity, price = ioc_fill(order, book)
        with self._lock:
            fee = taker_fee_usd(price, quantity, self.fee_rate)
            usd, btc = self._balances["usd"], self._balances["btc"]
            if order.side is Side.buy:
                if order.quantity * order.limit_price * (1 + self.fee_rate) > usd:
                    raise InsufficientFundsError(
                        f"paper: buying {order.quantity} BTC at up to {order.limit_price} needs more "
                        f"than the {usd} USD available",
                        reason="InsufficientFunds",
                    )
                usd, btc = usd - price * quantity - fee, btc + quantity
            else:
                if order.quantity > btc:
                    raise InsufficientFundsError(
                        f"paper: selling {order.quantity} BTC but only {btc} BTC is available",
                        reason="InsufficientFunds",
                    )
                usd, btc = usd + price * quantity - fee, btc - quantity
            order_id = f"paper-{len(self._orders) + 1}"
            status = OrderStatus(
                order_id=order_id,
                client_order_id=order.client_order_id,
                symbol=order.symbol.lower(),
                side=order.side,
                limit_price=order.limit_price,
                original_quantity=order.quantity,
                executed_quantity=quantity,
                average_execution_price=price,
                fee_usd=fee,
                is_live=False,
                is_cancelled=quantity < order.quantity,
                ts_ms=self._clock_ms(),
            )
            self._balances = {"usd": usd, "btc": btc}
            self._orders[order_id] = status
            self._matched_books[order_id] = book
            self._save()
        log.info(
            "paper order %s client_order_id=%s side=%s limit=%s filled=%s/%s at=%s fee=%s",
            order_id,
            order.client_order_id,
            order.side,
            order.limit_price,
            quantity,
            order.quantity,
            price,
            fee,
        )
        return status

    def order_status(self, client_order_id: str) -> OrderStatus | None:
        with self._lock:
            for status in self._orders.values():
                if status.client_order_id == client_order_id:
                    return status
        return None

    def open_orders(self) -> list[OrderStatus]:
        return []  # IOC orders never rest on the paper book

    def cancel_order(self, order_id: str) -> OrderStatus:
        with self._lock:
            status = self._orders.get(order_id)
        if status is None:
            raise OrderNotFoundError(f"paper: no order {order_id}", reason="OrderNotFound")
        if status.is_live:  # pragma: no cover - IOC orders are never live
            raise OrderRejectedError(f"paper: order {order_id} is live", reason="InvalidOrder")
        return status
