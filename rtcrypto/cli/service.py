"""``rtc service exec NAME``: run one registry service in the foreground, as `rtc up` starts it.

For containers (docker-compose): the service's command comes from the one registry
(``rtcrypto/supervision/registry.py``), so a container runs exactly what the local supervisor runs, including
arguments that are computed from the settings and the prepared state (the simulator's replay window).
"""

from __future__ import annotations

import os

import typer

from rtcrypto import supervision
from rtcrypto.config import get_settings
from rtcrypto.stack.errors import StackError

app = typer.Typer(no_args_is_help=True, add_completion=False)


def exec_arguments(command: tuple[str, ...], bind: str | None) -> list[str]:
    """``command`` with its ``--host`` value replaced by ``bind`` (a container binds 0.0.0.0)."""
    arguments = list(command)
    if bind is not None and "--host" in arguments:
        arguments[arguments.index("--host") + 1] = bind
    return arguments


@app.command("exec")
def exec_service(
    name: str = typer.Argument(..., help="A service of the registry (see `rtc status`)."),
    bind: str | None = typer.Option(
        None, "--bind", help="Listen on this address instead of the setting (containers: 0.0.0.0)."
    ),
) -> None:
    """Replace this process with the service's command (its logs go to standard output)."""
    settings = get_settings()
    try:
        spec = supervision.get_service(name, settings)
        launch = spec.launch(settings)
    except StackError as error:  # an unknown name, or a service that cannot start here
        typer.echo(f"rtc service exec: {error}", err=True)
        raise typer.Exit(2) from None
    arguments = exec_arguments(launch.command, bind)
    os.execvpe(arguments[0], arguments, {**os.environ, **launch.env})
