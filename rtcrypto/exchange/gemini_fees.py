"""Gemini's ``/v1/notionalvolume``: the account's fee tier, as the trader uses it.

Gemini charges each account the rate of its tier, which depends on its 30-day notional volume:
the answer lists a rate in basis points per channel (``web``, ``api``, ``fix``, ``block``) and
kind (``maker``, ``taker``, ``auction``). The trader sends API orders that take liquidity, so its
rate is ``api_taker_fee_bps``; the strategy's decisions and the fee estimate (used only when the
charged fee cannot be read) then match what the account pays, not a configured constant.

Docs: https://developer.gemini.com/trading/rest-api/orders/get-notional-trading-volume
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from rtcrypto.exchange.base import ExchangeError

MAX_FEE_BPS = Decimal(1000)  # 10 %: a larger rate is not a Gemini fee tier


@dataclass(frozen=True, slots=True)
class FeeTier:
    """The account's API fee rates (basis points) and its 30-day notional volume (USD)."""

    api_taker_fee_bps: Decimal
    api_maker_fee_bps: Decimal
    notional_30d_volume_usd: Decimal

    @property
    def taker_fee_pct(self) -> Decimal:
        """The taker rate in percent (25 bps -> 0.25), the unit of ``RTC_TAKER_FEE_PCT``."""
        return self.api_taker_fee_bps / Decimal(100)


def _bps(document: Mapping[str, Any], name: str) -> Decimal:
    value = document.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ExchangeError(
            f"gemini /v1/notionalvolume: {name} is {type(value).__name__}, not a number",
            reason="UnreadableAnswer",
        )
    try:
        bps = Decimal(str(value))
    except (InvalidOperation, ValueError):
        bps = Decimal("NaN")
    if not bps.is_finite() or not 0 <= bps <= MAX_FEE_BPS:
        raise ExchangeError(
            f"gemini /v1/notionalvolume: {name}={str(value)[:40]!r} is not a fee rate "
            f"in basis points (0 to {MAX_FEE_BPS})",
            reason="UnreadableAnswer",
        )
    return bps


def parse_notional_volume(document: Any) -> FeeTier:
    """The ``/v1/notionalvolume`` answer as a :class:`FeeTier`; anything else is an
    ``ExchangeError`` (reason ``UnreadableAnswer``) naming the field."""
    if not isinstance(document, Mapping):
        raise ExchangeError(
            f"gemini /v1/notionalvolume: expected an object, got {type(document).__name__}",
            reason="UnreadableAnswer",
        )
    volume = document.get("notional_30d_volume", 0)
    if isinstance(volume, bool) or not isinstance(volume, int | float) or not math.isfinite(volume):
        raise ExchangeError(
            "gemini /v1/notionalvolume: notional_30d_volume is not a finite number",
            reason="UnreadableAnswer",
        )
    return FeeTier(
        api_taker_fee_bps=_bps(document, "api_taker_fee_bps"),
        api_maker_fee_bps=_bps(document, "api_maker_fee_bps"),
        notional_30d_volume_usd=Decimal(str(volume)),
    )
