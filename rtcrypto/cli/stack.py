"""``rtc stack up|down|status``: the embedded local stack (Kafka, Elasticsearch, Airflow) without
Docker."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from rtcrypto.config import get_settings
from rtcrypto.logs import setup_logging
from rtcrypto.redact import redact_url
from rtcrypto.stack import airflow, kafka, maven, process, search
from rtcrypto.stack.errors import StackError

app = typer.Typer(no_args_is_help=True, add_completion=False)

# Infrastructure stops last, after every service that may still be writing to it.
_STOP_LAST = (kafka.KAFKA_PROCESS, search.SEARCH_PROCESS)


@app.callback()
def _configure() -> None:
    """Start, stop and inspect the embedded local services."""
    # Terse by default: the commands print what they do; RTC_LOG_LEVEL=INFO shows the details.
    setup_logging("rtc.stack", level=os.environ.get("RTC_LOG_LEVEL", "WARNING"))


@contextmanager
def _expected_errors() -> Iterator[None]:
    """Turn a :class:`StackError` into one red line on stderr and exit code 1, no traceback."""
    try:
        yield
    except StackError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None


def _megabytes(size_bytes: int) -> str:
    return f"{size_bytes / 1_000_000:.0f} MB"


def _resolve(jar_set: maven.JarSet) -> None:
    """Resolve one jar set, saying whether Maven runs and how long it took."""
    settings = get_settings()
    target = maven.jar_dir(jar_set, settings)
    if maven.is_resolved(jar_set, settings):
        typer.echo(f"jars      {jar_set.name} {jar_set.version}: cached in {target}")
        return
    typer.echo(
        f"jars      {jar_set.name} {jar_set.version}: resolving from Maven Central "
        f"(mvn dependency:copy-dependencies, log {settings.log_dir / f'maven-{jar_set.name}.log'})"
    )
    result = maven.resolve_jars(jar_set, settings)
    typer.echo(
        f"          {result.jar_count} jars, {_megabytes(result.size_bytes)} in {target} "
        f"({result.seconds:.1f} s)"
    )


@app.command()
def up(
    timeout_s: float = typer.Option(
        90.0, "--timeout", help="Seconds to wait for Kafka health.", min=1
    ),
    with_search: bool = typer.Option(
        True, "--search/--no-search", help="Also start the local Elasticsearch node."
    ),
    search_timeout_s: float = typer.Option(
        120.0, "--search-timeout", help="Seconds to wait for Elasticsearch health.", min=1
    ),
    with_airflow: bool = typer.Option(
        True, "--airflow/--no-airflow", help="Also start Airflow standalone (UI and scheduler)."
    ),
    airflow_timeout_s: float = typer.Option(
        180.0, "--airflow-timeout", help="Seconds to wait for Airflow health.", min=1
    ),
    airflow_wait: bool = typer.Option(
        True,
        "--airflow-wait/--no-airflow-wait",
        help="Wait for Airflow's health, or start it in the background.",
    ),
) -> None:
    """Resolve jars (first run only), start Kafka (KRaft), create the topics, start Elasticsearch
    and Airflow."""
    settings = get_settings()
    started = time.monotonic()
    with _expected_errors():
        maven.require_java()
        jar_sets = [maven.kafka_broker_jar_set(settings), maven.spark_kafka_jar_set(settings)]
        if with_search:
            search.find_search_java(settings)  # say "no JDK 21" before any download
            jar_sets.append(search.elasticsearch_jar_set(settings))
        for jar_set in jar_sets:
            _resolve(jar_set)
        if not process.is_running(kafka.KAFKA_PROCESS, settings):
            typer.echo(f"kafka     starting {settings.kafka_version} (KRaft broker+controller) ...")
        result = kafka.start_kafka(settings, timeout_s=timeout_s)
        state = "already running" if result.already_running else "started"
        formatted = ", storage formatted" if result.formatted else ""
        typer.echo(
            f"kafka     {state} (pid {result.pid}{formatted}), healthy after "
            f"{result.seconds_to_healthy:.1f} s; data {kafka.kafka_paths(settings).data_dir}"
        )
        created = kafka.ensure_topics(
            settings.topics.all(),
            bootstrap=settings.kafka_bootstrap,
            partitions=settings.kafka_partitions,
            configs=kafka.topic_configs(settings),  # bounds, also set on existing topics
        )
        existing = [topic for topic in settings.topics.all() if topic not in created]
        typer.echo(
            f"topics    created: {', '.join(created) or '-'}; existing: {', '.join(existing) or '-'}"
        )
        if with_search:
            _start_search(search_timeout_s)
        if with_airflow:
            _start_airflow(airflow_timeout_s, wait=airflow_wait)
    ready = f"ready     Kafka bootstrap {settings.kafka_bootstrap}"
    if with_search:
        ready += f", Elasticsearch {redact_url(settings.search_url)}"
    if with_airflow:
        ready += f", Airflow {settings.airflow_url}"
    typer.echo(f"{ready} ({time.monotonic() - started:.1f} s)")


def _start_search(timeout_s: float) -> None:
    """Start the local Elasticsearch node (after Kafka) and say how it went."""
    settings = get_settings()
    if not process.is_running(search.SEARCH_PROCESS, settings):
        java = search.find_search_java(settings)
        typer.echo(
            f"search    starting Elasticsearch {settings.search_version} "
            f"(single node, Java {java.major}, heap {settings.search_heap}) ..."
        )
    result = search.start_search(settings, timeout_s=timeout_s)
    state = "already running" if result.already_running else "started"
    built = ", launcher compiled" if result.built_launcher else ""
    typer.echo(
        f"search    {state} (pid {result.pid}{built}), healthy after "
        f"{result.seconds_to_healthy:.1f} s; data {search.search_paths(settings).data_dir}"
    )


def _start_airflow(timeout_s: float, *, wait: bool) -> None:
    """Start Airflow standalone (after Kafka and Elasticsearch) and say where its UI and login are."""
    settings = get_settings()
    paths = airflow.airflow_paths(settings)
    if not process.is_running(airflow.AIRFLOW_PROCESS, settings):
        how = "waiting for health" if wait else "in the background"
        typer.echo(
            f"airflow   starting standalone (api-server, scheduler, dag-processor, triggerer; "
            f"parallelism {settings.airflow_parallelism}), {how} ..."
        )
    result = airflow.start_airflow(settings, timeout_s=timeout_s, wait=wait)
    state = "already running" if result.already_running else "started"
    if wait:
        timing = f"healthy after {result.seconds_to_healthy:.1f} s"
        if result.seconds_to_migrate:
            timing += f" (db migrate {result.seconds_to_migrate:.1f} s)"
    else:
        timing = "answers in about 30 s"
    typer.echo(f"airflow   {state} (pid {result.pid}), {timing}; home {paths.home_dir}")
    typer.echo(
        f"          UI {settings.airflow_url}  user {airflow.ADMIN_USER}, password in "
        f"{result.password_file}; log {paths.process_log}"
    )


@app.command()
def down(
    timeout_s: float = typer.Option(
        30.0, "--timeout", help="Seconds before SIGKILL, per process.", min=0
    ),
) -> None:
    """Stop every managed process (services first, Kafka last); leave no process behind."""
    settings = get_settings()
    with _expected_errors():
        statuses = process.list_processes(settings)
        # Newest first, infrastructure last: the reverse of the order things were started in.
        ordered = sorted(reversed(statuses), key=lambda status: status.name in _STOP_LAST)
        if not ordered:
            typer.echo("nothing to stop")
        for status in ordered:
            stopped = process.stop_process(status.name, timeout_s=timeout_s, settings=settings)
            if stopped:
                typer.echo(f"stopped   {status.name} (pid {status.pid})")
            else:
                typer.echo(
                    f"cleared   {status.name}: stale pid file (pid {status.pid} not running)"
                )


@app.command()
def status() -> None:
    """List each managed process with its pid, whether it runs, its ports and log."""
    settings = get_settings()
    statuses = process.list_processes(settings)
    if not statuses:
        typer.echo(f"no managed processes (no pid files in {settings.run_dir})")
        return
    typer.echo(f"{'NAME':<14} {'PID':>8}  {'RUNNING':<8} {'PORTS':<12} {'UPTIME':>9}  LOG")
    now = time.time()
    for entry in statuses:
        uptime = (
            f"{now - entry.started_at_s:.0f} s" if entry.running and entry.started_at_s else "-"
        )
        ports = ",".join(str(port) for port in entry.ports) or "-"
        typer.echo(
            f"{entry.name:<14} {entry.pid or '-':>8}  {'yes' if entry.running else 'no':<8} "
            f"{ports:<12} {uptime:>9}  {entry.log_path}"
        )
    if any(entry.name == airflow.AIRFLOW_PROCESS for entry in statuses):
        airflow_health = airflow.health(settings.airflow_url, timeout_s=2.0)
        if airflow_health is None:
            typer.echo(f"airflow   {settings.airflow_url}: not answering")
        else:
            components = ", ".join(
                f"{name} {state}"
                for name, state in airflow.component_states(airflow_health).items()
            )
            typer.echo(
                f"airflow   {settings.airflow_url}: {components}; user {airflow.ADMIN_USER}, "
                f"password in {airflow.airflow_paths(settings).password_file}"
            )
    if any(entry.name == search.SEARCH_PROCESS for entry in statuses):
        health = search.node_health(settings.search_url, timeout_s=2.0)
        if health is None:
            typer.echo(f"search    {redact_url(settings.search_url)}: not answering")
        else:
            typer.echo(
                f"search    {redact_url(settings.search_url)}: cluster {health.cluster_name} {health.status}, "
                f"{health.number_of_nodes} node(s)"
            )
