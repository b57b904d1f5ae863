"""rtc simulate: the exchange simulator (Gemini market data replayed from a recorded capture)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rtcrypto.config import Settings


def register(app: typer.Typer) -> None:
    """Add ``rtc simulate`` to the command line."""

    @app.command("simulate")
    def simulate(
        capture: Annotated[
            list[Path] | None,
            typer.Option(
                "--capture",
                help="Capture file (cryptofeed text format, gzip or plain); repeat to merge "
                "files. Default: RTC_SIMULATOR_CAPTURE (the Gemini v2 capture).",
            ),
        ] = None,
        speed: Annotated[
            float | None,
            typer.Option(
                help="Replay speed x wall clock; 0 = as fast as clients read. "
                "Default: RTC_SIMULATOR_SPEED."
            ),
        ] = None,
        loop: Annotated[
            bool, typer.Option("--loop", help="Replay again when the capture ends.")
        ] = False,
        host: Annotated[
            str | None, typer.Option(help="Bind address. Default: RTC_SIMULATOR_HOST.")
        ] = None,
        port: Annotated[
            int | None, typer.Option(help="Port (0 = any free). Default: RTC_SIMULATOR_PORT.")
        ] = None,
        heartbeat_interval: Annotated[
            float, typer.Option("--heartbeat-interval", help="Wall seconds between heartbeats.")
        ] = 1.0,
        drop_after: Annotated[
            int | None,
            typer.Option(
                "--drop-after", help="Fault: close each connection after N messages (fires once)."
            ),
        ] = None,
        skip_sequence_at: Annotated[
            int | None,
            typer.Option(
                "--skip-sequence-at", help="Fault: skip socket_sequence N once per connection."
            ),
        ] = None,
        start_immediately: Annotated[
            bool,
            typer.Option(
                "--start-immediately", help="Start the replay now, not at the first subscriber."
            ),
        ] = False,
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
        """Serve Gemini market data v1/v2 and REST from a recorded capture until Ctrl-C or SIGTERM."""
        from rtcrypto.captures import CaptureError
        from rtcrypto.config import get_settings
        from rtcrypto.logs import setup_logging
        from rtcrypto.simulator import SimulatorOptions, run
        from rtcrypto.simulator.sandbox import sandbox_accounts_from_flags

        setup_logging("simulator")
        settings = get_settings()
        try:
            options = SimulatorOptions(
                capture_paths=tuple(capture or [settings.simulator_capture]),
                host=host or settings.simulator_host,
                port=settings.simulator_port if port is None else port,
                speed=settings.simulator_speed if speed is None else speed,
                loop=loop,
                heartbeat_interval_s=heartbeat_interval,
                drop_after=drop_after,
                skip_sequence_at=skip_sequence_at,
                start_immediately=start_immediately,
                symbols_file=symbols_file,
                shift_to_now=shift_to_now,
                sandbox_accounts=sandbox_accounts_from_flags(
                    sandbox_account or [],
                    Decimal(sandbox_usd),
                    Decimal(sandbox_btc),
                    *_settings_credentials(settings, sandbox_from_settings),
                ),
                sandbox_fee_pct=Decimal(sandbox_fee_pct),
            )
            run(options)
        except (CaptureError, ValueError, ArithmeticError) as error:
            typer.echo(f"rtc simulate: {error}", err=True)
            raise typer.Exit(2) from error


def _settings_credentials(settings: Settings, wanted: bool) -> tuple[str | None, str | None]:
    """The settings' Gemini key and secret as text when ``--sandbox-from-settings`` (else None)."""
    if not wanted:
        return None, None
    key, secret = settings.gemini_api_key, settings.gemini_api_secret
    return (
        key.get_secret_value() if key else "",
        secret.get_secret_value() if secret else "",
    )
