"""``rtc history import|info``: minute-bar files into partitioned Parquet, and what is there."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

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
