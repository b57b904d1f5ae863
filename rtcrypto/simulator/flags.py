"""The simulator's command-line flags, defined once: name, type, default, bounds and help.

:class:`SimulateFlags` is what ``rtc simulate`` and ``python -m streaming.simulator`` parse (the
CLI builds its options from :func:`flag_specs`); :func:`simulator_options` turns flags plus the
settings into the server's :class:`~rtcrypto.simulator.server.SimulatorOptions`, checking a
history replay's source, range and calibration before anything binds a port.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rtcrypto.config import Settings
    from rtcrypto.simulator.history_replay import HistoryReplay
    from rtcrypto.simulator.server import SimulatorOptions


@dataclass(frozen=True)
class FlagSpec:
    """How one field of :class:`SimulateFlags` appears on the command line."""

    name: str  # the field
    declarations: tuple[str, ...]  # "--port", or "--on/--off" for a switch with two names
    help: str
    type: Any  # the field's type (tuple[X, ...] for a repeatable flag)
    default: Any
    min: float | None = None  # inclusive bounds of a number
    max: float | None = None


def _flag(default: Any, *declarations: str, help: str, **bounds: float) -> Any:
    """A dataclass field carrying its command-line spelling, help and bounds as metadata."""
    return field(default=default, metadata={"declarations": declarations, "help": help, **bounds})


@dataclass(frozen=True)
class SimulateFlags:
    """The raw flags of ``rtc simulate`` (and ``python -m streaming.simulator``); None = the
    setting named in the help."""

    capture: tuple[Path, ...] = _flag(
        (),
        "--capture",
        help="Capture file (cryptofeed text format, gzip or plain); repeat to merge "
        "files. Default: RTC_SIMULATOR_CAPTURE (the Gemini v2 capture).",
    )
    history: str | None = _flag(
        None,
        "--history",
        help="Replay the minute bars of this imported history source (`rtc history info`) "
        "instead of a capture: real prices, modelled book. Needs --start and --end.",
    )
    start: str | None = _flag(
        None, "--start", help="History replay: first minute, ISO-8601 UTC (2024-10-28)."
    )
    end: str | None = _flag(
        None, "--end", help="History replay: end, exclusive, ISO-8601 UTC (2024-10-29)."
    )
    seed: int | None = _flag(
        None,
        "--seed",
        help="History replay: the modelled book's seed. Default: RTC_SIMULATOR_SEED.",
        min=0,
        max=2**32 - 1,
    )
    calibration: Path | None = _flag(
        None,
        "--calibration",
        help="History replay: calibration file of the modelled book. "
        "Default: RTC_SIMULATOR_CALIBRATION (the packaged one).",
    )
    resume_file: Path | None = _flag(
        None,
        "--resume-file",
        help="History replay: record each replayed minute here and resume after it on a "
        "restart with the same --history/--start/--end/--seed.",
    )
    history_dir: Path | None = _flag(
        None, "--history-dir", help="History folder. Default: RTC_HISTORY_DIR."
    )
    speed: float | None = _flag(
        None,
        "--speed",
        help="Replay speed x wall clock; 0 = as fast as clients read. "
        "Default: RTC_SIMULATOR_SPEED.",
        min=0,
        max=100_000,
    )
    loop: bool = _flag(False, "--loop", help="Replay again when the capture ends.")
    host: str | None = _flag(None, "--host", help="Bind address. Default: RTC_SIMULATOR_HOST.")
    port: int | None = _flag(
        None,
        "--port",
        help="Port (0 = any free). Default: RTC_SIMULATOR_PORT.",
        min=0,
        max=65535,
    )
    heartbeat_interval_s: float = _flag(
        1.0, "--heartbeat-interval", help="Wall seconds between heartbeats.", min=0.1, max=3600
    )
    drop_after: int | None = _flag(
        None,
        "--drop-after",
        help="Fault: close each connection after N messages (fires once).",
        min=1,
    )
    skip_sequence_at: int | None = _flag(
        None,
        "--skip-sequence-at",
        help="Fault: skip socket_sequence N once per connection.",
        min=0,
    )
    start_immediately: bool = _flag(
        False, "--start-immediately", help="Start the replay now, not at the first subscriber."
    )
    fault_endpoints: bool | None = _flag(
        None,
        "--fault-endpoints/--no-fault-endpoints",
        help="Serve POST /_sim/drop, /_sim/skip-sequence, /_sim/inject (fault injection, "
        "for tests). Default: RTC_SIMULATOR_FAULT_ENDPOINTS (off).",
    )
    symbols_file: Path | None = _flag(
        None, "--symbols-file", help="Recorded GET /v1/symbols capture served at /v1/symbols."
    )
    shift_to_now: bool = _flag(
        False,
        "--shift-to-now",
        help="Replay at today's time: move the capture's times forward by whole minutes.",
    )
    sandbox_account: tuple[str, ...] = _flag(
        (),
        "--sandbox-account",
        help="Gemini sandbox: accept private requests signed with KEY:SECRET "
        "(repeatable). Visible in `ps`: prefer --sandbox-from-settings.",
    )
    sandbox_from_settings: bool = _flag(
        False,
        "--sandbox-from-settings",
        help="Gemini sandbox: an account for RTC_GEMINI_API_KEY / RTC_GEMINI_API_SECRET.",
    )
    sandbox_usd: str = _flag("10000", "--sandbox-usd", help="Starting USD of each sandbox account.")
    sandbox_btc: str = _flag("0", "--sandbox-btc", help="Starting BTC of each sandbox account.")
    sandbox_fee_pct: str | None = _flag(
        None,
        "--sandbox-fee-pct",
        help="Fee of sandbox fills, percent. Default: RTC_TAKER_FEE_PCT (the ledger's fee).",
    )
    sandbox_require_heartbeat: bool = _flag(
        False,
        "--sandbox-require-heartbeat",
        help="Gemini sandbox: the accounts are 'Requires Heartbeat' sessions; their live orders "
        "are cancelled after RTC_SIMULATOR_HEARTBEAT_TIMEOUT_S (30 s) without a private request.",
    )


def flag_specs() -> list[FlagSpec]:
    """Every flag of :class:`SimulateFlags`, in declaration order (the order ``--help`` shows)."""
    types = typing.get_type_hints(SimulateFlags)
    return [
        FlagSpec(
            name=item.name,
            declarations=item.metadata["declarations"],
            help=item.metadata["help"],
            type=types[item.name],
            default=item.default,
            min=item.metadata.get("min"),
            max=item.metadata.get("max"),
        )
        for item in fields(SimulateFlags)
    ]


def simulator_options(flags: SimulateFlags, settings: Settings) -> SimulatorOptions:
    """The one place flags and settings become :class:`SimulatorOptions`; a history replay's
    source, range and calibration are checked here, before anything binds a port. Bad input
    raises ``ValueError`` (or ``ArithmeticError``) with a message naming the flag."""
    from rtcrypto.simulator.sandbox import sandbox_accounts_from_flags
    from rtcrypto.simulator.server import SimulatorOptions

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
            requires_heartbeat=flags.sandbox_require_heartbeat,
        ),
        sandbox_fee_pct=(
            settings.taker_fee_pct
            if flags.sandbox_fee_pct is None
            else Decimal(flags.sandbox_fee_pct)
        ),
        sandbox_heartbeat_timeout_s=settings.simulator_heartbeat_timeout_s,
        sandbox_private_rate_per_min=settings.simulator_private_rate_per_min,
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
        history_dir=flags.history_dir or settings.history_path,
        resume_file=flags.resume_file,
        symbol=settings.trader_symbol.upper(),
    )
    load_calibration(spec.calibration_path)  # fail now, naming the file, not after binding
    load_replay_bars(spec)
    return spec


def _settings_credentials(settings: Settings, wanted: bool) -> tuple[str | None, str | None]:
    """The settings' Gemini key and secret as text when ``--sandbox-from-settings`` (else None)."""
    if not wanted:
        return None, None
    key, secret = settings.gemini_api_key, settings.gemini_api_secret
    return (
        key.get_secret_value() if key else "",
        secret.get_secret_value() if secret else "",
    )
