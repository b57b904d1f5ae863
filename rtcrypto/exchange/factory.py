"""The exchange adapter for ``RTC_TRADING_MODE``: ``paper`` (default), ``sandbox`` or ``live``."""

from __future__ import annotations

from collections.abc import Callable

from rtcrypto.config import Settings, TradingMode
from rtcrypto.exchange.base import ExchangeAdapter
from rtcrypto.exchange.gemini import GeminiAdapter
from rtcrypto.exchange.gemini_settings import gemini_adapter_from_settings
from rtcrypto.exchange.paper import PaperExchange
from rtcrypto.trading.order_rules import OrderRules
from rtcrypto.trading.order_types import TopOfBook

PAPER_ACCOUNT_FILE = "paper-account.json"


def public_top_of_book(
    base_url: str, clock_ms: Callable[[], int] | None = None
) -> Callable[[str], TopOfBook]:
    """Best bid and ask from ``base_url``'s public ``/v1/book`` (the simulator or Gemini),
    stamped with ``clock_ms`` (the feed clock; wall clock when None)."""
    return GeminiAdapter(base_url, "", "", public_only=True, clock_ms=clock_ms).top_of_book


def exchange_from_settings(
    settings: Settings, clock_ms: Callable[[], int] | None = None
) -> ExchangeAdapter:
    """Paper against the feed's public book, or Gemini (sandbox / the simulator / live).

    ``clock_ms`` (the feed clock, :mod:`rtcrypto.exchange.feedclock`) times the book reads and the paper
    fills; the wall clock when None. Gemini's own order times come from the exchange (the
    simulator's sandbox uses its simulated clock)."""
    if settings.trading_mode is TradingMode.paper:
        return PaperExchange(
            settings.trader_dir / PAPER_ACCOUNT_FILE,
            public_top_of_book(settings.gemini_rest_base_url, clock_ms),
            usd=settings.paper_usd,
            btc=settings.paper_btc,
            taker_fee_pct=settings.taker_fee_pct,
            clock_ms=clock_ms,
            order_rules=paper_order_rules(settings),
        )
    return gemini_adapter_from_settings(settings, clock_ms)


def paper_order_rules(settings: Settings) -> OrderRules:
    """The paper exchange's order rules (:meth:`OrderRules.paper_from_settings`)."""
    return OrderRules.paper_from_settings(settings)
