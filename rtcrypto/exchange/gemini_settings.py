"""The Gemini adapter for the settings: sandbox or live, keys, the live guard, the nonce file."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from rtcrypto.config import Settings, TradingMode
from rtcrypto.exchange.endpoints import is_live_gemini, venue_slug
from rtcrypto.exchange.gemini import GeminiAdapter, GeminiConfigError
from rtcrypto.exchange.nonce_store import PersistentNonceSource
from rtcrypto.redact import redact_url

log = logging.getLogger("exchange.gemini")


def gemini_adapter_from_settings(
    settings: Settings, clock_ms: Callable[[], int] | None = None
) -> GeminiAdapter:
    """A :class:`GeminiAdapter` for ``settings.trading_mode`` sandbox or live.

    Refuses (:class:`GeminiConfigError`): paper mode (the paper adapter trades there), missing
    ``RTC_GEMINI_API_KEY`` / ``RTC_GEMINI_API_SECRET``, and Gemini's live URL unless
    ``RTC_TRADING_MODE=live``. Live logs a loud warning.
    """
    mode = settings.trading_mode
    if mode is TradingMode.paper:
        raise GeminiConfigError(
            "RTC_TRADING_MODE is paper: orders go to the paper adapter. Set RTC_TRADING_MODE="
            "sandbox (with RTC_GEMINI_REST_URL=http://127.0.0.1:8765 for the simulator) or live"
        )
    missing = [
        name
        for name, value in (
            ("RTC_GEMINI_API_KEY", settings.gemini_api_key),
            ("RTC_GEMINI_API_SECRET", settings.gemini_api_secret),
        )
        if value is None or not value.get_secret_value()
    ]
    if missing:
        raise GeminiConfigError(
            f"RTC_TRADING_MODE={mode.value} needs {' and '.join(missing)} "
            "(an API key of the account to trade; never put them in a file under version control)"
        )
    base_url = settings.gemini_rest_base_url
    if is_live_gemini(base_url) and mode is not TradingMode.live:
        raise GeminiConfigError(
            f"RTC_GEMINI_REST_URL points at live Gemini ({redact_url(base_url)}) but RTC_TRADING_MODE is "
            f"{mode.value}: real orders need RTC_TRADING_MODE=live"
        )
    assert settings.gemini_api_key is not None and settings.gemini_api_secret is not None
    if mode is TradingMode.live:
        log.warning(
            "LIVE TRADING: real orders with real money will be sent to %s "
            "(RTC_TRADING_MODE=live). Stop with the kill switch or RTC_TRADING_MODE=paper.",
            redact_url(base_url),
        )
    else:
        log.info("gemini adapter mode=%s url=%s", mode.value, redact_url(base_url))
    return GeminiAdapter(
        base_url,
        settings.gemini_api_key,
        settings.gemini_api_secret,
        private_rate_per_min=settings.gemini_private_rate_per_min,
        fallback_fee_pct=settings.taker_fee_pct,
        nonce_source=PersistentNonceSource(nonce_path(settings)),
        clock_ms=clock_ms,
        symbol_details_refresh_s=settings.gemini_symbol_details_refresh_s,
    )


def nonce_path(settings: Settings) -> Path:
    """``<trader_dir>/nonce-<mode>-<host>.txt``: the last nonce sent to that exchange."""
    slug = venue_slug(settings.trading_mode.value, settings.gemini_rest_base_url)
    return settings.trader_dir / f"nonce-{slug}.txt"
