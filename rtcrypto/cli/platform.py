"""``rtc up|down|status``: the whole embedded platform on one machine, without Docker.

``up`` starts Kafka (``rtc stack up``), then the streaming services of the registry
(``rtcrypto/supervision/services.py``: the exchange simulator (offline default; ``RTC_FEED=live`` reads
Gemini's public feed instead), the ingest, the Spark liquidity job and the trader) as managed
background processes, and follows ``liquidity.minute.v1`` so the user sees records as they arrive.
``status`` adds each service's health as the supervisor judges it (state, heartbeat age, lag,
restarts from the journal, pid).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from rtcrypto.cli import stack as stack_cli
from rtcrypto.config import Feed, Settings, SimulatorReplay, get_settings
from rtcrypto.kaggle_credentials import history_download_schedule_note
from rtcrypto.platform import bootstrap
from rtcrypto.platform.bootstrap import BootstrapError
from rtcrypto.redact import redact_url
from rtcrypto.spark import ui as spark_ui
from rtcrypto.stack import process
from rtcrypto.stack.errors import StackError
from rtcrypto.supervision import services


def _start(spec: services.ServiceSpec, settings: Settings) -> None:
    name = spec.name
    if process.is_running(name, settings):
        typer.echo(f"{name:<9} already running (pid {process.read_pid(name, settings)})")
        return
    pid = services.start_service(spec, settings)
    typer.echo(f"{name:<9} started (pid {pid}), log {process.log_path(name, settings)}")


def start_services(settings: Settings) -> None:
    """Every enabled service of the registry (``rtcrypto/supervision/services.py``), in order, each once.

    The same start path as Airflow's ``streaming_start`` DAG and the supervisor's restarts.
    """
    for spec in services.SERVICES:
        if not spec.enabled(settings):
            label = "feed" if spec.name == services.SIMULATOR else spec.name
            typer.echo(f"{label:<9} {spec.disabled_reason(settings)}")
            continue
        _start(spec, settings)


def _step(label: str, action: Callable[[], str]) -> None:
    """Run one preparation step, showing what it is doing and how long it took."""
    interactive = sys.stdout.isatty()
    if interactive:
        typer.echo(f"{label:<9} ...", nl=False)
    started = time.monotonic()
    what = action()
    typer.echo(
        f"{chr(13) if interactive else ''}{label:<9} {what} ({time.monotonic() - started:.1f} s)"
    )


def prepare_platform(settings: Settings) -> None:
    """History, forecast and indices, each idempotent (``rtcrypto/platform/bootstrap.py``)."""
    files = bootstrap.shared_minute_files()

    def history() -> str:
        reports = bootstrap.import_history(settings, files)
        new = [r for r in reports if not r.already_imported]
        rows = sum(r.rows_kept for r in new)
        return (
            f"{len(files)} real minute files ({len(new)} imported now, {rows:,} minutes; "
            f"{len(files) - len(new)} already there)"
        )

    def forecast() -> str:
        version, published, what = bootstrap.ensure_forecast(settings)
        return f"{version} {'published' if published else ''} {what}".replace("  ", " ")

    _step("history", history)
    _step("forecast", forecast)
    _step("indices", lambda: bootstrap.ensure_indices(settings))


def print_summary(settings: Settings) -> None:
    """Where everything is and how to stop it."""
    from rtcrypto.stack import airflow

    paths = airflow.airflow_paths(settings)
    typer.echo(
        "\nThe platform is running (paper trading against the "
        f"{'simulator' if settings.feed.value == 'simulator' else 'live Gemini feed'}).\n"
        f"  market         {describe_feed(settings)}\n"
        f"  Airflow UI     {settings.airflow_url}  user admin, password in {paths.password_file}\n"
        f"                 (ready about a minute after start; streaming_supervisor runs every "
        "5 minutes)\n"
        f"  Elasticsearch  {redact_url(settings.search_url)}  indices {settings.search_index_prefix}-*\n"
        "  status         rtc status (every service: state, heartbeat, lag, restarts)\n"
        "  trades         rtc report --since 1h (HTML + PNG; wall time, x the replay's speed), or "
        "Kibana with docker-compose\n"
        "  stop           rtc down (or make down): stops every process it started\n"
        "Spark needs ~20 s to start; the first minute window closes about a minute after the "
        "replay starts."
    )


def describe_feed(settings: Settings) -> str:
    """One line: what the simulator replays, on which clock and at what speed."""
    if settings.feed is not Feed.simulator:
        return f"live Gemini market data from {redact_url(settings.market_data_ws_url)}"
    if settings.simulator_replay is SimulatorReplay.capture:
        return (
            f"the recorded capture {settings.simulator_capture.name}, looped, shifted to now, "
            f"at {settings.simulator_speed:g}x"
        )
    try:
        window = bootstrap.replay_window(settings)
    except BootstrapError as error:
        return f"history replay not possible: {error}"
    return (
        f"real {window.source} minute bars {window.start:%Y-%m-%d %H:%M} .. "
        f"{window.end:%Y-%m-%d %H:%M} UTC on their own (historical) clock at "
        f"{settings.simulator_history_speed:g}x; prices real, order book modelled "
        "(RTC_SIMULATOR_REPLAY=capture replays the recorded Gemini capture instead)"
    )


def replay_progress(settings: Settings) -> str | None:
    """Where the running history replay is (from ``/_sim/status``); None if it does not answer."""
    if settings.feed is not Feed.simulator:
        return None
    from rtcrypto.market.feedclock import http_status_reader, iso_minute, status_url

    try:
        status = http_status_reader(status_url(settings), settings.feed_clock_timeout_s)()
        history = status.get("history") or {}
        now = iso_minute(int(status["simulated_time_ms"]))
    except Exception:  # noqa: BLE001 - not running, or not answering: nothing to add
        return None
    if not history:
        return f"simulator clock {now} ({status.get('mode', 'capture')} replay)"
    halts = (history.get("halts") or {}).get("count", 0)
    return (
        f"simulator clock {now}: {history.get('minutes_replayed', 0):,} of "
        f"{history.get('minutes_total', 0):,} minutes replayed, {halts} halt(s) jumped; "
        f"{status.get('prices', 'prices real')}, book {status.get('book', 'modelled')}"
    )


def register(app: typer.Typer) -> None:
    @app.command("up")
    def up(
        follow: bool = typer.Option(
            True, "--follow/--no-follow", help="Show liquidity records as they arrive."
        ),
        until_idle: float = typer.Option(
            0.0,
            "--until-idle",
            help="Stop following after this many idle seconds (0 = Ctrl-C).",
            min=0,
        ),
        prepare: bool = typer.Option(
            True,
            "--prepare/--no-prepare",
            help="Import the shared history, publish a forecast if none is current, provision "
            "the indices (each step is a no-op when already done).",
        ),
    ) -> None:
        """The whole platform: Kafka, Elasticsearch, Airflow, history, forecast, indices, then the
        simulator, ingest, Spark liquidity job and paper trader under the supervisor."""
        settings = get_settings()
        stack_cli.up(
            timeout_s=90.0,
            with_search=True,
            search_timeout_s=120.0,
            with_airflow=True,
            airflow_timeout_s=180.0,
            airflow_wait=False,  # in the background: the streaming services come first
        )
        try:
            if prepare:
                prepare_platform(settings)
            start_services(settings)
        except (StackError, BootstrapError) as error:
            typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=1) from None
        print_summary(settings)
        if not follow:
            return
        typer.echo(
            f"following {settings.topics.liquidity} (Ctrl-C stops following, not the platform)"
        )
        from rtcrypto.cli.liquidity import tail_records

        try:
            tail_records(
                bootstrap=settings.kafka_bootstrap,
                topic=settings.topics.liquidity,
                from_beginning=False,
                until_idle_s=until_idle or None,
            )
        except KeyboardInterrupt:
            typer.echo("\nstopped following; the platform keeps running (`rtc down` stops it)")

    @app.command("down")
    def down(
        timeout_s: float = typer.Option(30.0, "--timeout", help="Seconds before SIGKILL.", min=0),
    ) -> None:
        """Stop everything `rtc up` started, services first and Kafka last."""
        stack_cli.down(timeout_s=timeout_s)

    @app.command("status")
    def status() -> None:
        """Each managed process, each streaming service's health (state, heartbeat age, lag,
        restarts, pid) and each service's last heartbeat."""
        settings = get_settings()
        stack_cli.status()
        typer.echo(f"market: {describe_feed(settings)}")
        typer.echo(spark_ui.ui_status(settings))
        progress = replay_progress(settings)
        if progress:
            typer.echo(f"        {progress}")
        typer.echo(history_download_schedule_note(os.environ, Path.home()))
        latest = services.read_latest_heartbeats(settings)
        show_services(settings, latest)
        show_heartbeats(settings, latest)


