"""Where Kaggle credentials are, without reading them and without network or database.

Standard library only: the DAG ``history_download`` calls ``kaggle_credentials_location`` while
Airflow parses it (``is_paused_upon_creation``: the weekly download is unpaused on creation only
when it can succeed), and ``rtc status`` prints ``history_download_schedule_note``.

Looked at, in the official client's order: ``KAGGLE_USERNAME`` + ``KAGGLE_KEY``,
``KAGGLE_API_TOKEN``, then the files of ``kaggle_credential_files``. The Airflow connection
``kaggle_default`` also works for the download, but reading it needs Airflow's database, so it
is not looked at here: with only that connection, unpause the DAG once by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

HISTORY_DOWNLOAD_DAG = "history_download"


def kaggle_credential_files(environ: Mapping[str, str], home: Path) -> list[Path]:
    """Where the official client looks for credential files of its own, in its order.

    ``$KAGGLE_CONFIG_DIR/kaggle.json`` when that is set, else ``~/.kaggle/kaggle.json`` and the
    XDG ``kaggle/kaggle.json``; then the access-token files ``~/.kaggle/access_token[.txt]``.
    """
    config_dir = environ.get("KAGGLE_CONFIG_DIR")
    if config_dir:
        files = [Path(config_dir) / "kaggle.json"]
    else:
        xdg = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
        files = [home / ".kaggle" / "kaggle.json", xdg / "kaggle" / "kaggle.json"]
    return [*files, home / ".kaggle" / "access_token", home / ".kaggle" / "access_token.txt"]


def kaggle_credentials_location(environ: Mapping[str, str], home: Path) -> str | None:
    """Where credentials are (names only, never values), or None when there are none."""
    if environ.get("KAGGLE_USERNAME") and environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME and KAGGLE_KEY"
    if environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    for path in kaggle_credential_files(environ, home):
        try:
            if path.is_file() and path.stat().st_size > 0:
                return str(path)
        except OSError:
            continue
    return None


def history_download_schedule_note(environ: Mapping[str, str], home: Path) -> str:
    """One line for ``rtc status``: whether ``history_download`` runs on its own, and why."""
    location = kaggle_credentials_location(environ, home)
    if location is not None:
        return (
            f"{HISTORY_DOWNLOAD_DAG}: unpaused on creation, weekly (Kaggle credentials: {location})"
        )
    return (
        f"{HISTORY_DOWNLOAD_DAG}: paused, because no Kaggle credentials were found "
        "(KAGGLE_USERNAME + KAGGLE_KEY, KAGGLE_API_TOKEN or ~/.kaggle/kaggle.json); add them and "
        f"unpause it in the Airflow UI (`airflow dags unpause {HISTORY_DOWNLOAD_DAG}`), or import "
        "offline with `rtc history import FILE`"
    )
