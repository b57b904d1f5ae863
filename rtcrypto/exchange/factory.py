"""The exchange adapter for ``RTC_TRADING_MODE``: ``paper`` (default), ``sandbox`` or ``live``."""

from __future__ import annotations

from collections.abc import Callable

from rtcrypto.config import Settings, TradingMode
from rtcrypto.exchange.base import ExchangeAdapter, TopOfBook
from rtcrypto.exchange.gemini import GeminiAdapter, gemini_adapter_from_settings
from rtcrypto.exchange.paper import PaperExchange

PAPER_ACCOUNT_FILE = "paper-account.json"


def public_top_of_book(base_url: str) -> Callable[[str], TopOfBook]:
    """Best bid and ask from ``base_url``'s public ``/v1/book`` (the simulator or Gemini)."""
    return GeminiAdapter(base_url, "", "", public_only=True).top_of_book


def exchange_from_settings(settings: Settings) -> ExchangeAdapter:
    """Paper against the feed's public book, or Gemini (sandbox / the simulator / live)."""
    if settings.trading_mode is TradingMode.paper:
        return PaperExchange(
            settings.trader_dir / PAPER_ACCOUNT_FILE,
            public_top_of_book(settings.gemini_rest_base_url),
            usd=settings.paper_usd,
            btc=settings.paper_btc,
            taker_fee_pct=settings.taker_fee_pct,
        )
    return gemini_adapter_from_settings(settings)
