"""``rtc stack up|down|status``: the embedded local stack (Kafka, Elasticsearch, Airflow) without
Docker. The work is :mod:`rtcrypto.stack.lifecycle`; this module parses flags and prints."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from rtcrypto.config import Settings, get_settings
from rtcrypto.config_cluster import Topology
from rtcrypto.logs import setup_logging
from rtcrypto.stack import lifecycle, topology
from rtcrypto.stack.errors import StackError

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def _configure() -> None:
    """Start, stop and inspect the embedded local services."""
    # Terse by default: the commands print what they do; RTC_LOG_LEVEL=INFO shows the details.
    setup_logging("rtc.stack", level=get_settings().log_level or "WARNING")


TOPOLOGY_HELP = (
    "single: one member of each engine (default); cluster: 3 Kafka brokers, Elasticsearch nodes "
    "with replicas, Spark standalone, Airflow on PostgreSQL with Celery workers (RTC_CLUSTER_*)."
)
TOPOLOGY_OPTION = typer.Option(None, "--topology", help=TOPOLOGY_HELP)  # RTC_TOPOLOGY otherwise


def settings_for(chosen: Topology | None) -> Settings:
    """The settings with ``--topology`` applied, or else the topology the home's last start
    recorded (unless ``RTC_TOPOLOGY`` says otherwise). The choice goes into the environment as
    ``RTC_TOPOLOGY``, so every process started from here (services, Airflow) inherits it."""
    import os

    if chosen is not None:
        os.environ[topology.TOPOLOGY_VARIABLE] = str(chosen)
        get_settings.cache_clear()
    elif topology.adopt_recorded_topology(get_settings()):
        get_settings.cache_clear()
    return get_settings()


@contextmanager
def _expected_errors() -> Iterator[None]:
    """Turn a :class:`StackError` into one red line on stderr and exit code 1, no traceback."""
    try:
        yield
    except StackError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None


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
    chosen_topology: Topology | None = TOPOLOGY_OPTION,
) -> None:
    """Resolve jars (first run only), start Kafka (KRaft), create the topics, start Elasticsearch
    and Airflow."""
    options = lifecycle.StackOptions(
        kafka_timeout_s=timeout_s,
        with_search=with_search,
        search_timeout_s=search_timeout_s,
        with_airflow=with_airflow,
        airflow_timeout_s=airflow_timeout_s,
        airflow_wait=airflow_wait,
    )
    with _expected_errors():
        lifecycle.start_stack(settings_for(chosen_topology), options, typer.echo)


@app.command()
def down(
    timeout_s: float = typer.Option(
        30.0, "--timeout", help="Seconds before SIGKILL, per process.", min=0
    ),
) -> None:
    """Stop every managed process (services first, Kafka last); leave no process behind."""
    with _expected_errors():
        lifecycle.stop_stack(settings_for(None), timeout_s, typer.echo)


@app.command()
def status() -> None:
    """List each managed process with its pid, whether it runs, its ports and log."""
    for line in lifecycle.stack_status(settings_for(None)):
        typer.echo(line)
