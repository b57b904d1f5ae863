"""history_download: Kaggle's Bitstamp minute bars (or a local file) into the history store.

Task ``fetch`` returns the path of the file to import: the ``local_file`` param when it is set
(the offline path), else a download of Kaggle's ``mczielinski/bitcoin-historical-data`` by
``KaggleHook`` (``plugins/rtc_airflow/kaggle_hook.py``: the official ``kaggle`` client) into
``<home>/downloads/kaggle``. Credentials come from the Airflow connection ``kaggle_default``
(login = Kaggle user name, password = API key) or the standard ``KAGGLE_USERNAME`` /
``KAGGLE_KEY`` (or ``KAGGLE_API_TOKEN``) environment variables, else the client's own
``kaggle.json``; they are registered with Airflow's log masker and never logged. Missing or
refused credentials fail the task at once, an unreachable Kaggle is retried once; each message
names the offline command. Task ``import_history`` imports it with
``rtcrypto.history.import_file``: re-importing the same content is a no-op, so reruns are safe.
Its success is an event of the asset ``rtc_history``, which also starts ``forecast_retrain``.

Offline: ``rtc history import FILE`` does the same from a shell, or trigger this DAG with
``local_file`` set.

Venue: with the param ``venue`` = ``gemini`` (default ``kaggle``: the path above), task
``choose_venue`` runs ``download_gemini_candles`` instead: Gemini's 1-minute candles of ``symbol``
(``GET /v2/candles/{symbol}/1m`` at ``RTC_GEMINI_REST_URL``, the simulator in the demo) into the
source ``gemini-candles`` (``rtcrypto.history.venue_candles``; no account needed), from ``since``
on and resuming at the newest stored minute, upserted by minute (a rerun adds only new minutes).
``rtc history download --venue gemini`` does the same from a shell. Its success is an event of
``rtc_history`` too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, task
from rtc_airflow.assets import HISTORY

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "rtcrypto",
    "retries": 1,
    "retry_delay": timedelta(minutes=2),
}


def paused_upon_creation(environ: Mapping[str, str], home: Path) -> bool:
    """Paused unless Kaggle credentials are in the environment or a file (read at parse time:
    names and file presence only, no network, no database; see rtcrypto.kaggle_credentials)."""
    try:
        from rtcrypto.kaggle_credentials import kaggle_credentials_location
    except ImportError:  # the project is not importable here: stay paused, as before
        return True
    return kaggle_credentials_location(environ, home) is None


def gemini_candles(params: Mapping[str, Any]) -> dict[str, Any]:
    """Task ``download_gemini_candles``: run ``rtcrypto.history.venue_candles`` with the params;
    a bad ``since`` or an unknown symbol fails without a retry, an unreachable venue is retried."""
    import logging

    from airflow.sdk.exceptions import AirflowFailException

    from rtcrypto.config import get_settings
    from rtcrypto.history import HistoryError
    from rtcrypto.history.venue_candles import (
        UnknownSymbolError,
        download_gemini_candles,
        parse_since,
    )

    log = logging.getLogger(__name__)
    since = str(params.get("since") or "").strip()
    try:
        since_ms = parse_since(since) if since else None
    except HistoryError as error:
        raise AirflowFailException(f"param {error}") from None
    try:
        report = download_gemini_candles(
            get_settings().gemini_rest_base_url,
            str(params.get("symbol") or "BTCUSD"),
            since_ms=since_ms,
            on_progress=lambda line: log.info("%s", line),
        )
    except UnknownSymbolError as error:
        raise AirflowFailException(f"param {error}") from None
    for line in report.lines():
        log.info("%s", line)
    return report.to_dict()


@dag(
    dag_id="history_download",
    description="Kaggle Bitstamp minute bars (or a local file) into the Parquet history store",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    # Runs on its own only where it can succeed: with Kaggle credentials (rtc status says why not).
    is_paused_upon_creation=paused_upon_creation(os.environ, Path.home()),
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["rtcrypto", "history", "forecast"],
    doc_md=__doc__,
    params={
        "local_file": Param(
            "",
            # "null" makes the field optional in the UI's trigger form: empty means download.
            type=["null", "string"],
            maxLength=4096,  # PATH_MAX
            pattern=r"^[^\x00\n\r]*$",  # one path: no NUL or line breaks
            title="Local file",
            description=(
                "Path of a minute-bar CSV (plain or .gz) to import instead of downloading from "
                "Kaggle; empty downloads."
            ),
        ),
        "venue": Param(
            "kaggle",
            type="string",
            enum=["kaggle", "gemini"],
            title="Venue",
            description="kaggle: the Kaggle download (or local_file); gemini: Gemini's 1-minute "
            "candles at RTC_GEMINI_REST_URL into the source gemini-candles.",
        ),
        "symbol": Param(
            "BTCUSD",
            type="string",
            pattern=r"^[A-Za-z0-9]{3,20}$",
            title="Symbol (gemini)",
            description="The Gemini symbol whose candles are downloaded.",
        ),
        "since": Param(
            "",
            type=["null", "string"],
            pattern=r"^$|^\d{4}-\d{2}-\d{2}([T ][0-9:.]+)?(Z|[+-]\d{2}:?\d{2})?$",
            title="Since (gemini)",
            description="Keep minutes from this UTC date or time on (2024-10-28T12:30Z); empty: "
            "every candle the venue has.",
        ),
    },
)
def history_download() -> None:
    @task(execution_timeout=timedelta(hours=1))
    def fetch(params: dict[str, Any] | None = None) -> str:
        """The file to import: ``local_file``, else a fresh Kaggle download."""
        from airflow.sdk.exceptions import AirflowFailException
        from rtc_airflow.kaggle_hook import KAGGLE_DATASET, KaggleHook

        from rtcrypto.config import get_settings

        local_file = str((params or {}).get("local_file") or "").strip()
        if local_file:
            path = Path(local_file).expanduser()
            if not path.is_file():
                raise AirflowFailException(f"local_file {path} does not exist or is not a file")
            return str(path.resolve())
        target = get_settings().downloads_dir / "kaggle" / KAGGLE_DATASET.replace("/", "__")
        return KaggleHook().download(str(target))

    @task(execution_timeout=timedelta(hours=1), outlets=[HISTORY])
    def import_history(path: str) -> dict[str, Any]:
        """Import ``path`` into the history store; return a short summary (no bars in XCom).
        Its success is an event of the asset ``rtc_history`` (forecast_retrain's trigger)."""
        import logging

        from rtcrypto.history import import_file, resolve_history_dir

        log = logging.getLogger(__name__)
        report = import_file(path)
        for line in report.lines():
            log.info("%s", line)
        return {
            "file": report.file,
            "source": report.source,
            "fingerprint": report.fingerprint,
            "already_imported": report.already_imported,
            "rows_read": report.rows_read,
            "rows_kept": report.rows_kept,
            "rows_dropped": report.rows_dropped,
            "partitions": len(report.partitions),
            "history_dir": str(resolve_history_dir()),
        }

    @task.branch(execution_timeout=timedelta(minutes=1))
    def choose_venue(params: dict[str, Any] | None = None) -> str:
        """``download_gemini_candles`` for venue gemini, else the Kaggle path (``fetch``)."""
        venue = str((params or {}).get("venue") or "kaggle")
        return "download_gemini_candles" if venue == "gemini" else "fetch"

    @task(execution_timeout=timedelta(minutes=30), outlets=[HISTORY])
    def download_gemini_candles(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Gemini's 1-minute candles into the source gemini-candles (resume, upsert by minute)."""
        return gemini_candles(params or {})

    path = fetch()
    choose_venue() >> [path, download_gemini_candles()]
    import_history(path)


history_download()
