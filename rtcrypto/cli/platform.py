"""``rtc up|down|status``: the whole embedded platform on one machine, without Docker.

``up`` starts Kafka (``rtc stack up``), then the exchange simulator (offline default; ``RTC_FEED=live``
reads Gemini's public feed instead), the ingest and the Spark liquidity job as managed background
processes, and follows ``liquidity.minute.v1`` so the user sees records as they arrive.
"""

from __future__ import annotations

import sys
import time

import typer

from rtcrypto.cli import stack as stack_cli
from rtcrypto.config import Feed, Settings, get_settings
from rtcrypto.stack import process
from rtcrypto.stack.errors import StackError

SIMULATOR = "simulator"
INGEST = "ingest"
LIQUIDITY = "liquidity"


def _start(name: str, command: list[str], settings: Settings, **kwargs: object) -> None:
    if process.is_running(name, settings):
        typer.echo(f"{name:<9} already running (pid {process.read_pid(name, settings)})")
        return
    pid = process.start_process(name, command, settings=settings, **kwargs)  # type: ignore[arg-type]
    typer.echo(f"{name:<9} started (pid {pid}), log {process.log_path(name, settings)}")


def _wait_for_port(name: str, port: int, host: str, timeout_s: float, settings: Settings) -> None:
    process.wait_until_healthy(
        name,
        lambda: process.port_accepts(port, host),
        service=name,
        target=f"{host}:{port}",
        logs=[process.log_path(name, settings)],
        timeout_s=timeout_s,
        settings=settings,
        poll_s=0.2,
    )


def start_services(settings: Settings) -> None:
    """Simulator (offline feed only), ingest and the Spark job, each once."""
    python = sys.executable
    if settings.feed is Feed.simulator:
        if not settings.simulator_capture.exists():
            raise StackError(
                f"simulator capture {settings.simulator_capture} not found: set RTC_SIMULATOR_CAPTURE "
                "to a cryptofeed capture file (for example ../shared/data/orderbook/*.gz)"
            )
        command = [
            python,
            "-m",
            "streaming.simulator",
            "--capture",
            str(settings.simulator_capture),
            "--loop",
            "--shift-to-now",  # a restart never replays minutes Spark's watermark has passed
            "--speed",
            str(settings.simulator_speed),
            "--host",
            settings.simulator_host,
            "--port",
            str(settings.simulator_port),
        ]
        _start(
            SIMULATOR,
            command,
            settings,
            ports=[settings.simulator_port],
            host=settings.simulator_host,
            port_hint="set RTC_SIMULATOR_PORT to a free port",
        )
        _wait_for_port(SIMULATOR, settings.simulator_port, settings.simulator_host, 30, settings)
    else:
        typer.echo(f"feed      live: {settings.market_data_ws_url} (no simulator)")
    _start(INGEST, [python, "-m", "streaming.ingest"], settings)

    from rtcrypto import spark

    config = spark.LiquidityJobConfig.from_settings(settings)
    command = spark.build_submit_command(config, spark.kafka_connector_jars(settings))
    _start(LIQUIDITY, command, settings, env=spark.env_additions())


def register(app: typer.Typer) -> None:
    @app.command("up")
    def up(
        follow: bool = typer.Option(
            True, "--follow/--no-follow", help="Show liquidity records as they arrive."
        ),
        until_idle: float = typer.Option(
            0.0, "--until-idle", help="Stop following after this many idle seconds (0 = Ctrl-C)."
        ),
    ) -> None:
        """Start Kafka, the simulator, the ingest and the Spark liquidity job; show records."""
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
            start_services(settings)
        except StackError as error:
            typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=1) from None
        typer.echo(
            "running   `rtc status` shows the processes, `rtc down` (or `make down`) stops them all.\n"
            "          Spark needs ~20 s to start; the first minute window closes about a minute "
            "after the replay starts."
        )
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
        timeout_s: float = typer.Option(30.0, "--timeout", help="Seconds before SIGKILL."),
    ) -> None:
        """Stop everything `rtc up` started, services first and Kafka last."""
        stack_cli.down(timeout_s=timeout_s)

    @app.command("status")
    def status() -> None:
        """Each managed process (pid, running, ports, uptime, log) and each service's last heartbeat."""
        stack_cli.status()
        show_heartbeats(get_settings())


def show_heartbeats(settings: Settings) -> None:
    """The newest heartbeat of each service on ``service.heartbeat.v1``, if Kafka answers."""
    from rtcrypto.heartbeats import describe, latest_by_service, read_recent
    from rtcrypto.stack.kafka import broker_healthy

    if not broker_healthy(settings.kafka_bootstrap, timeout_s=2.0):
        typer.echo(f"heartbeats: Kafka at {settings.kafka_bootstrap} does not answer")
        return
    latest = latest_by_service(read_recent(settings.kafka_bootstrap, settings.topics.heartbeat))
    if not latest:
        typer.echo(f"heartbeats: none on {settings.topics.heartbeat} yet")
        return
    now_ms = time.time_ns() // 1_000_000
    typer.echo(f"heartbeats ({settings.topics.heartbeat}):")
    for service, beat in sorted(latest.items()):
        typer.echo(f"  {service:<16} {describe(beat, now_ms)}")
