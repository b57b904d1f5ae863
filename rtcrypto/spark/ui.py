"""Where the Spark jobs' web UI answers (``RTC_SPARK_UI_ENABLED``, ``RTC_SPARK_UI_PORT``).

spark-submit gets the UI settings (``rtcrypto.spark.submit.submit_conf``); the UI binds to
``SPARK_LOCAL_IP`` (127.0.0.1). A taken port is not fatal: Spark binds the next free one, so
each job's driver records the address it really got in ``<run_dir>/spark-ui/<process>.url``
(``record_ui_address``, removed again on stop), and ``ui_status`` reads those for
``rtc status``. Nothing here imports pyspark.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rtcrypto.config import Settings, get_settings

LOOPBACK = "127.0.0.1"


def ui_address_file(process: str, settings: Settings | None = None) -> Path:
    """``<run_dir>/spark-ui/<process>.url``: the UI address of the job ``process``."""
    return (settings or get_settings()).run_dir / "spark-ui" / f"{process}.url"


def bound_url(ui_web_url: str, bind_host: str = LOOPBACK) -> str:
    """Spark's ``uiWebUrl`` (it names the driver's host name) as the address the UI is bound to,
    ``http://<bind_host>:<port>``; the UI binds to ``SPARK_LOCAL_IP``, else to every address."""
    parts = urlsplit(ui_web_url)
    host = LOOPBACK if bind_host in ("", "0.0.0.0") else bind_host
    return urlunsplit((parts.scheme or "http", f"{host}:{parts.port}", "", "", ""))


def record_ui_address(process: str, ui_web_url: str | None, settings: Settings) -> Path | None:
    """Write the job's UI address (None: the UI is off, nothing is written)."""
    if not ui_web_url:
        return None
    path = ui_address_file(process, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(bound_url(ui_web_url, os.environ.get("SPARK_LOCAL_IP", "")) + "\n")
    return path


def forget_ui_address(process: str, settings: Settings) -> None:
    """Remove the job's UI address (it stopped)."""
    ui_address_file(process, settings).unlink(missing_ok=True)


def ui_addresses(settings: Settings | None = None) -> dict[str, str]:
    """Process name -> UI address of every job that recorded one."""
    folder = ui_address_file("any", settings).parent
    if not folder.is_dir():
        return {}
    return {path.stem: path.read_text().strip() for path in sorted(folder.glob("*.url"))}


def answers(url: str, timeout_s: float = 5.0) -> bool:
    """True when ``url`` answers HTTP (any status) within ``timeout_s`` (a Spark UI page can take
    a second or more to render on a loaded machine: "not answering" must mean it is gone)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):  # noqa: S310 (a loopback http URL)
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def ui_status(settings: Settings | None = None) -> str:
    """One line for ``rtc status``: each job's UI address and whether it answers."""
    settings = settings or get_settings()
    if not settings.spark_ui_enabled:
        return "spark ui: off (RTC_SPARK_UI_ENABLED=false)"
    addresses = ui_addresses(settings)
    if not addresses:
        return f"spark ui: no job running (first port {settings.spark_ui_port})"
    shown = ", ".join(
        f"{process} {url}{'' if answers(url) else ' (not answering)'}"
        for process, url in addresses.items()
    )
    return f"spark ui: {shown}"
