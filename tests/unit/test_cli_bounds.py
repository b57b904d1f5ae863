"""CLI arguments are bounded: nonsense exits 2 with a message naming the flag (issue 10)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rtcrypto.cli.main import app
from rtcrypto.config import FORECAST_HORIZON_MAX_MINUTES

BAD: list[tuple[list[str], str]] = [
    (["simulate", "--port", "70000"], "--port"),
    (["simulate", "--port", "-1"], "--port"),
    (["simulate", "--speed", "-1"], "--speed"),
    (["simulate", "--heartbeat-interval", "-1"], "--heartbeat-interval"),
    (["simulate", "--heartbeat-interval", "0"], "--heartbeat-interval"),
    (["simulate", "--seed", "-3"], "--seed"),
    (["simulate", "--drop-after", "0"], "--drop-after"),
    (["trader", "--symbol", "../X"], "--symbol"),
    (["trader", "--mode", "yolo"], "--mode"),
    (["forecast", "train", "--minutes", "0"], "--minutes"),
    (["forecast", "train", "--minutes", str(FORECAST_HORIZON_MAX_MINUTES + 1)], "--minutes"),
    (["forecast", "train", "--source", "../x"], "--source"),
    (["forecast", "publish", "--fee", "-1"], "--fee"),
    (["forecast", "publish", "--fee", "NaN"], "--fee"),
    (["forecast", "backtest", "--holdout-days", "0"], "--holdout-days"),
    (["history", "import", "--source", "../x", "/dev/null"], "--source"),
    (["liquidity", "tail", "--until-idle", "-1"], "--until-idle"),
    (["liquidity", "run", "--max-offsets-per-trigger", "0"], "--max-offsets-per-trigger"),
    (["down", "--timeout", "-5"], "--timeout"),
    (["stack", "up", "--timeout", "0"], "--timeout"),
    (["up", "--until-idle", "-1"], "--until-idle"),
]


@pytest.mark.parametrize(("args", "flag"), BAD, ids=[" ".join(args) for args, _ in BAD])
def test_bad_argument_exits_2_naming_the_flag(args: list[str], flag: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{flag}'" in result.output, result.output
