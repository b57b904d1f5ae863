"""history_download: Kaggle's Bitstamp minute bars (or a local file) into the history store.

Task ``fetch`` returns the path of the file to import: the ``local_file`` param when it is set
(the offline path), else a download of Kaggle's ``mczielinski/bitcoin-historical-data`` with the
official ``kaggle`` client (``pip install kaggle``) into ``<home>/downloads/kaggle``. Credentials
come from the Airflow connection ``kaggle_default`` (login = Kaggle user name, password = API key)
or the standard ``KAGGLE_USERNAME`` / ``KAGGLE_KEY`` (or ``KAGGLE_API_TOKEN``) environment
variables, else the client's own ``kaggle.json``; they are registered with Airflow's log masker
and never logged. Missing or refused credentials fail the task at once, an unreachable Kaggle is
retried once; each message names the offline command. Task ``import_history`` imports it with
``rtcrypto.history.import_file``: re-importing the same content is a no-op, so reruns are safe.

Offline: ``rtc history import FILE`` does the same from a shell, or trigger this DAG with
``local_file`` set.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
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
# Environment variables that hold a Kaggle secret (the user name is not one).
SECRET_VARIABLES = ("KAGGLE_KEY", "KAGGLE_API_TOKEN")


class KaggleDownloadError(RuntimeError):
    """The Kaggle download failed in a way a retry may cure (network, Kaggle's side)."""


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by ``***`` (for messages that quote errors)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def paused_upon_creation(environ: Mapping[str, str], home: Path) -> bool:
    """Paused unless Kaggle credentials are in the environment or a file (read at parse time:
    names and file presence only, no network, no database; see rtcrypto.kaggle_credentials)."""
    try:
        from rtcrypto.kaggle_credentials import kaggle_credentials_location
    except ImportError:  # the project is not importable here: stay paused, as before
        return True
    return kaggle_credentials_location(environ, home) is None


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


@contextmanager
def _environment(entries: Mapping[str, str]) -> Iterator[None]:
    """Set ``entries`` in ``os.environ`` for the block only (child processes never inherit them)."""
    import os

    saved = {name: os.environ.get(name) for name in entries}
    os.environ.update(entries)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _download_from_kaggle(target_dir: str) -> str:
    """Download and unzip the Kaggle dataset into ``target_dir``; return the CSV's path.

    Fails the task without a retry when the client is missing, no credentials are configured or
    Kaggle refuses them; raises :class:`KaggleDownloadError` (retried) when Kaggle cannot be
    reached. Every message names the offline command; none quotes a secret.
    """
    import importlib.util
    import logging
    import os

    from airflow.sdk.exceptions import AirflowFailException
    from airflow.sdk.log import mask_secret

    from rtcrypto.kaggle_credentials import kaggle_credential_files

    log = logging.getLogger(__name__)
    if importlib.util.find_spec("kaggle") is None:
        raise AirflowFailException(
            "the `kaggle` package is not installed in Airflow's environment "
            f"(`pip install kaggle`), so {KAGGLE_DATASET} cannot be downloaded. {OFFLINE_HINT}"
        )
    credentials = _kaggle_credentials()
    files = [path for path in kaggle_credential_files(os.environ, Path.home()) if path.is_file()]
    if not credentials and not files:
        raise AirflowFailException(
            f"no Kaggle credentials: add the Airflow connection {KAGGLE_CONNECTION_ID!r} "
            "(login = Kaggle user name, password = API key), set KAGGLE_USERNAME and KAGGLE_KEY "
            "(or KAGGLE_API_TOKEN) for Airflow, or put kaggle.json in ~/.kaggle. "
            f"{OFFLINE_HINT}"
        )
    secrets = [credentials[name] for name in SECRET_VARIABLES if credentials.get(name)]
    for secret in secrets:
        mask_secret(secret)  # Airflow's log masker redacts it from every task log line
    folder = Path(target_dir)
    folder.mkdir(parents=True, exist_ok=True)
    source = "credentials from Airflow/env" if credentials else f"the client's file {files[0]}"
    log.info("downloading Kaggle dataset %s into %s (%s)", KAGGLE_DATASET, folder, source)
    with _environment(credentials):  # the client reads them from the environment
        # Importing the package authenticates, so it happens with the credentials in place.
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        try:
            api.authenticate()
        except (Exception, SystemExit) as error:  # the client exits when it finds no credentials
            raise AirflowFailException(
                f"the Kaggle client could not use the configured credentials "
                f"({type(error).__name__}): check {KAGGLE_CONNECTION_ID!r}, KAGGLE_USERNAME/"
                f"KAGGLE_KEY or kaggle.json. {OFFLINE_HINT}"
            ) from None
        try:
            api.dataset_download_files(KAGGLE_DATASET, path=str(folder), unzip=True, quiet=True)
        except (Exception, SystemExit) as error:
            status = getattr(getattr(error, "response", None), "status_code", None)
            detail = redact(f"{type(error).__name__}: {error}", secrets)
            if status in (401, 403):
                raise AirflowFailException(
                    f"Kaggle refused the credentials (HTTP {status}) for {KAGGLE_DATASET}: fix "
                    f"{KAGGLE_CONNECTION_ID!r} or KAGGLE_USERNAME/KAGGLE_KEY. {OFFLINE_HINT}"
                ) from None
            raise KaggleDownloadError(
                f"downloading {KAGGLE_DATASET} failed ({detail}); is there no network? "
                f"{OFFLINE_HINT}"
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
    },
)
def history_download() -> None:
    @task(execution_timeout=timedelta(hours=1))
    def fetch(params: dict[str, Any] | None = None) -> str:
        """The file to import: ``local_file``, else a fresh Kaggle download."""
        from airflow.sdk.exceptions import AirflowFailException

        from rtcrypto.config import get_settings

        local_file = str((params or {}).get("local_file") or "").strip()
        if local_file:
            path = Path(local_file).expanduser()
            if not path.is_file():
                raise AirflowFailException(f"local_file {path} does not exist or is not a file")
            return str(path.resolve())
        target = get_settings().downloads_dir / "kaggle" / KAGGLE_DATASET.replace("/", "__")
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
