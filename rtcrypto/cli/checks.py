"""Typer callbacks that refuse nonsense CLI arguments with exit 2 and a message naming the flag.

Numbers use Typer's own ``min=`` / ``max=`` (click ranges); these cover what a range cannot say:
symbols, source names (never a path) and decimals. The rules are the settings' (rtcrypto/config.py).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import typer

from rtcrypto.config import NAME_PATTERN, SYMBOL_PATTERN, Settings

MAX_FEE_PCT = Decimal(10)  # as RTC_TAKER_FEE_PCT


def symbol(value: str | None) -> str | None:
    """An exchange symbol like BTCUSD (3 to 20 letters or digits), or None."""
    if value is not None and not re.match(SYMBOL_PATTERN, value):
        raise typer.BadParameter(f"{value!r} must be 3 to 20 letters or digits, e.g. BTCUSD")
    return value


def symbols(value: str | None) -> str | None:
    """Comma-separated exchange symbols like BTCUSD,ETHUSD, or None."""
    if value is None:
        return None
    for name in value.split(","):
        if not re.match(SYMBOL_PATTERN, name.strip()):
            raise typer.BadParameter(
                f"{name.strip()!r} must be 3 to 20 letters or digits, e.g. BTCUSD,ETHUSD"
            )
    return value


def source_name(value: str | None) -> str | None:
    """A history source name like binance (letters, digits, ``_.-``; never a path), or None."""
    if value is not None and (not re.match(NAME_PATTERN, value) or value in {".", ".."}):
        raise typer.BadParameter(f"{value!r} must be a name like binance or kaggle_bitstamp")
    return value


def fee_pct(value: Decimal | None) -> Decimal | None:
    """A taker fee in percent, 0 to 10, or None."""
    if value is None:
        return None
    try:
        valid = value.is_finite() and Decimal(0) <= value <= MAX_FEE_PCT
    except InvalidOperation:
        valid = False
    if not valid:
        raise typer.BadParameter(f"{value} must be a percent from 0 to {MAX_FEE_PCT}, e.g. 0.25")
    return value


def trading_mode(value: str | None) -> str | None:
    """paper, sandbox or live, or None."""
    from rtcrypto.config import TradingMode

    if value is not None and value not in {mode.value for mode in TradingMode}:
        raise typer.BadParameter(f"{value!r} must be paper, sandbox or live")
    return value


def settings_with_flags(changes: dict[str, object]) -> Settings:
    """The settings with a command's flags applied (field name -> value) and validated; a bad
    value prints one line naming it and exits 2."""
    from rtcrypto.config import get_settings, settings_with
    from rtcrypto.config_checks import SettingsError

    try:
        return settings_with(get_settings(), **changes)
    except SettingsError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
