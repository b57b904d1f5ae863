"""rtc ingest: run the market-data ingest service in the foreground."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        symbols: str = typer.Option(None, help="Comma-separated symbols (default: RTC_SYMBOLS)."),
        live: bool = typer.Option(
            False, "--live", help="Read Gemini's public feed, not the simulator."
        ),
    ) -> None:
        """Gemini market data v1 (or the simulator) -> Kafka, until Ctrl-C or SIGTERM."""
        import os

        from rtcrypto.config import get_settings

        if symbols:
            os.environ["RTC_SYMBOLS"] = symbols
        if live:
            os.environ["RTC_FEED"] = "live"
        get_settings.cache_clear()
        from rtcrypto.ingest.service import main

        main()
