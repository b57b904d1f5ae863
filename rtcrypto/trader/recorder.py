"""Where the trader reports what it did (Elasticsearch in the service, a list in tests).

The trader calls these after the journal has the facts, off the decision path: a recorder must
not block (the Elasticsearch one buffers and indexes in bulk from a background thread).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from rtcrypto.exchange.base import OrderStatus
from rtcrypto.trading.ledger import Fill, RoundTrip
from rtcrypto.trading.order_types import OrderRequest, TopOfBook


@dataclass(frozen=True, slots=True)
class TradeContext:
    """Labels every order, fill and score carries."""

    mode: str  # paper | sandbox | live
    forecast_version: str
    minute_ms: int  # the decision minute (start, epoch ms UTC)


class TradeRecorder(Protocol):
    def order(self, request: OrderRequest, status: OrderStatus, context: TradeContext) -> None: ...

    def fill(self, fill: Fill, status: OrderStatus, context: TradeContext) -> None: ...

    def score(self, trip: RoundTrip, status: OrderStatus, context: TradeContext) -> None: ...

    def balances(self, usd: Decimal, btc: Decimal, ts_ms: int, mode: str) -> None: ...

    def ticker(self, book: TopOfBook) -> None: ...

    def liquidity(self, record: dict[str, Any]) -> None: ...

    def forecast(self, version: str, frame: Any, offset_ms: int) -> None: ...

    def close(self) -> None: ...


class NullRecorder:
    """Records nothing (Elasticsearch switched off)."""

    def order(self, request: OrderRequest, status: OrderStatus, context: TradeContext) -> None:
        return None

    def fill(self, fill: Fill, status: OrderStatus, context: TradeContext) -> None:
        return None

    def score(self, trip: RoundTrip, status: OrderStatus, context: TradeContext) -> None:
        return None

    def balances(self, usd: Decimal, btc: Decimal, ts_ms: int, mode: str) -> None:
        return None

    def ticker(self, book: TopOfBook) -> None:
        return None

    def liquidity(self, record: dict[str, Any]) -> None:
        return None

    def forecast(self, version: str, frame: Any, offset_ms: int) -> None:
        return None

    def close(self) -> None:
        return None
