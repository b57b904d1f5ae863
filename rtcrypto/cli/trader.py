"""rtc trader: run the trader service in the foreground."""

from __future__ import annotations

import typer

from rtcrypto.cli import checks


def register(app: typer.Typer) -> None:
    @app.command("trader")
    def trader(
        mode: str = typer.Option(
            None,
            callback=checks.trading_mode,
            help="paper (default), sandbox or live (RTC_TRADING_MODE; live needs keys).",
        ),
        symbol: str = typer.Option(
            None, help="Symbol to trade (default: RTC_TRADER_SYMBOL).", callback=checks.symbol
        ),
    ) -> None:
        """liquidity.minute.v1 + the current forecast -> orders -> Elasticsearch, until Ctrl-C."""
        import os

        from rtcrypto.config import get_settings

        if mode:
            os.environ["RTC_TRADING_MODE"] = mode
        if symbol:
            os.environ["RTC_TRADER_SYMBOL"] = symbol
        get_settings.cache_clear()
        from rtcrypto.trader.service import main

        main()
