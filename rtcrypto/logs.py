"""Logging set-up shared by every service and command: one line per event, key=value context."""

from __future__ import annotations

import logging
import sys


def setup_logging(service: str, level: str | None = None) -> logging.Logger:
    """Configure the root logger once; return the service's logger.

    Format: ``2026-11-27T20:00:00 INFO ingest message key=value``. ``level`` is a level name
    (callers pass ``settings.log_level``, ``RTC_LOG_LEVEL``); None: the settings' level, else INFO.
    """
    chosen = (level or _settings_log_level() or "INFO").upper()
    root = logging.getLogger()
    if not getattr(root, "_rtc_configured", False):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S")
        )
        root.handlers[:] = [handler]
        root._rtc_configured = True  # type: ignore[attr-defined]
        # kafka-python is chatty at INFO about every connection.
        logging.getLogger("kafka").setLevel(logging.WARNING)
        # the Elasticsearch client logs every request at INFO (a bulk per second)
        logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    root.setLevel(chosen)
    return logging.getLogger(service)


def _settings_log_level() -> str | None:
    """``Settings.log_level`` (``RTC_LOG_LEVEL``), or None when unset or the settings are invalid
    (the caller reports invalid settings itself, naming each variable)."""
    from rtcrypto.config import get_settings
    from rtcrypto.config_checks import SettingsError

    try:
        return get_settings().log_level
    except SettingsError:
        return None
