"""The simulator's flags are defined once (``rtcrypto.simulator.flags.SimulateFlags``): ``rtc
simulate`` and ``python -m streaming.simulator`` take exactly those options, with their defaults
and bounds, and hand the parsed values over as one ``SimulateFlags``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from rtcrypto.cli import market
from rtcrypto.simulator.flags import SimulateFlags, flag_specs
from streaming.simulator import main as streaming_main


def _options() -> dict[str, Any]:
    """The options of the built command by name (Typer's own parameter objects)."""
    command = typer.main.get_command(market.simulate_app)
    return {str(param.name): param for param in command.params}


def test_every_flag_is_an_option_with_its_spelling_default_and_bounds() -> None:
    options = _options()
    specs = flag_specs()
    assert [spec.name for spec in specs] == [f.name for f in dataclasses.fields(SimulateFlags)]
    assert list(options) == [spec.name for spec in specs]
    for spec in specs:
        option = options[spec.name]
        assert "/".join([*option.opts, *option.secondary_opts]) == "/".join(spec.declarations)
        assert option.help == spec.help
        repeatable = isinstance(spec.default, tuple)
        assert option.multiple is repeatable
        assert option.default == (None if repeatable else spec.default)
        assert (option.min, option.max) == (spec.min, spec.max), spec.name


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[SimulateFlags]:
    """The SimulateFlags each run parsed (the simulator itself not started)."""
    seen: list[SimulateFlags] = []

    def capture(flags: SimulateFlags) -> None:
        seen.append(flags)
        raise typer.Exit(0)

    monkeypatch.setattr(market, "_options_or_exit", capture)
    return seen


def test_no_flags_parse_to_the_defaults(parsed: list[SimulateFlags]) -> None:
    result = CliRunner().invoke(market.simulate_app, [])
    assert result.exit_code == 0, result.output
    assert parsed == [SimulateFlags()]


def test_both_entry_points_parse_the_same_flags(parsed: list[SimulateFlags]) -> None:
    argv = [
        "--capture", "a.gz", "--capture", "b.gz", "--port", "0", "--speed", "2.5", "--loop",
        "--heartbeat-interval", "0.5", "--no-fault-endpoints", "--sandbox-account", "k:s",
        "--sandbox-usd", "50",
    ]  # fmt: skip
    result = CliRunner().invoke(market.simulate_app, argv)
    assert result.exit_code == 0, result.output
    assert streaming_main(argv) == 0
    expected = SimulateFlags(
        capture=(Path("a.gz"), Path("b.gz")),
        port=0,
        speed=2.5,
        loop=True,
        heartbeat_interval_s=0.5,
        fault_endpoints=False,
        sandbox_account=("k:s",),
        sandbox_usd="50",
    )
    assert parsed == [expected, expected]
