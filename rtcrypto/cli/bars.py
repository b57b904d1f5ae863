"""``rtc bars run``: the Spark job that records the feed's own minute bars (foreground).

In the platform it runs as the service ``bars`` (``rtc up``, the supervisor, docker-compose);
this command is that service's foreground form (docker-compose's command) and a manual run.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from rtcrypto.config import get_settings
from rtcrypto.logs import setup_logging

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def _configure() -> None:
    """The Spark minute-bar job (trades -> history source gemini-feed)."""
    setup_logging("rtc.bars", level=get_settings().log_level or "WARNING")


@app.command()
def run(
    checkpoint: Annotated[
        Path | None, typer.Option(help="Checkpoint root (default: <run_dir>/checkpoints/bars).")
    ] = None,
    history_dir: Annotated[
        Path | None,
        typer.Option(help="History store (default: RTC_HISTORY_DIR or <home>/history)."),
    ] = None,
    starting_offsets: Annotated[
        str | None, typer.Option(help="earliest | latest | JSON; only for a new checkpoint.")
    ] = None,
    trigger: Annotated[
        str | None, typer.Option(help="Micro-batch interval ('10 seconds').")
    ] = None,
    watermark: Annotated[str | None, typer.Option(help="Allowed lateness ('30 seconds').")] = None,
    master: Annotated[str | None, typer.Option(help="Spark master (default: local[1]).")] = None,
    jars_dir: Annotated[
        Path | None,
        typer.Option(help="Folder with the spark-sql-kafka jars (default: the stack's)."),
    ] = None,
) -> None:
    """Run the bars job with spark-submit in the foreground (Ctrl-C stops it cleanly)."""
    from rtcrypto.feedbars import options
    from rtcrypto.spark import submit as spark

    settings = get_settings()
    job = options.BarsJobOptions.from_settings(settings).with_overrides(
        checkpoint=checkpoint,
        history_dir=history_dir,
        starting_offsets=starting_offsets,
        trigger=trigger,
        watermark=watermark,
        master=master,
    )
    try:
        command = options.submit_command(job, spark.kafka_connector_jars(settings, jars_dir))
    except Exception as error:  # SparkSetupError, StackError: one actionable line
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
    process = spark.start_job(command)
    stop_requested: list[int] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop_requested.append(signum)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    while process.poll() is None:
        if stop_requested:
            typer.echo("stopping the bars job (the running batch finishes) ...", err=True)
            raise typer.Exit(code=spark.stop_job(process))
        time.sleep(0.2)
    raise typer.Exit(code=process.returncode)
