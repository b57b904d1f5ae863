"""``python -m streaming.simulator``: the exchange simulator as a long-running service.

This is ``rtc simulate`` (the same command object, so the same flags and defaults from the
settings: ``RTC_SIMULATOR_CAPTURE``, ``_HOST``, ``_PORT``, ``_SPEED``, ``_SEED``,
``_CALIBRATION``): ``--capture FILE`` replays a recording, ``--history SOURCE --start T --end T``
real minute bars with a modelled book. Bad input exits 2 with one line on stderr; SIGTERM or SIGINT
closes every client connection and exits 0.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from rtcrypto.cli.market import simulate_app


def main(argv: Sequence[str] | None = None) -> int:
    command = typer.main.get_command(simulate_app)
    try:
        command.main(
            args=list(sys.argv[1:] if argv is None else argv),
            prog_name="python -m streaming.simulator",
            standalone_mode=True,
        )
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
