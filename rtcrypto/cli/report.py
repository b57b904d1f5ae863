"""``rtc report``: the trade review (HTML + PNG) of a time range, from Elasticsearch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        since: Annotated[
            str,
            typer.Option(help="Start: a duration before --until (24h, 90m, 7d) or an ISO date."),
        ] = "24h",
        until: Annotated[
            str,
            typer.Option(
                help="End (exclusive): 'now', a duration before now, or ISO. 'now' is the feed "
                "clock's: the simulator's time with the simulator feed (historical in a replay)."
            ),
        ] = "now",
        out: Annotated[
            Path | None,
            typer.Option(help="Output folder (default: <home>/reports/<UTC date of --until>)."),
        ] = None,
        mode: Annotated[
            str | None,
            typer.Option(help="Only this trading mode: paper, sandbox or live (default: all)."),
        ] = None,
        symbol: Annotated[
            str | None, typer.Option(help="Symbol (default: RTC_TRADER_SYMBOL).")
        ] = None,
        durations: Annotated[
            str | None,
            typer.Option(
                help="feed: durations are feed-clock time; wall: wall time, multiplied by the "
                "replay's speed (--since 1h at 60x covers 60 replayed hours). Default: "
                "RTC_REPORT_DURATIONS (feed)."
            ),
        ] = None,
    ) -> None:
        """Orders, fills, round trips, P&L after fees, liquidity and the forecast of a range.

        Durations count back from the feed clock's now (the trader's clock: the simulator's time
        with the simulator feed; the newest recorded time once the simulator is gone)."""
        from rtcrypto.config import get_settings
        from rtcrypto.report import ReportError, report_range
        from rtcrypto.report.model import parse_time_bound
        from rtcrypto.search import SearchError

        if durations not in (None, "feed", "wall"):
            raise typer.BadParameter(f"--durations must be feed or wall, got {durations!r}")
        try:  # bad input first, before any service is asked for the time
            parse_time_bound(since, parse_time_bound(until, 0))
        except ReportError as error:
            raise typer.BadParameter(str(error)) from None
        try:
            result = report_range(
                get_settings(),
                since=since,
                until=until,
                out_dir=out,
                mode=mode,
                symbol=symbol,
                durations=durations,
            )
        except (ReportError, SearchError) as error:
            typer.echo(f"rtc report: {error}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"html: {result.html_path}")
        typer.echo(f"png:  {result.png_path}")
        typer.echo(f"json: {result.json_path}")
        for line in result.summary.lines():
            typer.echo(line)
