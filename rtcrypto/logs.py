"""Logging set-up shared by every service and command: one line per event, key=value context."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(service: str, level: str | None = None) -> logging.Logger:
    """Configure the root logger once; return the service's logger.

    Format: ``2026-11-27T20:00:00 INFO ingest message key=value``. ``RTC_LOG_LEVEL`` sets the level.
    """
    chosen = (level or os.environ.get("RTC_LOG_LEVEL") or "INFO").upper()
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