def show_services(settings: Settings, heartbeats: dict[str, dict[str, Any]] | None) -> None:
    """Per streaming service: the supervisor's verdict, heartbeat age, lag, restarts and pid."""
    admin = services.kafka_admin(settings) if heartbeats is not None else None
    restarts = services.restart_counts(services.read_journal(settings))
    typer.echo(
        f"services (the supervisor's view; restarts from {services.journal_path(settings)}):"
    )
    typer.echo(
        f"  {'NAME':<10} {'STATE':<8} {'HEARTBEAT':<10} {'LAG':<22} {'RESTARTS':>8} {'PID':>8}  REASON"
    )
    for spec in services.SERVICES:
        if not spec.enabled(settings):
            typer.echo(
                f"  {spec.name:<10} {'-':<8} {'-':<10} {'-':<22} {'-':>8} {'-':>8}  "
                f"{spec.disabled_reason(settings)}"
            )
            continue
        health = services.judge_health(
            services.observe(spec, settings, heartbeats=heartbeats, admin=admin),
            services.health_policy(spec, settings),
        )
        row = services.describe_health(health)
        typer.echo(
            f"  {spec.name:<10} {row['state']:<8} {row['heartbeat']:<10} {row['lag']:<22} "
            f"{restarts.get(spec.name, 0):>8} {row['pid']:>8}  {row['reason']}"
        )


def show_heartbeats(settings: Settings, latest: dict[str, dict[str, Any]] | None = None) -> None:
    """The newest heartbeat of each service on ``service.heartbeat.v1``, if Kafka answers.

    ``latest`` is what :func:`rtcrypto.supervision.services.read_latest_heartbeats` returned (read here when
    not given; None means Kafka does not answer).
    """
    from rtcrypto.supervision.heartbeats import describe

    if latest is None:
        latest = services.read_latest_heartbeats(settings)
    if latest is None:
        typer.echo(f"heartbeats: Kafka at {settings.kafka_bootstrap} does not answer")
        return
    if not latest:
        typer.echo(f"heartbeats: none on {settings.topics.heartbeat} yet")
        return
    now_ms = time.time_ns() // 1_000_000
    typer.echo(f"heartbeats ({settings.topics.heartbeat}):")
    for service, beat in sorted(latest.items()):
        typer.echo(f"  {service:<16} {describe(beat, now_ms)}")
