"""The Trade review app (plugins/rtc_airflow/review_app.py) through FastAPI's test client.

Refusals are Airflow's own: the real SimpleAuthManager is initialised on a temporary passwords
file and JWT secret. Without a login every route answers 401 with no data, an invalid token 403,
and the page redirects to Airflow's login page. A valid token is checked against Airflow's
metadata database (revoked tokens), which a unit test does not have: the tests of what a
logged-in user gets replace the login dependency with a stand-in user (``dependency_overrides``).
Real logins reach the app in tests/integration/test_airflow_standalone.py (REST token) and in the
running platform's browser test (tests/integration/test_platform_up.py). The pinned chart library's bytes are checked against
the npm registry's recorded hash.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import REPO

if str(REPO / "plugins") not in sys.path:  # as Airflow puts [core] plugins_folder on sys.path
    sys.path.append(str(REPO / "plugins"))

from rtc_airflow import review_app  # noqa: E402  (imports no Airflow module)

ECHARTS = review_app.STATIC_DIR / "vendor" / "echarts-6.1.0"
# sha256 of dist/echarts.min.js in https://registry.npmjs.org/echarts/-/echarts-6.1.0.tgz
# (npm integrity sha512-q0yaFPggC9FUdsWH4blavRWFmxdrIodbkoKNAjJudAI6CA9gNPxHtV2RcZNEepZVlk4yvBYkOkbk6HIVpIyHZA==)
ECHARTS_SHA256 = "b66b25aeb4df84e33199dc21694014d336d222cbd9deb0e5a7c14bd6aa0d0fd0"


def _airflow_environment(patch: pytest.MonkeyPatch, home: Path) -> None:
    """As tests/unit/test_dag_integrity.py sets it before Airflow's first import in a process
    (Airflow reads it once): nothing lands in ~/airflow, the plugins folder is this repo's."""
    patch.setenv("AIRFLOW_HOME", str(home))
    patch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    patch.setenv("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))


@pytest.fixture(scope="module")
def admin_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Airflow's SimpleAuthManager, initialised here; a JWT of its admin user."""
    folder = tmp_path_factory.mktemp("airflow-auth")
    with pytest.MonkeyPatch.context() as patch:
        _airflow_environment(patch, folder)
        from airflow.api_fastapi.app import init_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(folder / "pw.json"))
        patch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_hex(64))
        manager = init_auth_manager()
        yield manager.generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))


@pytest.fixture
def anonymous(admin_token: str) -> Iterator[TestClient]:
    with TestClient(review_app.app) as client:
        yield client


@pytest.fixture
def logged_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, admin_token: str
) -> Iterator[TestClient]:
    """A client whose login is a stand-in user; settings on a closed Elasticsearch."""
    from tests.helpers import free_port

    _airflow_environment(monkeypatch, tmp_path / "airflow")  # the app reads Airflow connections
    monkeypatch.setenv("RTC_HOME", str(tmp_path))
    monkeypatch.setenv("RTC_FEED", "live")  # the wall clock: no simulator to ask
    monkeypatch.setenv("RTC_SYMBOLS", "BTCUSD")
    monkeypatch.setenv("RTC_SEARCH_URL", f"http://127.0.0.1:{free_port()}")
    for login in (review_app.authenticated_user, review_app.page_user):
        review_app.app.dependency_overrides[login] = lambda: "stand-in"
    try:
        with TestClient(review_app.app) as client:
            yield client
    finally:
        review_app.app.dependency_overrides.clear()


@pytest.mark.parametrize(
    "path", ["/api/review", "/api/review?since=1h&symbol=BTCUSD", "/static/review.js"]
)
def test_without_a_login_every_route_is_401_and_carries_no_data(
    anonymous: TestClient, path: str
) -> None:
    response = anonymous.get(path)
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}


def test_an_invalid_token_is_refused(anonymous: TestClient) -> None:
    for headers in ({"Authorization": "Bearer not-a-jwt"}, {"Cookie": "_token=not-a-jwt"}):
        response = anonymous.get("/api/review", headers=headers)
        assert response.status_code == 403 and response.json() == {"detail": "Invalid JWT token"}


def test_the_page_without_a_login_redirects_to_airflows_login_and_back(
    anonymous: TestClient,
) -> None:
    response = anonymous.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/auth/login?next=%2Frtc-review%2F"


def test_the_page_with_a_login_is_served(logged_in: TestClient) -> None:
    response = logged_in.get("/")
    assert response.status_code == 200 and "<title>Trade review" in response.text
    assert response.headers["cache-control"] == "no-store"


def test_static_files_never_leave_their_folder(logged_in: TestClient) -> None:
    assert logged_in.get("/static/review.js").status_code == 200
    for path in ("/static/../review_app.py", "/static/%2e%2e/review_app.py", "/static/nothing.js"):
        assert logged_in.get(path).status_code == 404


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("symbol=DOGEUSD", "unknown symbol 'DOGEUSD'"),
        ("mode=demo", "unknown mode 'demo'"),
        ("since=tomorrow", "cannot read the time 'tomorrow'"),
        ("since=2024-10-28T12:00Z&until=2024-10-28T11:00Z", "the range is empty"),
    ],
)
def test_bad_parameters_are_400_with_a_message(
    logged_in: TestClient, query: str, message: str
) -> None:
    response = logged_in.get(f"/api/review?{query}")
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert "Traceback" not in response.text


def test_elasticsearch_down_is_503_with_what_to_do(logged_in: TestClient) -> None:
    response = logged_in.get("/api/review?since=1h")
    assert response.status_code == 503
    assert "Elasticsearch does not answer" in response.json()["detail"]


def test_the_plugin_mounts_the_app_and_puts_it_in_the_navigation(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        _airflow_environment(patch, tmp_path)
        from rtc_airflow import review_plugin

    plugin = review_plugin.TradeReviewPlugin
    assert plugin.fastapi_apps == [
        {"app": review_app.app, "url_prefix": "/rtc-review", "name": "Trade review"}
    ]
    (view,) = plugin.external_views
    assert view["name"] == "Trade review" and view["destination"] == "nav"
    assert view["href"] == "/rtc-review/" and view["url_route"] == "trade-review"
    assert "category" not in view  # a top-level entry, not under Browse or Admin


def test_the_chart_library_is_the_pinned_echarts_with_its_license() -> None:
    assert hashlib.sha256((ECHARTS / "echarts.min.js").read_bytes()).hexdigest() == ECHARTS_SHA256
    assert "Apache License" in (ECHARTS / "LICENSE").read_text()
    page = (review_app.STATIC_DIR / "review.html").read_text()
    assert 'src="static/vendor/echarts-6.1.0/echarts.min.js"' in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere


def test_invalid_settings_are_a_message_not_a_traceback(
    logged_in: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTC_FEED", "gemini")
    response = logged_in.get("/api/review")
    assert response.status_code == 500
    assert "RTC_FEED='gemini'" in response.json()["detail"] and "Traceback" not in response.text


def test_the_login_redirect_comes_back_to_the_same_range(anonymous: TestClient) -> None:
    response = anonymous.get("/?since=2024-10-28T00:00Z&until=now", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == (
        "/auth/login?next=%2Frtc-review%2F%3Fsince%3D2024-10-28T00%3A00Z%26until%3Dnow"
    )
