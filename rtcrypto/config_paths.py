"""The paths ``Settings`` derives from ``RTC_HOME`` and the optional per-path settings.

A mixin of :class:`rtcrypto.config.Settings` (which declares the fields these read); it keeps the
settings module to the variables themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING


class DerivedPaths:
    """Where each part keeps its state under ``home`` unless its own setting says otherwise."""

    if TYPE_CHECKING:  # fields of Settings
        home: Path
        search_spool_dir: Path | None
        history_dir: Path | None
        forecast_dir: Path | None
        kill_switch_file: Path | None
        airflow_home: Path | None

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def lib_dir(self) -> Path:
        return self.home / "lib"

    @property
    def search_spool_path(self) -> Path:
        """Spool and dead-letter files of the bulk writer: ``search_spool_dir`` or <run>/search-spool."""
        return self.search_spool_dir or self.run_dir / "search-spool"

    @property
    def trader_dir(self) -> Path:
        """The trader's journal and the paper exchange's account."""
        return self.home / "trader"

    @property
    def history_path(self) -> Path:
        """The partitioned minute-bar history: ``history_dir`` or ``<home>/history``."""
        return self.history_dir or self.home / "history"

    @property
    def forecast_path(self) -> Path:
        """Versioned forecasts and the current pointer: ``forecast_dir`` or ``<home>/forecast``."""
        return self.forecast_dir or self.home / "forecast"

    @property
    def simulator_dir(self) -> Path:
        """State of the simulator `rtc up` starts (its replay window): ``<home>/simulator``."""
        return self.home / "simulator"

    @property
    def downloads_dir(self) -> Path:
        """Downloaded data sets (the Kaggle history): ``<home>/downloads``."""
        return self.home / "downloads"

    @property
    def reports_dir(self) -> Path:
        """Trade reports (`rtc report`, the trade_report DAG): ``<home>/reports``."""
        return self.home / "reports"

    @property
    def kill_switch_path(self) -> Path:
        return self.kill_switch_file or self.home / "KILL"

    @property
    def airflow_home_dir(self) -> Path:
        """AIRFLOW_HOME of the local Airflow: ``airflow_home`` or ``<home>/airflow``."""
        return self.airflow_home or self.home / "airflow"
