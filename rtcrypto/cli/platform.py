"""``rtc up|down|status``: the whole embedded platform on one machine, without Docker.

``up`` starts Kafka, Elasticsearch and Airflow, prepares, then starts the streaming services of
the registry (``rtcrypto/supervision/registry.py``: the exchange simulator (offline default;
``RTC_FEED=live`` reads Gemini's public feed instead), the ingest, the Spark liquidity job and the
trader) as managed background processes, and follows ``liquidity.minute.v1`` so the user sees
records as they arrive. ``status`` adds each service's health as the supervisor judges it (state,
heartbeat age, lag, restarts from the journal, pid). The work is :mod:`rtcrypto.platform`; this
module parses flags and prints.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import typer

from rtcrypto.cli.stack import TOPOLOGY_OPTION, settings_for
from rtcrypto.config import Settings
from rtcrypto.config_cluster import Topology
from rtcrypto.platform import status as platform_status
from rtcrypto.platform.prepare import expected_errors
from rtcrypto.platform.summary import summary
from rtcrypto.platform.up import UpOptions, up
from rtcrypto.stack import lifecycle
from rtcrypto.stack.errors import StackError


class StepPrinter:
    """Prints progress lines; on a terminal a step shows ``label ...`` while it runs and its
    result line then replaces it."""

    def __init__(self) -> None:
        self.interactive = sys.stdout.isatty()
        self.pending = False

    def step_started(self, label: str) -> None:
        if self.interactive:
            typer.echo(f"{label:<9} ...", nl=False)
            self.pending = True

    def __call__(self, line: str) -> None:
        typer.echo(f"{chr(13) if self.pending else ''}{line}")
        self.pending = False


def fail(error: Exception, *, blank_line_first: bool = False) -> NoReturn:
    """One red line on stderr and exit code 1, no traceback."""
    typer.secho(
        f"{chr(10) if blank_line_first else ''}error: {error}", fg=typer.colors.RED, err=True
    )
    raise typer.Exit(code=1) from None


def register(app: typer.Typer) -> None:
    @app.command("up")
    def up_command(
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
        chosen_topology: Topology | None = TOPOLOGY_OPTION,
    ) -> None:
        """The whole platform: Kafka, Elasticsearch, Airflow, history, forecast, indices, then the
        simulator, ingest, Spark liquidity job and paper trader under the supervisor."""
        settings = settings_for(chosen_topology)
        printer = StepPrinter()
        try:
            up(settings, UpOptions(prepare=prepare), printer, printer.step_started)
        except expected_errors() as error:
            fail(error)
        print_summary(settings)
        if follow:
            follow_liquidity(settings, until_idle)

    @app.command("down")
    def down(
        timeout_s: float = typer.Option(30.0, "--timeout", help="Seconds before SIGKILL.", min=0),
    ) -> None:
        """Stop everything `rtc up` started, services first and Kafka last."""
        try:
            lifecycle.stop_stack(settings_for(None), timeout_s, typer.echo)
        except StackError as error:
            fail(error)

    @app.command("status")
    def status() -> None:
        """Each managed process, each streaming service's health (state, heartbeat age, lag,
        restarts, pid) and each service's last heartbeat."""
        for line in platform_status.status_lines(settings_for(None)):
            typer.echo(line)


def print_summary(settings: Settings) -> None:
    """Where everything is and how to stop it."""
    typer.echo(summary(settings))


def follow_liquidity(settings: Settings, until_idle_s: float) -> None:
    """Print liquidity records as they arrive until Ctrl-C (or ``until_idle_s`` idle seconds)."""
    typer.echo(f"following {settings.topics.liquidity} (Ctrl-C stops following, not the platform)")
    from rtcrypto.cli.liquidity import tail_records

    try:
        tail_records(
            bootstrap=settings.kafka_bootstrap,
            topic=settings.topics.liquidity,
            from_beginning=False,
            until_idle_s=until_idle_s or None,
        )
    except KeyboardInterrupt:
        typer.echo("\nstopped following; the platform keeps running (`rtc down` stops it)")


def show_services(settings: Settings, heartbeats: dict[str, dict[str, Any]] | None) -> None:
    """Per streaming service: the supervisor's verdict, heartbeat age, lag, restarts and pid."""
    for line in platform_status.service_lines(settings, heartbeats):
        typer.echo(line)
