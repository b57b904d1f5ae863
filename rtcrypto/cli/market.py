"""rtc simulate: the exchange simulator (Gemini market data from a recorded capture or from real
minute bars with a modelled book), and ``rtc simulate calibrate``.

``python -m streaming.simulator`` runs this same command, so both take the same flags.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from rtcrypto.simulator.flags import FlagSpec, SimulateFlags, flag_specs, simulator_options

if TYPE_CHECKING:
    from rtcrypto.simulator import SimulatorOptions

simulate_app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
    help="The exchange simulator: Gemini market data v1/v2, REST and a sandbox.",
)


def simulate(ctx: typer.Context, **values: Any) -> None:
    """Serve Gemini market data v1/v2 and REST until Ctrl-C or SIGTERM: a recorded capture
    (--capture), or real minute bars with a modelled book (--history SOURCE --start T --end T)."""
    if ctx.invoked_subcommand is not None:
        return
    from rtcrypto.logs import setup_logging
    from rtcrypto.simulator import run

    setup_logging("simulator")  # RTC_LOG_LEVEL; bad settings are reported just below
    options = _options_or_exit(_flags_from_values(values))
    try:
        run(options)
    except (ValueError, ArithmeticError) as error:  # CaptureError, CalibrationError, ...
        _fail(str(error))


def _typer_parameter(spec: FlagSpec) -> inspect.Parameter:
    """One :class:`SimulateFlags` field as a Typer option (a repeatable flag as a list)."""
    repeatable = typing.get_origin(spec.type) is tuple
    annotation = list[typing.get_args(spec.type)[0]] | None if repeatable else spec.type  # type: ignore[misc]
    option = typer.Option(*spec.declarations, help=spec.help, min=spec.min, max=spec.max)
    return inspect.Parameter(
        spec.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None if repeatable else spec.default,
        annotation=Annotated[annotation, option],
    )


def _flags_from_values(values: dict[str, Any]) -> SimulateFlags:
    """The parsed option values as :class:`SimulateFlags` (lists of repeated flags as tuples)."""
    fields: dict[str, Any] = {
        name: tuple(value or ()) if name in _REPEATABLE else value for name, value in values.items()
    }
    return SimulateFlags(**fields)


# The options of ``rtc simulate`` come from SimulateFlags, the one definition of the flags.
_REPEATABLE = {s.name for s in flag_specs() if typing.get_origin(s.type) is tuple}
simulate.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context),
        *(_typer_parameter(spec) for spec in flag_specs()),
    ]
)
simulate_app.callback()(simulate)


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
