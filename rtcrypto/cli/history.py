"""``rtc history import|download|info``: minute bars into partitioned Parquet, and what is there."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from rtcrypto.cli import checks

if TYPE_CHECKING:
    from rtcrypto.history.venue_candles import CandleDownloadReport

app = typer.Typer(no_args_is_help=True, add_completion=False)

PROGRESS_MIN_BYTES = 4 << 20  # smaller files import in well under a second: no bar


@app.command("import")
def import_files(
    files: Annotated[list[Path], typer.Argument(help="Minute-bar CSV files, plain or .gz.")],
    dest: Annotated[
        Path | None,
        typer.Option(help="History folder (default: RTC_HISTORY_DIR, else <home>/history)."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            help="Partition name (default from the layout: kaggle_bitstamp, binance, bitstamp).",
            callback=checks.source_name,
        ),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bar (default: on a terminal)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
) -> None:
    """Import minute bars (Kaggle 2018 / current, Binance, Bitstamp); a re-import is a no-op."""
    from rtcrypto.history import HistoryError, import_file, resolve_history_dir

    folder = resolve_history_dir(dest)
    console = Console(stderr=True)
    show_progress = sys.stderr.isatty() if progress is None else progress
    reports = []
    for path in files:
        try:
            with _progress_bar(console, path, show_progress) as on_progress:
                report = import_file(
                    path, history_dir=folder, source=source, on_progress=on_progress
                )
        except (HistoryError, OSError) as error:
            typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=1) from None
        reports.append(report)
        if not as_json:
            typer.echo("\n".join(report.lines()))
    if as_json:
        typer.echo(json.dumps([report.to_dict() for report in reports], indent=2))
    else:
        typer.echo(f"history folder: {folder}")


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class _ByteProgress:
    """A rich progress bar over the file's bytes, fed by ``import_file``'s callback."""

    def __init__(self, console: Console, path: Path) -> None:
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._task = self._bar.add_task(path.name, total=path.stat().st_size)

    def __enter__(self) -> Callable[[int, int], None]:
        self._bar.start()
        return self._update

    def _update(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()


def _progress_bar(console: Console, path: Path, enabled: bool) -> _NoProgress | _ByteProgress:
    if enabled and path.is_file() and path.stat().st_size >= PROGRESS_MIN_BYTES:
        return _ByteProgress(console, path)
    return _NoProgress()


VENUES = ("gemini", "kaggle")


@app.command()
def download(
    venue: Annotated[
        str,
        typer.Option(
            help="Where the minutes come from: gemini (its 1-minute candles at "
            "RTC_GEMINI_REST_URL) or kaggle (the history_download DAG's Kaggle download).",
            case_sensitive=False,
        ),
    ] = "kaggle",
    symbol: Annotated[str, typer.Option(help="Gemini symbol.", callback=checks.symbol)] = "BTCUSD",
    since: Annotated[
        str | None,
        typer.Option(help="Keep minutes from this UTC date or time on (2024-10-28T12:30Z)."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            help="Source name (default gemini-candles; gemini-candles-<symbol> for another "
            "symbol).",
            callback=checks.source_name,
        ),
    ] = None,
    dest: Annotated[
        Path | None,
        typer.Option(help="History folder (default: RTC_HISTORY_DIR, else <home>/history)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Download minute bars from a venue into the history store; a rerun adds only new minutes."""
    venue = venue.lower()
    if venue not in VENUES:
        _usage_error(f"--venue {venue!r} is not one of: {', '.join(VENUES)}")
    if venue == "kaggle":
        _usage_error(
            "the Kaggle download needs Kaggle credentials and runs in Airflow: "
            "`rtc airflow dags trigger history_download`; or import a downloaded file with "
            "`rtc history import FILE`; or use --venue gemini (no account needed)"
        )
    report = _download_gemini(symbol, _since_ms(since), source, dest)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo("\n".join(report.lines()))


def _since_ms(since: str | None) -> int | None:
    """``--since`` as UTC epoch ms (None when not given); a bad or future one exits 2."""
    from datetime import UTC, datetime

    from rtcrypto.history import HistoryError
    from rtcrypto.history.venue_candles import parse_since

    if since is None:
        return None
    try:
        since_ms = parse_since(since)
    except HistoryError as error:
        _usage_error(str(error))
    if since_ms > datetime.now(UTC).timestamp() * 1000:
        _usage_error(f"--since {since!r} is in the future")
    return since_ms


def _download_gemini(
    symbol: str, since_ms: int | None, source: str | None, dest: Path | None
) -> CandleDownloadReport:
    """Gemini's candles into the store, with progress on stderr; errors exit 2 (bad input) or 1."""
    from rtcrypto.config import settings_or_exit
    from rtcrypto.history import HistoryError
    from rtcrypto.history.venue_candles import UnknownSymbolError, download_gemini_candles

    settings = settings_or_exit()
    console = Console(stderr=True, log_path=False)
    try:
        with console.status("downloading", spinner="dots") as status:

            def show(line: str) -> None:
                console.log(line)
                status.update(line)

            return download_gemini_candles(
                settings.gemini_rest_base_url,
                symbol,
                since_ms=since_ms,
                source=source,
                history_dir=dest,
                on_progress=show,
            )
    except UnknownSymbolError as error:
        _usage_error(str(error))
    except (HistoryError, OSError) as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None


def _usage_error(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command()
def info(
    dest: Annotated[
        Path | None,
        typer.Option(help="History folder (default: RTC_HISTORY_DIR, else <home>/history)."),
    ] = None,
) -> None:
    """What the history folder holds, per source."""
    from datetime import UTC, datetime

    from rtcrypto.history import HistoryError, resolve_history_dir, summarize

    folder = resolve_history_dir(dest)
    try:
        summaries = summarize(folder)
    except HistoryError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
    if not summaries:
        typer.echo(f"no history in {folder}; import files with: rtc history import FILE...")
        return

    def when(ts_ms: int | None) -> str:
        if ts_ms is None:
            return "-"
        return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")

    table = Table(title=f"history in {folder}")
    for column in ("source", "imports", "rows", "first (UTC)", "last (UTC)", "parts", "price"):
        table.add_column(
            column, justify="right" if column in ("imports", "rows", "parts") else "left"
        )
    for summary in summaries:
        table.add_row(
            summary.source,
            str(summary.imports),
            f"{summary.rows:,}",
            when(summary.first_ts_ms),
            when(summary.last_ts_ms),
            str(summary.parts),
            ", ".join(summary.price_bases),
        )
    Console().print(table)
