"""rtc simulate: the exchange simulator (Gemini market data from a recorded capture or from real
minute bars with a modelled book), and ``rtc simulate calibrate``.

``python -m streaming.simulator`` runs this same command, so both take the same flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from rtcrypto.config import Settings
    from rtcrypto.simulator import SimulatorOptions
    from rtcrypto.simulator.history_replay import HistoryReplay

simulate_app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
    help="The exchange simulator: Gemini market data v1/v2, REST and a sandbox.",
)


@simulate_app.callback()
def simulate(
    ctx: typer.Context,
    capture: Annotated[
        list[Path] | None,
        typer.Option(
            "--capture",
            help="Capture file (cryptofeed text format, gzip or plain); repeat to merge "
            "files. Default: RTC_SIMULATOR_CAPTURE (the Gemini v2 capture).",
        ),
    ] = None,
    history: Annotated[
        str | None,
        typer.Option(
            "--history",
            help="Replay the minute bars of this imported history source (`rtc history info`) "
            "instead of a capture: real prices, modelled book. Needs --start and --end.",
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--start", help="History replay: first minute, ISO-8601 UTC (2024-10-28)."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--end", help="History replay: end, exclusive, ISO-8601 UTC (2024-10-29)."),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="History replay: the modelled book's seed. Default: RTC_SIMULATOR_SEED.",
            min=0,
            max=2**32 - 1,
        ),
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            help="History replay: calibration file of the modelled book. "
            "Default: RTC_SIMULATOR_CALIBRATION (the packaged one).",
        ),
    ] = None,
    resume_file: Annotated[
        Path | None,
        typer.Option(
            "--resume-file",
            help="History replay: record each replayed minute here and resume after it on a "
            "restart with the same --history/--start/--end/--seed.",
        ),
    ] = None,
    history_dir: Annotated[
        Path | None,
        typer.Option("--history-dir", help="History folder. Default: RTC_HISTORY_DIR."),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            help="Replay speed x wall clock; 0 = as fast as clients read. "
            "Default: RTC_SIMULATOR_SPEED.",
            min=0,
            max=100_000,
        ),
    ] = None,
    loop: Annotated[
        bool, typer.Option("--loop", help="Replay again when the capture ends.")
    ] = False,
    host: Annotated[
        str | None, typer.Option(help="Bind address. Default: RTC_SIMULATOR_HOST.")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port (0 = any free). Default: RTC_SIMULATOR_PORT.", min=0, max=65535),
    ] = None,
    heartbeat_interval: Annotated[
        float,
        typer.Option(
            "--heartbeat-interval", help="Wall seconds between heartbeats.", min=0.1, max=3600
        ),
    ] = 1.0,
    drop_after: Annotated[
        int | None,
        typer.Option(
            "--drop-after",
            help="Fault: close each connection after N messages (fires once).",
            min=1,
        ),
    ] = None,
    skip_sequence_at: Annotated[
        int | None,
        typer.Option(
            "--skip-sequence-at",
            help="Fault: skip socket_sequence N once per connection.",
            min=0,
        ),
    ] = None,
    start_immediately: Annotated[
        bool,
        typer.Option(
            "--start-immediately", help="Start the replay now, not at the first subscriber."
        ),
    ] = False,
    fault_endpoints: Annotated[
        bool | None,
        typer.Option(
            "--fault-endpoints/--no-fault-endpoints",
            help="Serve POST /_sim/drop, /_sim/skip-sequence, /_sim/inject (fault injection, "
            "for tests). Default: RTC_SIMULATOR_FAULT_ENDPOINTS (off).",
        ),
    ] = None,
    symbols_file: Annotated[
        Path | None,
        typer.Option(
            "--symbols-file", help="Recorded GET /v1/symbols capture served at /v1/symbols."
        ),
    ] = None,
    shift_to_now: Annotated[
        bool,
        typer.Option(
            "--shift-to-now",
            help="Replay at today's time: move the capture's times forward by whole minutes.",
        ),
    ] = False,
    sandbox_account: Annotated[
        list[str] | None,
        typer.Option(
            "--sandbox-account",
            help="Gemini sandbox: accept private requests signed with KEY:SECRET "
            "(repeatable). Visible in `ps`: prefer --sandbox-from-settings.",
        ),
    ] = None,
    sandbox_from_settings: Annotated[
        bool,
        typer.Option(
            "--sandbox-from-settings",
            help="Gemini sandbox: an account for RTC_GEMINI_API_KEY / RTC_GEMINI_API_SECRET.",
        ),
    ] = False,
    sandbox_usd: Annotated[
        str, typer.Option("--sandbox-usd", help="Starting USD of each sandbox account.")
    ] = "10000",
    sandbox_btc: Annotated[
        str, typer.Option("--sandbox-btc", help="Starting BTC of each sandbox account.")
    ] = "0",
    sandbox_fee_pct: Annotated[
        str, typer.Option("--sandbox-fee-pct", help="Taker fee of sandbox fills, percent.")
    ] = "0.25",
) -> None:
    """Serve Gemini market data v1/v2 and REST until Ctrl-C or SIGTERM: a recorded capture
    (--capture), or real minute bars with a modelled book (--history SOURCE --start T --end T)."""
    if ctx.invoked_subcommand is not None:
        return
    from rtcrypto.logs import setup_logging
    from rtcrypto.simulator import run

    setup_logging("simulator")
    options = _options_or_exit(
        SimulateFlags(
            capture=tuple(capture or ()),
            history=history,
            start=start,
            end=end,
            seed=seed,
            calibration=calibration,
            resume_file=resume_file,
            history_dir=history_dir,
            speed=speed,
            loop=loop,
            host=host,
            port=port,
            heartbeat_interval_s=heartbeat_interval,
            drop_after=drop_after,
            skip_sequence_at=skip_sequence_at,
            start_immediately=start_immediately,
            fault_endpoints=fault_endpoints,
            symbols_file=symbols_file,
            shift_to_now=shift_to_now,
            sandbox_account=tuple(sandbox_account or ()),
            sandbox_from_settings=sandbox_from_settings,
            sandbox_usd=sandbox_usd,
            sandbox_btc=sandbox_btc,
            sandbox_fee_pct=sandbox_fee_pct,
        )
    )
    try:
        run(options)
    except (ValueError, ArithmeticError) as error:  # CaptureError, CalibrationError, ...
        _fail(str(error))


@simulate_app.command("calibrate")
def calibrate(
    capture: Annotated[
        list[Path] | None,
        typer.Option(
            "--capture",
            help="Gemini v2 capture(s) to measure (repeatable). Default: RTC_SIMULATOR_CAPTURE "
            "(../shared/data/orderbook/gemini_2021-04-17__GEMINI.ws.36.0.gz).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the JSON. Default: RTC_SIMULATOR_CALIBRATION."),
    ] = None,
) -> None:
    """Measure the book's shape and change rate on real Gemini captures and write the
    versioned calibration file the history replay's modelled book draws from."""
    from rtcrypto.config import get_settings
    from rtcrypto.simulator.calibration import compute_calibration, write_calibration

    settings = get_settings()
    paths = list(capture or [settings.simulator_capture])
    target = out or settings.simulator_calibration
    try:
        result = compute_calibration(paths)
    except ValueError as error:  # CaptureError, CalibrationError
        typer.echo(f"rtc simulate calibrate: {error}", err=True)
        raise typer.Exit(2) from None
    write_calibration(result, target)
    typer.echo(
        f"wrote {target}: schema v{result.schema_version}, from "
        f"{', '.join(source['name'] for source in result.sources)}; "
        f"{result.levels_per_side['bid']}/{result.levels_per_side['ask']} levels within "
        f"{result.band_bps:g} bps, median level distance {result.level_distance_bps[50]:.2f} bps, "
        f"median size {result.level_size_base[50]:g} BTC, {result.changes_per_s:.1f} changes/s "
        f"in {result.messages_per_s:.2f} messages/s, {result.trades_per_s:.2f} trades/s"
    )


