"""The trader's recorder for Elasticsearch: documents with deterministic ids into the bulk writer.

The writer buffers and indexes from its own thread, spooling to disk while Elasticsearch is down,
so recording never blocks a decision and nothing is lost or doubled.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rtcrypto.exchange.base import OrderStatus
from rtcrypto.search import documents
from rtcrypto.trader.recorder import TradeContext
from rtcrypto.trading.ledger import Fill, RoundTrip
from rtcrypto.trading.order_types import OrderRequest, TopOfBook

if TYPE_CHECKING:
    from rtcrypto.config import Settings
    from rtcrypto.search.spool_guard import OverflowHandler
    from rtcrypto.search.writer import SearchWriter


class SearchRecorder:
    """Implements ``TradeRecorder`` on a ``SearchWriter``."""

    def __init__(self, writer: SearchWriter, symbol: str, exchange: str, prefix: str) -> None:
        self.writer = writer
        self.symbol = symbol
        self.exchange = exchange
        self.prefix = prefix
        self._entry_ids: dict[str, str] = {}  # last buy's client order id, for the score
        self._last_buy_id: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, exchange: str = "paper") -> SearchRecorder:
        from rtcrypto.search.writer import SearchWriter

        writer = SearchWriter.from_settings(settings, name="trader")
        return cls(writer, settings.trader_symbol, exchange, settings.search_index_prefix)

    def order(self, request: OrderRequest, status: OrderStatus, context: TradeContext) -> None:
        self.writer.add(
            documents.order_document(
                request,
                status,
                trading_mode=context.mode,
                forecast_version=context.forecast_version,
                exchange=self.exchange,
                prefix=self.prefix,
            )
        )

    def fill(self, fill: Fill, status: OrderStatus, context: TradeContext) -> None:
        client_order_id = status.client_order_id or f"exchange:{status.order_id}"
        if fill.side.value == "buy":
            self._last_buy_id = client_order_id
        self.writer.add(
            documents.fill_document(
                fill,
                client_order_id=client_order_id,
                symbol=self.symbol,
                trading_mode=context.mode,
                forecast_version=context.forecast_version,
                prefix=self.prefix,
            )
        )

    def score(self, trip: RoundTrip, status: OrderStatus, context: TradeContext) -> None:
        self.writer.add(
            documents.score_document(
                trip,
                exit_client_order_id=status.client_order_id or f"exchange:{status.order_id}",
                entry_client_order_id=self._last_buy_id,
                symbol=self.symbol,
                trading_mode=context.mode,
                forecast_version=context.forecast_version,
                prefix=self.prefix,
            )
        )

    def balances(self, usd: Decimal, btc: Decimal, ts_ms: int, mode: str) -> None:
        self.writer.add(
            documents.balances_document(usd, btc, ts_ms, trading_mode=mode, prefix=self.prefix)
        )

    def ticker(self, book: TopOfBook) -> None:
        self.writer.add(documents.ticker_document(book, prefix=self.prefix))

    def liquidity(self, record: dict[str, Any]) -> None:
        self.writer.add(documents.liquidity_document(record, prefix=self.prefix))

    def forecast(self, version: str, frame: Any, offset_ms: int) -> None:
        """The forecast's minutes, on the feed's clock (``offset_ms`` ahead of ``ds``)."""
        for action in documents.forecast_documents(
            frame, version, prefix=self.prefix, timestamp_offset_ms=offset_ms
        ):
            self.writer.add(action)

    def alerts(self) -> list[str]:
        """The bulk writer's alerts (spool full, credentials refused) for the heartbeat."""
        return self.writer.alerts()

    def attach_overflow(self, handler: OverflowHandler, target: str) -> None:
        """Where documents over the spool cap go (the trader: the Kafka dead-letter topic)."""
        self.writer.on_overflow = handler
        self.writer.overflow_target = target

    def close(self) -> None:
        self.writer.close()
