"""rtc simulate: the exchange simulator (Gemini market data replayed from a recorded capture)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


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
    ) -> None:
        """Serve Gemini market data v1/v2 and REST from a recorded capture until Ctrl-C or SIGTERM."""
        from rtcrypto.captures import CaptureError
        from rtcrypto.config import get_settings
        from rtcrypto.logs import setup_logging
        from rtcrypto.simulator import SimulatorOptions, run

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
            )
            run(options)
        except (CaptureError, ValueError) as error:
            typer.echo(f"rtc simulate: {error}", err=True)
            raise typer.Exit(2) from error
