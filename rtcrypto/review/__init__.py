"""The live "Trade review" page's data: one JSON payload per range, symbol and trading mode.

``request`` validates the page's query (range on the trader's clock, symbol, mode) into a
:class:`ReviewRequest` or a :class:`ReviewRequestError` (a 4xx message); ``payload`` builds the
page's JSON from :func:`rtcrypto.report.data.review_data` (the series ``rtc report`` draws too)
plus the platform's state (``platform_state``: the supervisor's restarts from Elasticsearch, each
service's current health as the supervisor judges it, the current forecast's publish metrics).
The FastAPI app that serves it inside the Airflow UI is ``plugins/rtc_airflow/review_app.py``.
This package may import every package below it (``report``, ``supervision``, ``search``,
``forecast``, root utilities); never ``platform`` or ``cli``.
"""

from __future__ import annotations

from rtcrypto.review.payload import page_payload
from rtcrypto.review.request import ReviewRequest, ReviewRequestError, parse_request

__all__ = ["ReviewRequest", "ReviewRequestError", "page_payload", "parse_request"]
