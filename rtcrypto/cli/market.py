"""rtc simulate / rtc ingest (placeholder until their modules land)."""

import typer


def register(app: typer.Typer) -> None:
    return None
