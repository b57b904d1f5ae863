"""The "Trade review" page inside the Airflow UI: a FastAPI app Airflow's api-server mounts at
:data:`URL_PREFIX` (``fastapi_apps`` of :mod:`review_plugin`), shown in the UI's navigation
(``external_views``).

- ``GET /`` the page (``review_static/review.html``); without a login, a redirect to Airflow's
  login page that comes back here;
- ``GET /api/review?since=1h&until=now&symbol=BTCUSD&mode=all`` the page's JSON
  (:func:`rtcrypto.review.page_payload`); ``since`` / ``until`` as ``rtc report`` reads them, on
  the trader's clock;
- ``GET /static/<file>`` the page's script, style and the pinned chart library.

Every route needs an Airflow login (the api-server's JWT cookie ``_token`` or a bearer token),
checked by Airflow's own ``get_user`` and the auth manager's ``WEBSITE`` view permission: plugin
apps are not protected by default. Without one: 401 (403 for an invalid token or no permission),
never data. A bad parameter is a 400 with a message; Elasticsearch down is a 503; no traceback
reaches the browser. Elasticsearch's address and credentials stay in this process (the
connection ``elasticsearch_default``, else ``RTC_SEARCH_URL``). ``rtcrypto`` is imported inside
handlers only: Airflow imports this file in every component.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

log = logging.getLogger(__name__)

URL_PREFIX = "/rtc-review"
STATIC_DIR = Path(__file__).resolve().parent / "review_static"
PAGE = STATIC_DIR / "review.html"
STATIC_CACHE = "private, max-age=3600"

app = FastAPI(
    title="Real-Time Crypto trade review",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


async def authenticated_user(request: Request) -> Any:
    """The Airflow user of this request (Airflow's ``get_user``: bearer token, else the UI's
    cookie), who must be allowed the ``WEBSITE`` view; else HTTPException 401 / 403."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    user = await get_user(request, None, credentials)
    if not get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise HTTPException(status_code=403, detail="this user may not view the Airflow UI")
    return user


AirflowUser = Annotated[Any, Depends(authenticated_user)]


def _login_url(next_url: str) -> str:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=next_url)


async def page_user(request: Request) -> Any | None:
    """The user of :func:`authenticated_user`, or None without a login (401)."""
    try:
        return await authenticated_user(request)
    except HTTPException as error:
        if error.status_code == 401:
            return None
        raise


def _warm_imports() -> None:
    """Import what the data route needs (pandas, the Elasticsearch client, rtcrypto.review: a few
    seconds on a busy machine) while the browser loads the page's script, so that the page's
    first data request does not wait for it. Idempotent; errors surface in the data route."""
    try:
        import rtcrypto.review  # noqa: F401
        import rtcrypto.search.client  # noqa: F401
    except Exception as error:  # the data route reports it properly
        log.debug("trade review: warm-up import failed: %s", error)


@app.get("/", include_in_schema=False, response_model=None)
def page(request: Request, user: Annotated[Any | None, Depends(page_user)]) -> Response:
    """The page, or Airflow's login page (coming back to this URL, query included) for a request
    without a login."""
    if user is None:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(_login_url(f"{URL_PREFIX}/{query}"), status_code=303)
    threading.Thread(target=_warm_imports, name="rtc-review-warm-up", daemon=True).start()
    return FileResponse(PAGE, media_type="text/html", headers={"Cache-Control": "no-store"})


@app.get("/static/{name:path}", include_in_schema=False)
def static(name: str, _user: AirflowUser) -> FileResponse:
    """A file of ``review_static/`` (never outside it)."""
    path = (STATIC_DIR / name).resolve()
    if not path.is_file() or STATIC_DIR not in path.parents:
        raise HTTPException(status_code=404, detail=f"no such file: {name}")
    return FileResponse(path, headers={"Cache-Control": STATIC_CACHE})


def _search_settings() -> Any:
    """The settings with the connection ``elasticsearch_default``'s values in place, as the
    ``trade_report`` DAG reads them (``RTC_*`` alone when the connection is not defined)."""
    from rtc_airflow.hooks import SearchHook

    return SearchHook().settings


@app.get("/api/review")
def review(
    _user: AirflowUser,
    since: str | None = None,
    until: str | None = None,
    symbol: str | None = None,
    mode: str | None = None,
) -> JSONResponse:
    """The page's data for one range (see :func:`rtcrypto.review.page_payload`)."""
    from rtcrypto.config_checks import SettingsError
    from rtcrypto.report.model import ReportError
    from rtcrypto.review import ReviewRequestError, page_payload, parse_request
    from rtcrypto.search.client import SearchError, SearchUnavailableError, search_client

    try:
        settings = _search_settings()
    except SettingsError as error:
        log.error("trade review: %s", error)
        raise HTTPException(status_code=500, detail=f"the api-server's {error}") from None
    client = search_client(settings, max_retries=0)
    try:
        request = parse_request(
            settings, client, since=since, until=until, symbol=symbol, mode=mode
        )
        payload = page_payload(settings, client, request)
    except ReviewRequestError as error:
        raise HTTPException(status_code=400, detail=str(error)) from None
    except SearchUnavailableError as error:
        raise HTTPException(status_code=503, detail=str(error)) from None
    except (SearchError, ReportError) as error:
        log.warning("trade review: %s", error)
        raise HTTPException(status_code=502, detail=str(error)) from None
    finally:
        client.close()
    return JSONResponse(payload, headers={"Cache-Control": "no-store"})
