"""``KaggleHook``: Kaggle credentials, the client's environment, the dataset download, redaction.

Credentials come from the Airflow connection ``kaggle_default`` (login = Kaggle user name,
password = API key) or the standard ``KAGGLE_USERNAME`` / ``KAGGLE_KEY`` (or
``KAGGLE_API_TOKEN``) environment variables, else the official client's own files
(``rtcrypto.kaggle_credentials.kaggle_credential_files``). They are registered with Airflow's log
masker, set in ``os.environ`` only while the client runs, and never logged; error messages that
quote the client are redacted. Missing or refused credentials fail the task at once
(``AirflowFailException``); an unreachable Kaggle raises :class:`KaggleDownloadError`, which a
task retries. Every message names the offline command.

Not named ``kaggle.py``: Airflow's plugin manager imports every file of the plugins folder under
its bare file name, and a module ``kaggle`` would shadow the client package.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

KAGGLE_DATASET = "mczielinski/bitcoin-historical-data"
KAGGLE_CONNECTION_ID = "kaggle_default"
OFFLINE_HINT = (
    "Offline, import a downloaded file with `rtc history import FILE`, or trigger this DAG "
    "with the param local_file=/path/to/file.csv[.gz]."
)
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


@contextmanager
def environment(entries: Mapping[str, str]) -> Iterator[None]:
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


class KaggleHook(BaseHook):
    """Downloads a Kaggle dataset with the official ``kaggle`` client (``pip install kaggle``).

    :param kaggle_conn_id: the Airflow connection with the Kaggle user name (login) and API key
        (password); when it does not exist, the environment or the client's files.
    """

    hook_name = "Kaggle"
    conn_name_attr = "kaggle_conn_id"
    default_conn_name = KAGGLE_CONNECTION_ID
    conn_type = "generic"

    def __init__(self, kaggle_conn_id: str = KAGGLE_CONNECTION_ID) -> None:
        super().__init__()
        self.kaggle_conn_id = kaggle_conn_id

    def get_conn(self) -> dict[str, str]:
        """The credentials as environment entries (see :meth:`credentials`)."""
        return self.credentials()

    def credentials(self) -> dict[str, str]:
        """Kaggle credentials as env entries, from the connection or the standard env vars.

        Returns ``{}`` when there are none. The values are secrets: never log them.
        """
        import os

        try:
            connection = self.get_connection(self.kaggle_conn_id)
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

    def _checked_credentials(self) -> tuple[dict[str, str], list[Path]]:
        """(credentials, the client's credential files that exist); fails the task without
        a retry when the client is missing or there are no credentials at all."""
        import importlib.util
        import os

        from airflow.sdk.exceptions import AirflowFailException

        from rtcrypto.kaggle_credentials import kaggle_credential_files

        if importlib.util.find_spec("kaggle") is None:
            raise AirflowFailException(
                "the `kaggle` package is not installed in Airflow's environment "
                f"(`pip install kaggle`), so {KAGGLE_DATASET} cannot be downloaded. {OFFLINE_HINT}"
            )
        credentials = self.credentials()
        home = Path.home()
        files = [path for path in kaggle_credential_files(os.environ, home) if path.is_file()]
        if not credentials and not files:
            raise AirflowFailException(
                f"no Kaggle credentials: add the Airflow connection {self.kaggle_conn_id!r} "
                "(login = Kaggle user name, password = API key), set KAGGLE_USERNAME and "
                "KAGGLE_KEY (or KAGGLE_API_TOKEN) for Airflow, or put kaggle.json in ~/.kaggle. "
                f"{OFFLINE_HINT}"
            )
        return credentials, files

    def download(self, target_dir: str, dataset: str = KAGGLE_DATASET) -> str:
        """Download and unzip ``dataset`` into ``target_dir``; return its largest CSV's path.

        Fails the task without a retry when the client is missing, no credentials are configured
        or Kaggle refuses them; raises :class:`KaggleDownloadError` (retried) when Kaggle cannot
        be reached. Every message names the offline command; none quotes a secret.
        """
        from airflow.sdk.exceptions import AirflowFailException
        from airflow.sdk.log import mask_secret

        credentials, files = self._checked_credentials()
        secrets = [credentials[name] for name in SECRET_VARIABLES if credentials.get(name)]
        for secret in secrets:
            mask_secret(secret)  # Airflow's log masker redacts it from every task log line
        folder = Path(target_dir)
        folder.mkdir(parents=True, exist_ok=True)
        source = "credentials from Airflow/env" if credentials else f"the client's file {files[0]}"
        self.log.info("downloading Kaggle dataset %s into %s (%s)", dataset, folder, source)
        with environment(credentials):  # the client reads them from the environment
            self._fetch(dataset, folder, secrets)
        csv_files = sorted(folder.glob("*.csv"), key=lambda path: path.stat().st_size, reverse=True)
        if not csv_files:
            raise AirflowFailException(f"the Kaggle download left no CSV file in {folder}")
        return str(csv_files[0])

    def _fetch(self, dataset: str, folder: Path, secrets: list[str]) -> None:
        """Authenticate and download (credentials already in the environment)."""
        from airflow.sdk.exceptions import AirflowFailException

        # Importing the package authenticates, so it happens with the credentials in place.
        from kaggle.api.kaggle_api_extended import KaggleApi

        api: Any = KaggleApi()
        try:
            api.authenticate()
        except (Exception, SystemExit) as error:  # the client exits when it finds no credentials
            raise AirflowFailException(
                f"the Kaggle client could not use the configured credentials "
                f"({type(error).__name__}): check {self.kaggle_conn_id!r}, KAGGLE_USERNAME/"
                f"KAGGLE_KEY or kaggle.json. {OFFLINE_HINT}"
            ) from None
        try:
            api.dataset_download_files(dataset, path=str(folder), unzip=True, quiet=True)
        except (Exception, SystemExit) as error:
            status = getattr(getattr(error, "response", None), "status_code", None)
            detail = redact(f"{type(error).__name__}: {error}", secrets)
            if status in (401, 403):
                raise AirflowFailException(
                    f"Kaggle refused the credentials (HTTP {status}) for {dataset}: fix "
                    f"{self.kaggle_conn_id!r} or KAGGLE_USERNAME/KAGGLE_KEY. {OFFLINE_HINT}"
                ) from None
            raise KaggleDownloadError(
                f"downloading {dataset} failed ({detail}); is there no network? {OFFLINE_HINT}"
            ) from None