@dataclass(frozen=True)
class SimulateFlags:
    """The raw flags of ``rtc simulate`` (and ``python -m streaming.simulator``), None = setting."""

    capture: tuple[Path, ...] = ()
    history: str | None = None
    start: str | None = None
    end: str | None = None
    seed: int | None = None
    calibration: Path | None = None
    resume_file: Path | None = None
    history_dir: Path | None = None
    speed: float | None = None
    loop: bool = False
    host: str | None = None
    port: int | None = None
    heartbeat_interval_s: float = 1.0
    drop_after: int | None = None
    skip_sequence_at: int | None = None
    start_immediately: bool = False
    fault_endpoints: bool | None = None  # None: RTC_SIMULATOR_FAULT_ENDPOINTS
    symbols_file: Path | None = None
    shift_to_now: bool = False
    sandbox_account: tuple[str, ...] = ()
    sandbox_from_settings: bool = False
    sandbox_usd: str = "10000"
    sandbox_btc: str = "0"
    sandbox_fee_pct: str = "0.25"


def simulator_options(flags: SimulateFlags, settings: Settings) -> SimulatorOptions:
    """The one place flags and settings become :class:`SimulatorOptions`; a history replay's
    source, range and calibration are checked here, before anything binds a port. Bad input
    raises ``ValueError`` (or ``ArithmeticError``) with a message naming the flag."""
    from rtcrypto.simulator import SimulatorOptions
    from rtcrypto.simulator.sandbox import sandbox_accounts_from_flags

    history = _history_replay(flags, settings) if flags.history is not None else None
    for flag, value in (("--start", flags.start), ("--end", flags.end), ("--seed", flags.seed)):
        if history is None and value is not None:
            raise ValueError(f"{flag} applies to a history replay: add --history SOURCE")
    if history is not None and flags.capture:
        raise ValueError("--capture and --history are mutually exclusive: choose one")
    return SimulatorOptions(
        capture_paths=() if history is not None else flags.capture or (settings.simulator_capture,),
        host=flags.host or settings.simulator_host,
        port=settings.simulator_port if flags.port is None else flags.port,
        speed=settings.simulator_speed if flags.speed is None else flags.speed,
        loop=flags.loop,
        heartbeat_interval_s=flags.heartbeat_interval_s,
        drop_after=flags.drop_after,
        skip_sequence_at=flags.skip_sequence_at,
        start_immediately=flags.start_immediately,
        fault_endpoints=(
            settings.simulator_fault_endpoints
            if flags.fault_endpoints is None
            else flags.fault_endpoints
        ),
        symbols_file=flags.symbols_file,
        shift_to_now=flags.shift_to_now,
        sandbox_accounts=sandbox_accounts_from_flags(
            flags.sandbox_account,
            Decimal(flags.sandbox_usd),
            Decimal(flags.sandbox_btc),
            *_settings_credentials(settings, flags.sandbox_from_settings),
        ),
        sandbox_fee_pct=Decimal(flags.sandbox_fee_pct),
        history=history,
    )


