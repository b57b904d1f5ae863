"""The Airflow plugin of the "Trade review" page: the FastAPI app of :mod:`review_app` mounted at
``/rtc-review`` on the api-server, and a "Trade review" entry in the UI's navigation that shows
it inside the UI (``external_views`` with a ``url_route``: the page at ``/plugin/trade-review``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from rtc_airflow.review_app import URL_PREFIX, app


class TradeReviewPlugin(AirflowPlugin):
    """Registers the Trade review app and its navigation entry."""

    name = "rtc_trade_review"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Trade review"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {
            "name": "Trade review",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "trade-review",
        }
    ]
