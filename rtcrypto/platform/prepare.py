"""``rtc prepare`` and the preparation inside ``rtc up``: history, forecast, indices, in order.

Each step is idempotent (:mod:`rtcrypto.platform.bootstrap`); each reports one line with what it
did and how long it took.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rtcrypto.config import Settings
from rtcrypto.platform import bootstrap

Progress = Callable[[str], None]  # receives one line of text per finished step
StepStarted = Callable[[str], None]  # receives the label of a step as it begins


def prepare(
    settings: Settings, progress: Progress, step_started: StepStarted | None = None
) -> None:
    """Import the shared history, publish a forecast if none is current, provision the indices
    (and Kibana's saved objects with ``RTC_KIBANA_URL``). Each finished step reports
    ``"<label> <what> (<seconds> s)"`` to ``progress``; ``step_started`` hears each label first.

    Raises :class:`rtcrypto.platform.bootstrap.BootstrapError`, ``SearchError``, ``KibanaError``
    or ``StackError`` with a message naming what to fix."""
    files = bootstrap.shared_minute_files()

    def history() -> str:
        reports = bootstrap.import_history(settings, files)
        new = [r for r in reports if not r.already_imported]
        rows = sum(r.rows_kept for r in new)
        return (
            f"{len(files)} real minute files ({len(new)} imported now, {rows:,} minutes; "
            f"{len(files) - len(new)} already there)"
        )

    def forecast() -> str:
        version, published, what = bootstrap.ensure_forecast(settings)
        return f"{version} {'published' if published else ''} {what}".replace("  ", " ")

    steps: list[tuple[str, Callable[[], str]]] = [
        ("history", history),
        ("forecast", forecast),
        ("indices", lambda: bootstrap.ensure_indices(settings)),
    ]
    for label, action in steps:
        if step_started is not None:
            step_started(label)
        started = time.monotonic()
        what = action()
        progress(f"{label:<9} {what} ({time.monotonic() - started:.1f} s)")


def expected_errors() -> tuple[type[Exception], ...]:
    """The errors :func:`prepare` and :func:`rtcrypto.platform.up.up` raise on bad state or
    an unreachable service: each carries a message a user can act on (no traceback needed)."""
    from rtcrypto.history.replay_window import ReplayWindowError
    from rtcrypto.platform.bootstrap import BootstrapError
    from rtcrypto.search.client import SearchError
    from rtcrypto.search.kibana import KibanaError
    from rtcrypto.stack.errors import StackError

    return (BootstrapError, ReplayWindowError, SearchError, KibanaError, StackError)
