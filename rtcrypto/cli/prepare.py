"""``rtc prepare``: what ``rtc up`` prepares before the streaming services start, on its own.

History import, first forecast, index templates and indices, Kibana's saved objects when
``RTC_KIBANA_URL`` is set (``rtcrypto/platform/bootstrap.py``); each step is a no-op once done.
docker-compose runs it once as its ``bootstrap`` service; locally ``rtc up`` runs the same steps.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("prepare")
    def prepare() -> None:
        """Import the shared history, publish a forecast if none is current, provision the
        indices (and Kibana's saved objects with RTC_KIBANA_URL); each step idempotent."""
        from rtcrypto.cli.platform import prepare_platform
        from rtcrypto.config import get_settings
        from rtcrypto.platform.bootstrap import BootstrapError
        from rtcrypto.search.client import SearchError
        from rtcrypto.search.kibana import KibanaError
        from rtcrypto.stack.errors import StackError

        try:
            prepare_platform(get_settings())
        except (BootstrapError, SearchError, KibanaError, StackError) as error:
            typer.secho(f"\nerror: {error}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=1) from None
