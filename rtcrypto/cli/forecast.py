"""``rtc forecast train|backtest|publish|current``: Prophet forecast, honest backtest, gated publish."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rtcrypto.cli import checks
from rtcrypto.config import FORECAST_HORIZON_MAX_MINUTES

if TYPE_CHECKING:
    import pandas as pd

    from rtcrypto.trading.backtest import BacktestConfig

app = typer.Typer(no_args_is_help=True, add_completion=False)

FilesArgument = Annotated[
    list[Path] | None,
    typer.Argument(help="Minute-bar files (default: the Binance files of ../shared/data/minute)."),
]
HoldoutOption = Annotated[
    float | None,
    typer.Option(
        help="Held-out days at the end (default RTC_FORECAST_HOLDOUT_DAYS).",
        min=1 / 1440,  # at least one minute
        max=366,
    ),
]
ParityOption = Annotated[
    bool, typer.Option("--book-parity", help="Stock Prophet on every minute, as the book (slow).")
]
FeeOption = Annotated[
    Decimal | None,
    typer.Option(
        help="Taker fee in percent (default RTC_TAKER_FEE_PCT).",
        callback=checks.fee_pct,
    ),
]
MinutesOption = Annotated[
    int | None,
    typer.Option(help="Forecast horizon in minutes.", min=1, max=FORECAST_HORIZON_MAX_MINUTES),
]
SourceOption = Annotated[
    str | None, typer.Option(help="Imported history source.", callback=checks.source_name)
]


def _default_files() -> list[Path]:
    from rtcrypto.config import PROJECT_ROOT

    folder = PROJECT_ROOT.parent / "shared" / "data" / "minute"
    files = sorted(folder.glob("binance_*.csv*"))
    if not files:
        raise typer.BadParameter(f"no Binance minute files in {folder}; pass files explicitly")
    return files


def _config(fee: Decimal | None) -> BacktestConfig:
    from rtcrypto.config import get_settings
    from rtcrypto.trading.backtest import BacktestConfig

    overrides = {} if fee is None else {"taker_fee_pct": fee}
    return BacktestConfig.from_settings(get_settings(), **overrides)


def _bars(
    source: str | None, file: Path | None, start: str | None, end: str | None
) -> pd.DataFrame:
    import pandas as pd

    from rtcrypto.forecast.walkforward import load_bars_file
    from rtcrypto.history import load_history

    if (source is None) == (file is None):
        raise typer.BadParameter("give exactly one of --source (imported history) or --file")
    if file is not None:
        bars = load_bars_file(file)
        times = pd.to_datetime(bars["ts"], utc=True)
        keep = pd.Series(True, index=bars.index)
        if start is not None:
            keep &= times >= pd.Timestamp(start, tz="UTC")
        if end is not None:
            keep &= times < pd.Timestamp(end, tz="UTC")
        bars = bars[keep.to_numpy()].reset_index(drop=True)
        if bars.empty:
            raise typer.BadParameter(f"{file} has no minute in [{start or '-'}, {end or '-'})")
        return bars
    return load_history(source or "", start, end)


@app.command("backtest")
def backtest(
    files: FilesArgument = None,
    holdout_days: HoldoutOption = None,
    book_parity: ParityOption = False,
    fee: FeeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document per segment.")] = False,
) -> None:
    """Walk-forward per segment: train on the earlier part, score only the following days."""
    from rtcrypto.config import get_settings
    from rtcrypto.forecast.walkforward import SegmentResult, walk_forward

    def show(result: SegmentResult) -> None:
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "segment": result.name,
                        "train_first": result.train_first.isoformat(),
                        "train_last": result.train_last.isoformat(),
                        "holdout_first": result.holdout_first.isoformat(),
                        "holdout_last": result.holdout_last.isoformat(),
                        "rmse_log_price": result.score.rmse_log_price,
                        "report": result.score.report.to_dict(),
                    },
                    default=str,
                )
            )
        else:
            typer.echo("\n".join(result.lines()) + "\n")

    days = holdout_days or get_settings().forecast_holdout_days
    results = walk_forward(
        files or _default_files(),
        holdout_days=days,
        book_parity=book_parity,
        config=_config(fee),
        on_segment=show,
    )
    if not as_json:
        beat = sum(
            1
            for result in results
            if result.score.report.strategy.return_pct
            > result.score.report.random_baseline.return_pct_max
        )
        typer.echo(
            f"{len(results)} segments; the strategy beat every random run in {beat}. "
            "This is a backtest on history without an order book (no liquidity gate), "
            "not a promise of profit."
        )


@app.command("train")
def train_command(
    source: SourceOption = None,
    file: Annotated[Path | None, typer.Option(help="A minute-bar file instead.")] = None,
    start: Annotated[str | None, typer.Option(help="First minute (UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="End, exclusive (UTC).")] = None,
    out: Annotated[Path, typer.Option(help="Where to write the forecast Parquet.")] = Path(
        "forecast.parquet"
    ),
    minutes: MinutesOption = None,
    book_parity: ParityOption = False,
) -> None:
    """Train on all the given minutes and write the forecast from the next minute on."""
    import time

    from rtcrypto.config import get_settings
    from rtcrypto.forecast import forecast, prepare, train

    model = train(prepare(_bars(source, file, start, end)), book_parity=book_parity)
    started = time.perf_counter()
    frame = forecast(model, minutes=minutes or get_settings().forecast_horizon_minutes)
    seconds = time.perf_counter() - started
    frame.to_parquet(out, index=False)
    typer.echo(
        f"trained on {model.train_rows:,} minutes ({model.fit_rows:,} rows fitted, "
        f"{model.bucket_minutes}-minute buckets) in {model.fit_seconds:.1f} s; "
        f"forecast {len(frame):,} minutes in {seconds:.2f} s -> {out}"
    )


@app.command("publish")
def publish_command(
    source: SourceOption = None,
    file: Annotated[Path | None, typer.Option(help="A minute-bar file instead.")] = None,
    start: Annotated[str | None, typer.Option(help="First minute (UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="End, exclusive (UTC).")] = None,
    holdout_days: HoldoutOption = None,
    minutes: MinutesOption = None,
    book_parity: ParityOption = False,
    fee: FeeOption = None,
    forecast_dir: Annotated[Path | None, typer.Option(help="Default <home>/forecast.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Make it current whatever the gate says (--reason).")
    ] = False,
    reason: Annotated[
        str | None, typer.Option(help="Why --force: recorded in the version's metadata.json.")
    ] = None,
) -> None:
    """Train, backtest on the holdout, write a version; it becomes current only past the gate
    (or with --force --reason TEXT, recorded with the user and time)."""
    from rtcrypto.config import get_settings
    from rtcrypto.forecast.publish import publish

    if force and not (reason or "").strip():
        raise typer.BadParameter(
            "--force needs --reason TEXT: say why the gate is overridden (it is recorded)",
            param_hint="--reason",
        )
    if reason is not None and not force:
        raise typer.BadParameter("--reason goes with --force", param_hint="--reason")
    settings = get_settings()
    result = publish(
        _bars(source, file, start, end),
        source=source or str(file),
        holdout_days=holdout_days or settings.forecast_holdout_days,
        horizon_minutes=minutes or settings.forecast_horizon_minutes,
        book_parity=book_parity,
        forecast_dir=forecast_dir,
        config=_config(fee),
        force_reason=reason if force else None,
    )
    backtest_metrics = result.metadata["backtest"]
    typer.echo(f"version {result.version} -> {result.folder}")
    typer.echo(
        f"  holdout: hit rate {_rate(backtest_metrics['hit_rate'])}, return {backtest_metrics['return_pct']:+.3f} % "
        f"after fees (buy-and-hold {backtest_metrics['buy_and_hold_return_pct']:+.3f} %), "
        f"RMSE log price {backtest_metrics['rmse_log_price']:.5f}; no liquidity gate applied"
    )
    status = "current" if result.promoted else "candidate (not promoted)"
    typer.echo(f"  {status}: {result.reason}")


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.4f}"


@app.command("current")
def current_command(
    forecast_dir: Annotated[Path | None, typer.Option(help="Default <home>/forecast.")] = None,
) -> None:
    """Show the current version and its backtest metrics."""
    from rtcrypto.forecast.publish import NoCurrentForecastError, load_current

    try:
        current = load_current(forecast_dir)
    except NoCurrentForecastError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"current {current.version}: {len(current.forecast):,} minutes")
    typer.echo(json.dumps(current.metadata["backtest"], indent=2))
