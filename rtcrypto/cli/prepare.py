"""``rtc prepare``: what ``rtc up`` prepares before the streaming services start, on its own.

History import, first forecast, index templates and indices, Kibana's saved objects when
``RTC_KIBANA_URL`` is set (``rtcrypto/platform/prepare.py``); each step is a no-op once done.
docker-compose runs it once as its ``bootstrap`` service; locally ``rtc up`` runs the same steps.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("prepare")
    def prepare_command() -> None:
        """Import the shared history, publish a forecast if none is current, provision the
        indices (and Kibana's saved objects with RTC_KIBANA_URL); each step idempotent."""
        from rtcrypto.cli.platform import StepPrinter, fail
        from rtcrypto.config import get_settings
        from rtcrypto.platform.prepare import expected_errors, prepare

        printer = StepPrinter()
        try:
            prepare(get_settings(), printer, printer.step_started)
        except expected_errors() as error:
            fail(error, blank_line_first=True)
