"""history_download: Kaggle's Bitstamp minute bars (or a local file) into the history store.

Task ``fetch`` returns the path of the file to import: the ``local_file`` param when it is set
(the offline path), else a download of Kaggle's ``mczielinski/bitcoin-historical-data`` with the
official ``kaggle`` client (``pip install kaggle``) into ``<home>/downloads/kaggle``. Credentials
come from the Airflow connection ``kaggle_default`` (login = Kaggle user name, password = API key)
or the standard ``KAGGLE_USERNAME`` / ``KAGGLE_KEY`` (or ``KAGGLE_API_TOKEN``) environment
variables; they are never logged. Task ``import_history`` imports it with
``rtcrypto.history.import_file``: re-importing the same content is a no-op, so reruns are safe.

Offline: ``rtc history import FILE`` does the same from a shell, or trigger this DAG with
``local_file`` set.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

KAGGLE_DATASET = "mczielinski/bitcoin-historical-data"
KAGGLE_CONNECTION_ID = "kaggle_default"
OFFLINE_HINT = (
    "Offline, import a downloaded file with `rtc history import FILE`, or trigger this DAG "
    "with the param local_file=/path/to/file.csv[.gz]."
)

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "rtcrypto",
    "retries": 1,
    "retry_delay": timedelta(minutes=2),
}


def _kaggle_credentials() -> dict[str, str]:
    """Kaggle credentials as env entries, from ``kaggle_default`` or the standard env vars.

    Returns ``{}`` when there are none. The values are secrets: never log them.
    """
    import os

    from airflow.sdk import BaseHook

    try:
        connection = BaseHook.get_connection(KAGGLE_CONNECTION_ID)
    except Exception:  # not defined: fall back to the environment
        connection = None
    if connection is not None and connection.login and connection.password:
        return {"KAGGLE_USERNAME": connection.login, "KAGGLE_KEY": connection.password}
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return {
            "KAGGLE_USERNAME": os.environ["KAGGLE_USERNAME"],
            "KAGGLE_KEY": os.environ["KAGGLE_KEY"],
        }
    if os.environ.get("KAGGLE_API_TOKEN"):
        return {"KAGGLE_API_TOKEN": os.environ["KAGGLE_API_TOKEN"]}
    return {}


def _download_from_kaggle(target_dir: str) -> str:
    """Download and unzip the Kaggle dataset into ``target_dir``; return the CSV's path."""
    import importlib.util
    import logging
    import os
    from pathlib import Path

    from airflow.sdk.exceptions import AirflowFailException

    log = logging.getLogger(__name__)
    if importlib.util.find_spec("kaggle") is None:
        raise AirflowFailException(
            "the `kaggle` package is not installed in Airflow's environment "
            f"(`pip install kaggle`), so {KAGGLE_DATASET} cannot be downloaded. {OFFLINE_HINT}"
        )
    credentials = _kaggle_credentials()
    if not credentials:
        raise AirflowFailException(
            f"no Kaggle credentials: add the Airflow connection {KAGGLE_CONNECTION_ID!r} "
            "(login = Kaggle user name, password = API key) or set KAGGLE_USERNAME and KAGGLE_KEY "
            f"for Airflow. {OFFLINE_HINT}"
        )
    os.environ.update(credentials)  # the client reads them from the environment
    from kaggle.api.kaggle_api_extended import KaggleApi

    folder = Path(target_dir)
    folder.mkdir(parents=True, exist_ok=True)
    log.info("downloading Kaggle dataset %s into %s", KAGGLE_DATASET, folder)
    try:
        api = KaggleApi()
        api.authenticate()
        api.dataset_download_files(KAGGLE_DATASET, path=str(folder), unzip=True, quiet=True)
    except (Exception, SystemExit) as error:  # the client exits on failed auth
        raise RuntimeError(
            f"downloading {KAGGLE_DATASET} failed ({type(error).__name__}: {error}); "
            f"no network or wrong credentials? {OFFLINE_HINT}"
        ) from None
    csv_files = sorted(folder.glob("*.csv"), key=lambda path: path.stat().st_size, reverse=True)
    if not csv_files:
        raise AirflowFailException(f"the Kaggle download left no CSV file in {folder}")
    return str(csv_files[0])


@dag(
    dag_id="history_download",
    description="Kaggle Bitstamp minute bars (or a local file) into the Parquet history store",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["rtcrypto", "history", "forecast"],
    doc_md=__doc__,
    params={
        "local_file": Param(
            "",
            type="string",
            title="Local file",
            description=(
                "Path of a minute-bar CSV (plain or .gz) to import instead of downloading from "
                "Kaggle; empty downloads."
            ),
        ),
    },
)
def history_download() -> None:
    @task(execution_timeout=timedelta(hours=1))
    def fetch(params: dict[str, Any] | None = None) -> str:
        """The file to import: ``local_file``, else a fresh Kaggle download."""
        from pathlib import Path

        from airflow.sdk.exceptions import AirflowFailException

        from rtcrypto.config import get_settings

        local_file = str((params or {}).get("local_file") or "").strip()
        if local_file:
            path = Path(local_file).expanduser()
            if not path.is_file():
                raise AirflowFailException(f"local_file {path} does not exist or is not a file")
            return str(path.resolve())
        target = get_settings().home / "downloads" / "kaggle" / KAGGLE_DATASET.replace("/", "__")
        return _download_from_kaggle(str(target))

    @task(execution_timeout=timedelta(hours=1))
    def import_history(path: str) -> dict[str, Any]:
        """Import ``path`` into the history store; return a short summary (no bars in XCom)."""
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

    import_history(fetch())


history_download()
