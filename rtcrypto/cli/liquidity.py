"""``rtc liquidity run|stop|tail``: the Spark liquidity job and its output topic."""

from __future__ import annotations

import os
import signal
import sys
import time
from contextlib import suppress
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from rtcrypto.config import get_settings
from rtcrypto.logs import setup_logging

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def _configure() -> None:
    """The Spark liquidity job and its output."""
    setup_logging("rtc.liquidity", level=get_settings().log_level or "WARNING")


@app.command()
def run(
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap (default: settings).")
    ] = None,
    input_topic: Annotated[str | None, typer.Option(help="Order-book topic to read.")] = None,
    output_topic: Annotated[str | None, typer.Option(help="Topic for the windows.")] = None,
    deadletter_topic: Annotated[
        str | None, typer.Option(help="Topic for malformed input ('' turns it off).")
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Checkpoint root (default: <run_dir>/checkpoints/liquidity)."),
    ] = None,
    starting_offsets: Annotated[
        str | None, typer.Option(help="earliest | latest | JSON; only for a new checkpoint.")
    ] = None,
    trigger: Annotated[str | None, typer.Option(help="Micro-batch interval, '1 second'.")] = None,
    watermark: Annotated[str | None, typer.Option(help="Allowed lateness, '2 seconds'.")] = None,
    master: Annotated[str | None, typer.Option(help="Spark master (default: local[2]).")] = None,
    jars_dir: Annotated[
        Path | None,
        typer.Option(help="Folder with the spark-sql-kafka jars (default: the stack's)."),
    ] = None,
    max_offsets_per_trigger: Annotated[
        int | None,
        typer.Option(help="Cap on records per micro-batch (catch-up after downtime).", min=1),
    ] = None,
    progress_interval: Annotated[
        float, typer.Option(help="Seconds between progress log lines.", min=0.1, max=86_400)
    ] = 30.0,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run in the background (managed).")
    ] = False,
) -> None:
    """Run the Spark job with spark-submit (foreground unless --detach; Ctrl-C stops it)."""
    from rtcrypto.spark import submit as spark

    settings = get_settings()
    config = spark.LiquidityJobConfig.from_settings(settings).with_overrides(
        bootstrap=bootstrap,
        input_topic=input_topic,
        output_topic=output_topic,
        deadletter_topic=deadletter_topic,
        checkpoint=checkpoint,
        starting_offsets=starting_offsets,
        trigger=trigger,
        watermark=watermark,
        master=master,
        progress_interval_s=progress_interval,
        max_offsets_per_trigger=max_offsets_per_trigger,
    )
    try:
        command = spark.build_submit_command(config, spark.kafka_connector_jars(settings, jars_dir))
    except Exception as error:  # SparkSetupError, StackError: one actionable line
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
    running_pid = _managed_job_on(config.checkpoint)
    if running_pid is not None:
        typer.secho(
            f"error: the managed liquidity job (pid {running_pid}) uses {config.checkpoint}; "
            "two jobs must never share a checkpoint (`rtc liquidity stop` first)",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(code=1)
    if detach:
        _run_detached(command)
        return
    raise typer.Exit(code=_run_foreground(command))


def _managed_job_on(checkpoint: Path) -> int | None:
    """Pid of the managed (detached) job if it runs on ``checkpoint``, else None."""
    from rtcrypto.spark import submit as spark
    from rtcrypto.stack import process

    status = process.process_status(spark.LIQUIDITY_PROCESS, get_settings())
    if not status.running:
        return None
    command = list(status.command)
    if "--checkpoint" in command:
        index = command.index("--checkpoint") + 1
        if index < len(command) and Path(command[index]) != checkpoint:
            return None
    return status.pid


def _run_detached(command: list[str]) -> None:
    from rtcrypto.spark import submit as spark
    from rtcrypto.stack import process
    from rtcrypto.stack.errors import StackError

    settings = get_settings()
    try:
        pid = process.start_process(
            spark.LIQUIDITY_PROCESS, command, env=spark.env_additions(), settings=settings
        )
    except StackError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
    log_file = process.log_path(spark.LIQUIDITY_PROCESS, settings)
    typer.echo(f"liquidity started (pid {pid}), log {log_file}; `rtc liquidity stop` stops it")


def _run_foreground(command: list[str]) -> int:
    """spark-submit as a child; SIGINT/SIGTERM are forwarded as a clean stop of the job."""
    from rtcrypto.spark import submit as spark

    job = spark.start_job(command)
    stop_requested: list[int] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop_requested.append(signum)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    while job.poll() is None:
        if stop_requested:
            typer.echo("stopping the liquidity job (queries finish their batch) ...", err=True)
            return spark.stop_job(job)
        time.sleep(0.2)
    return job.returncode


@app.command()
def stop(
    timeout: Annotated[float, typer.Option(help="Seconds before the job is killed.")] = 60.0,
) -> None:
    """Stop the job started with --detach (or by `rtc up`): queries first, then the JVM."""
    from rtcrypto.spark import submit as spark
    from rtcrypto.stack import process

    settings = get_settings()
    pid = process.read_pid(spark.LIQUIDITY_PROCESS, settings)
    if pid is None or not process.is_running(spark.LIQUIDITY_PROCESS, settings):
        typer.echo("liquidity is not running")
        return
    driver = spark.job_driver_pid(pid)
    if driver is not None:  # the job's Python process stops the queries, then the JVM exits
        os.kill(driver, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process.pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    process.stop_process(spark.LIQUIDITY_PROCESS, timeout_s=10.0, settings=settings)
    typer.echo(f"liquidity stopped (pid {pid})")


def tail_records(
    *,
    bootstrap: str,
    topic: str,
    from_beginning: bool = False,
    until_idle_s: float | None = None,
) -> int:
    """Print each record's JSON value on one line of stdout; return how many were printed.

    Reads every partition of ``topic`` without joining a consumer group (nothing is committed).
    Without ``until_idle_s`` it runs until interrupted; with it, it returns after that many
    seconds without a new record. Raises ``KafkaException`` if Kafka does not answer.
    """
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

    from rtcrypto.kafka import clients

    settings = get_settings().model_copy(update={"kafka_bootstrap": bootstrap})
    # librdkafka's own lines would repeat every reconnect; its errors are printed once below
    consumer = clients.consumer(settings, "rtc-liquidity-tail", log_level=clients.QUIET_LOG_LEVEL)
    start_offset = OFFSET_BEGINNING if from_beginning else OFFSET_END
    idle_limit_s = until_idle_s or None  # 0 waits forever, as before
    printed, assigned, last_record = 0, False, time.monotonic()
    try:
        while idle_limit_s is None or time.monotonic() - last_record < idle_limit_s:
            if not assigned:  # the topic may not exist yet: look again until it does
                metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
                if metadata is None or metadata.error is not None or not metadata.partitions:
                    time.sleep(0.2)
                    continue
                consumer.assign(
                    [TopicPartition(topic, p, start_offset) for p in sorted(metadata.partitions)]
                )
                assigned = True
            message = consumer.poll(0.2)
            if message is not None and message.error() is not None:
                sys.stderr.write(f"kafka: {message.error()}\n")  # e.g. all brokers down
                continue
            value = message.value() if message is not None else None
            if value is None:
                continue
            sys.stdout.write(value.decode("utf-8", errors="replace") + "\n")
            sys.stdout.flush()
            printed += 1
            last_record = time.monotonic()
    finally:
        consumer.close()
    return printed


@app.command()
def tail(
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest record.")
    ] = False,
    until_idle: Annotated[
        float | None,
        typer.Option(
            "--until-idle",
            metavar="SECONDS",
            help="Exit after SECONDS without a record.",
            min=0,
        ),
    ] = None,
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap (default: settings).")
    ] = None,
    topic: Annotated[str | None, typer.Option(help="Topic (default: liquidity.minute.v1).")] = None,
) -> None:
    """Print liquidity records as JSON lines."""
    from confluent_kafka import KafkaException

    settings = get_settings()
    bootstrap = bootstrap or settings.kafka_bootstrap
    try:
        with suppress(KeyboardInterrupt):
            tail_records(
                bootstrap=bootstrap,
                topic=topic or settings.topics.liquidity,
                from_beginning=from_beginning,
                until_idle_s=until_idle,
            )
    except KafkaException as error:
        typer.secho(f"error: cannot read from Kafka on {bootstrap}: {error}", fg="red", err=True)
        raise typer.Exit(code=1) from None
