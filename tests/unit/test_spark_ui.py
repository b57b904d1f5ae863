"""The Spark UI's address as ``rtc status`` prints it (``rtcrypto.spark.ui``)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtcrypto.config import Settings
from rtcrypto.spark import ui


@pytest.fixture
def answering_url() -> Iterator[str]:
    """A loopback HTTP server (any page answers 404: an answer all the same)."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_recorded_address_is_the_bound_one_and_is_forgotten_on_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path)
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    path = ui.record_ui_address("liquidity", "http://some-host.example:4041", settings)
    assert path == settings.run_dir / "spark-ui" / "liquidity.url"
    assert ui.ui_addresses(settings) == {"liquidity": "http://127.0.0.1:4041"}
    assert ui.record_ui_address("bars", None, settings) is None  # UI off: nothing recorded
    ui.forget_ui_address("liquidity", settings)
    assert ui.ui_addresses(settings) == {}


def test_bound_url_names_the_address_spark_bound() -> None:
    assert ui.bound_url("http://host:4040", "127.0.0.1") == "http://127.0.0.1:4040"
    assert ui.bound_url("http://host:4042", "10.0.0.5") == "http://10.0.0.5:4042"
    assert ui.bound_url("http://host:4040", "") == "http://127.0.0.1:4040"  # all addresses


def test_status_line_shows_each_jobs_ui_and_whether_it_answers(
    tmp_path: Path, answering_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path)
    assert ui.ui_status(settings) == "spark ui: no job running (first port 4040)"
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    ui.record_ui_address("liquidity", answering_url, settings)
    ui.record_ui_address("bars", "http://host:1", settings)  # a job that died without cleanup
    assert ui.ui_status(settings) == (
        f"spark ui: bars http://127.0.0.1:1 (not answering), liquidity {answering_url}"
    )
    off = Settings(home=tmp_path, spark_ui_enabled=False)
    assert ui.ui_status(off) == "spark ui: off (RTC_SPARK_UI_ENABLED=false)"


def test_the_ui_port_setting_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="spark_ui_port"):
        Settings(home=tmp_path, spark_ui_port=80)
