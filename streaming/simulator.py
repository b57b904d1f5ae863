"""``python -m streaming.simulator``: the exchange simulator as a long-running service.

Flags as ``rtc simulate``; defaults from the settings (``RTC_SIMULATOR_CAPTURE``, ``_HOST``,
``_PORT``, ``_SPEED``). SIGTERM or SIGINT closes every client connection and exits 0.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from rtcrypto.captures import CaptureError
from rtcrypto.config import get_settings
from rtcrypto.logs import setup_logging
from rtcrypto.simulator import SimulatorOptions, run
from rtcrypto.simulator.sandbox import sandbox_accounts_from_flags


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
    parser.add_argument(
        "--sandbox-account",
        action="append",
        default=[],
        metavar="KEY:SECRET",
        help="Gemini sandbox account (repeatable; visible in ps: prefer --sandbox-from-settings)",
    )
    parser.add_argument(
        "--sandbox-from-settings",
        action="store_true",
        help="a sandbox account for RTC_GEMINI_API_KEY / RTC_GEMINI_API_SECRET",
    )
    parser.add_argument("--sandbox-usd", type=Decimal, default=Decimal("10000"))
    parser.add_argument("--sandbox-btc", type=Decimal, default=Decimal("0"))
    parser.add_argument("--sandbox-fee-pct", type=Decimal, default=Decimal("0.25"))
    args = parser.parse_args(argv)
    key, secret = settings.gemini_api_key, settings.gemini_api_secret
    from_settings = (
        (key.get_secret_value() if key else "", secret.get_secret_value() if secret else "")
        if args.sandbox_from_settings
        else (None, None)
    )
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
        sandbox_accounts=sandbox_accounts_from_flags(
            args.sandbox_account, args.sandbox_usd, args.sandbox_btc, *from_settings
        ),
        sandbox_fee_pct=args.sandbox_fee_pct,
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