def _history_replay(flags: SimulateFlags, settings: Settings) -> HistoryReplay:
    from rtcrypto.simulator.calibration import load_calibration
    from rtcrypto.simulator.history_replay import (
        HistoryReplay,
        load_replay_bars,
        parse_utc_ms,
    )

    if flags.capture:
        raise ValueError("--capture and --history are mutually exclusive: choose one")
    if flags.start is None or flags.end is None:
        raise ValueError("--history needs --start and --end (ISO-8601 UTC, --end exclusive)")
    spec = HistoryReplay(
        source=str(flags.history),
        start_ms=parse_utc_ms(flags.start, "--start"),
        end_ms=parse_utc_ms(flags.end, "--end"),
        calibration_path=flags.calibration or settings.simulator_calibration,
        seed=settings.simulator_seed if flags.seed is None else flags.seed,
        history_dir=flags.history_dir or settings.history_dir,
        resume_file=flags.resume_file,
        symbol=settings.trader_symbol.upper(),
    )
    load_calibration(spec.calibration_path)  # fail now, naming the file, not after binding
    load_replay_bars(spec)
    return spec


def _options_or_exit(flags: SimulateFlags) -> SimulatorOptions:
    from rtcrypto.config import get_settings

    try:
        return simulator_options(flags, get_settings())
    except (ValueError, ArithmeticError) as error:
        _fail(str(error))
        raise  # unreachable: _fail exits


def _fail(message: str) -> NoReturn:
    typer.echo(f"rtc simulate: {message}", err=True)
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Add ``rtc simulate`` (and ``rtc simulate calibrate``) to the command line."""
    app.add_typer(simulate_app, name="simulate")


def _settings_credentials(settings: Settings, wanted: bool) -> tuple[str | None, str | None]:
    """The settings' Gemini key and secret as text when ``--sandbox-from-settings`` (else None)."""
    if not wanted:
        return None, None
    key, secret = settings.gemini_api_key, settings.gemini_api_secret
    return (
        key.get_secret_value() if key else "",
        secret.get_secret_value() if secret else "",
    )
