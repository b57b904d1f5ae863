"""rtc ingest: run the market-data ingest service in the foreground."""

from __future__ import annotations

import typer

from rtcrypto.cli import checks


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        symbols: str = typer.Option(
            None, help="Comma-separated symbols (default: RTC_SYMBOLS).", callback=checks.symbols
        ),
        live: bool = typer.Option(
            False, "--live", help="Read Gemini's public feed, not the simulator."
        ),
    ) -> None:
        """Gemini market data v1 (or the simulator) -> Kafka, until Ctrl-C or SIGTERM."""
        from rtcrypto.ingest.service import main

        changes = {"symbols": symbols or None, "feed": "live" if live else None}
        main(checks.settings_with_flags({k: v for k, v in changes.items() if v is not None}))
