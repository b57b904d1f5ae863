"""``python -m streaming.simulator``: the exchange simulator as a long-running service.

Flags as ``rtc simulate``; defaults from the settings (``RTC_SIMULATOR_CAPTURE``, ``_HOST``,
``_PORT``, ``_SPEED``). SIGTERM or SIGINT closes every client connection and exits 0.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rtcrypto.captures import CaptureError
from rtcrypto.config import get_settings
from rtcrypto.logs import setup_logging
from rtcrypto.simulator import SimulatorOptions, run


def parse_options(argv: Sequence[str] | None = None) -> SimulatorOptions:
    """Command-line flags over the settings' defaults."""
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m streaming.simulator", description=__doc__)
    parser.add_argument("--capture", type=Path, action="append", help="capture file (repeatable)")
    parser.add_argument("--speed", type=float, default=settings.simulator_speed)
    parser.add_argument("--loop", action="store_true")
    parser.add_argument("--host", default=settings.simulator_host)
    parser.add_argument("--port", type=int, default=settings.simulator_port)
    parser.add_argument("--heartbeat-interval", type=float, default=1.0)
    parser.add_argument("--drop-after", type=int)
    parser.add_argument("--skip-sequence-at", type=int)
    parser.add_argument("--start-immediately", action="store_true")
    parser.add_argument("--symbols-file", type=Path)
    parser.add_argument(
        "--shift-to-now",
        action="store_true",
        help="replay at today's time: move the capture's times forward by whole minutes",
    )
    args = parser.parse_args(argv)
    return SimulatorOptions(
        capture_paths=tuple(args.capture or [settings.simulator_capture]),
        host=args.host,
        port=args.port,
        speed=args.speed,
        loop=args.loop,
        heartbeat_interval_s=args.heartbeat_interval,
        drop_after=args.drop_after,
        skip_sequence_at=args.skip_sequence_at,
        start_immediately=args.start_immediately,
        symbols_file=args.symbols_file,
        shift_to_now=args.shift_to_now,
    )


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging("simulator")
    try:
        run(parse_options(argv))
    except (CaptureError, ValueError) as error:
        print(f"simulator: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
