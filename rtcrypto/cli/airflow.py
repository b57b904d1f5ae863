"""``rtc airflow ARGS...``: Airflow's own CLI on the platform's local Airflow.

It runs the venv's ``airflow`` with the environment ``rtc up`` gives the standalone
(``AIRFLOW_HOME``, its database and config, and the Connections ``kafka_default``,
``elasticsearch_default`` and ``spark_default`` built from Settings), so
``rtc airflow connections get kafka_default`` shows what the DAGs' hooks read. The Connections
exist only in that environment (never stored in Airflow's database, never on a command line).
"""

from __future__ import annotations

import os

import typer

HELP = "Airflow's own CLI on the platform's Airflow (its home, database and Connections)."


def register(app: typer.Typer) -> None:
    @app.command(
        "airflow",
        help=HELP,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )
    def airflow_command(ctx: typer.Context) -> None:
        from rtcrypto.config import settings_or_exit
        from rtcrypto.stack.airflow import airflow_bin, airflow_process_env
        from rtcrypto.stack.errors import StackError

        settings = settings_or_exit()
        try:
            program = str(airflow_bin())
        except StackError as error:
            typer.secho(f"error: {error}", err=True, fg="red")
            raise typer.Exit(1) from None
        env = {**os.environ, **airflow_process_env(settings)}
        os.execvpe(program, [program, *ctx.args], env)
