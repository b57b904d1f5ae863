"""``rtcrypto.platform`` and ``rtcrypto.stack.lifecycle``: what ``rtc up|prepare|down|status`` do,
as functions reporting each step to a progress callback (the CLI only prints the lines)."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from rtcrypto import supervision as services
from rtcrypto.cli.platform import StepPrinter
from rtcrypto.config import Feed, Settings
from rtcrypto.platform import prepare as platform_prepare
from rtcrypto.platform import up as platform_up
from rtcrypto.platform.summary import describe_feed, summary
from rtcrypto.stack import lifecycle, process
from rtcrypto.stack.errors import StackError


@pytest.fixture
def home_settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "rtc")


def _sleeper(name: str, settings: Settings) -> int:
    """A harmless managed process under ``name`` (the process manager does not care what runs)."""
    command = [sys.executable, "-c", "import time; time.sleep(120)"]
    return process.start_process(name, command, settings=settings)


def test_prepare_reports_each_step_in_order_with_its_duration(
    home_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(platform_prepare.bootstrap, "shared_minute_files", lambda: [])
    monkeypatch.setattr(platform_prepare.bootstrap, "import_history", lambda s, files: [])
    monkeypatch.setattr(
        platform_prepare.bootstrap, "ensure_forecast", lambda s: ("v7", False, "already current")
    )
    monkeypatch.setattr(platform_prepare.bootstrap, "ensure_indices", lambda s: "templates: ok")
    events: list[str] = []
    platform_prepare.prepare(home_settings, events.append, lambda label: events.append(label))
    assert events[0::2] == ["history", "forecast", "indices"]
    lines = events[1::2]
    assert re.fullmatch(
        r"history   0 real minute files \(0 imported now.*\) \(\d+\.\d s\)", lines[0]
    )
    assert re.fullmatch(r"forecast  v7 already current \(\d+\.\d s\)", lines[1])
    assert re.fullmatch(r"indices   templates: ok \(\d+\.\d s\)", lines[2])


@pytest.mark.parametrize("prepare", [True, False])
def test_up_starts_the_stack_in_the_background_then_prepares_then_the_services(
    home_settings: Settings, monkeypatch: pytest.MonkeyPatch, prepare: bool
) -> None:
    calls: list[str] = []

    def start_stack(settings: Settings, options: lifecycle.StackOptions, progress: object) -> None:
        assert options.airflow_wait is False and options.with_search and options.with_airflow
        calls.append("stack")

    monkeypatch.setattr(platform_up.lifecycle, "start_stack", start_stack)
    monkeypatch.setattr(platform_up, "prepare", lambda *args: calls.append("prepare"))
    monkeypatch.setattr(platform_up, "start_services", lambda *args: calls.append("services"))
    platform_up.up(home_settings, platform_up.UpOptions(prepare=prepare), print)
    assert calls == (["stack", "prepare", "services"] if prepare else ["stack", "services"])


def test_start_services_leaves_running_ones_and_names_the_disabled_feed(
    home_settings: Settings,
) -> None:
    settings = home_settings.model_copy(update={"feed": Feed.live})
    enabled = [spec.name for spec in services.SERVICES if spec.enabled(settings)]
    pids = {name: _sleeper(name, settings) for name in enabled}
    lines: list[str] = []
    try:
        platform_up.start_services(settings, lines.append)
    finally:
        for name in enabled:
            process.stop_process(name, timeout_s=5, settings=settings)
    assert [line for line in lines if "already running" in line] == [
        f"{name:<9} already running (pid {pids[name]})" for name in enabled
    ]
    assert any(line.startswith("feed ") for line in lines), lines  # the simulator is off


def test_stack_status_and_stop_report_each_managed_process(home_settings: Settings) -> None:
    assert lifecycle.stack_status(home_settings) == [
        f"no managed processes (no pid files in {home_settings.run_dir})"
    ]
    pid = _sleeper("sleeper", home_settings)
    status = lifecycle.stack_status(home_settings)
    assert status[0].split() == ["NAME", "PID", "RUNNING", "PORTS", "UPTIME", "LOG"]
    assert status[1].split()[:3] == ["sleeper", str(pid), "yes"]
    stopped: list[str] = []
    lifecycle.stop_stack(home_settings, 5.0, stopped.append)
    assert stopped == [f"stopped   sleeper (pid {pid})"]
    assert not process.is_running("sleeper", home_settings)
    nothing: list[str] = []
    lifecycle.stop_stack(home_settings, 5.0, nothing.append)
    assert nothing == ["nothing to stop"]


def test_down_stops_airflow_first_and_refuses_restarts_until_the_next_start(
    home_settings: Settings,
) -> None:
    """CI once saw the supervisor restart `bars` while `rtc down` was stopping it: Airflow now
    stops first, and a supervisor task still in flight finds the stopping marker."""
    trader = _sleeper("trader", home_settings)
    flow = _sleeper("airflow", home_settings)
    kafka = _sleeper("kafka", home_settings)
    stopped: list[str] = []
    lifecycle.stop_stack(home_settings, 5.0, stopped.append)
    assert stopped == [
        f"stopped   airflow (pid {flow})",
        f"stopped   trader (pid {trader})",
        f"stopped   kafka (pid {kafka})",
    ]
    assert process.stopping_marker(home_settings).is_file()
    with pytest.raises(StackError, match="not restarting trader: the platform is being stopped"):
        services.restart_service("trader", "dead", home_settings)
    assert not process.is_running("trader", home_settings)


def test_summary_names_every_place_and_describes_the_live_feed(home_settings: Settings) -> None:
    settings = home_settings.model_copy(update={"feed": Feed.live})
    text = summary(settings)
    assert "live Gemini feed" in text and describe_feed(settings) in text
    assert settings.airflow_url in text and "rtc down" in text


def test_step_printer_replaces_the_pending_step_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for terminal, expected in (
        (True, "history   ...\rhistory   done\n"),
        (False, "history   done\n"),
    ):
        out = Terminal() if terminal else io.StringIO()
        monkeypatch.setattr(sys, "stdout", out)
        printer = StepPrinter()
        printer.step_started("history")
        printer("history   done")
        assert out.getvalue() == expected


def test_sandbox_mode_pointed_at_the_simulator_gives_its_sandbox_the_settings_keys(
    tmp_path: Path,
) -> None:
    """``RTC_TRADING_MODE=sandbox`` with ``RTC_GEMINI_REST_URL`` at the local simulator: ``rtc up``
    starts the simulator with ``--sandbox-from-settings`` (the keys stay in the environment, never
    on the command line); any other mode or URL starts it without a sandbox account."""
    capture = tmp_path / "capture.gz"
    capture.write_bytes(b"")
    base = {"home": tmp_path / "rtc", "simulator_replay": "capture", "simulator_capture": capture}
    spec = services.get_service(services.SIMULATOR)

    def command(**overrides: object) -> tuple[str, ...]:
        return tuple(spec.build_command(Settings(**{**base, **overrides})).command)  # type: ignore[arg-type]

    pointed = command(
        trading_mode="sandbox",
        gemini_rest_url="http://127.0.0.1:18765",
        simulator_port=18765,
        gemini_api_key="key-1",
        gemini_api_secret="secret-1",
    )
    assert "--sandbox-from-settings" in pointed
    assert not any("secret-1" in part or "key-1" in part for part in pointed)
    assert "--sandbox-from-settings" not in command(trading_mode="paper")
    assert "--sandbox-from-settings" not in command(trading_mode="sandbox")  # Gemini's sandbox
    assert "--sandbox-from-settings" not in command(
        trading_mode="sandbox", gemini_rest_url="http://127.0.0.1:9999", simulator_port=18765
    )


def test_summary_says_where_the_orders_go(home_settings: Settings) -> None:
    """The first line of ``rtc up``'s summary names the trading mode and venue, never "paper"
    when the gemini adapter trades (and never a key)."""
    assert "(paper trading against the simulator)" in summary(home_settings)
    on_simulator = Settings(
        home=home_settings.home,
        trading_mode="sandbox",
        gemini_rest_url=f"http://127.0.0.1:{home_settings.simulator_port}",
        gemini_api_key="key-2",
        gemini_api_secret="secret-2",
    )
    text = summary(on_simulator)
    assert "(sandbox trading on the simulator's sandbox (gemini adapter))" in text
    assert "secret-2" not in text and "paper" not in text.splitlines()[1]
    remote = Settings(home=home_settings.home, trading_mode="sandbox")
    assert "sandbox trading on https://api.sandbox.gemini.com (gemini adapter)" in summary(remote)
