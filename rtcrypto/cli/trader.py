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
        from rtcrypto.trader.service import main

        changes = {"trading_mode": mode, "trader_symbol": symbol}
        main(checks.settings_with_flags({k: v for k, v in changes.items() if v}))
