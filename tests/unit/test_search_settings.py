"""Search and Kibana settings: the spool lives under the run dir, the index prefix is validated,
Kibana is skipped by default and its password never shows in a repr."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rtcrypto.config import Settings


def test_defaults(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert settings.search_index_prefix == "rtc"
    assert settings.search_spool_path == tmp_path / "run" / "search-spool"
    assert settings.search_bulk_batch_size == 500
    assert settings.search_flush_interval_s == 1.0
    assert settings.kibana_url is None


def test_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RTC_SEARCH_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("RTC_SEARCH_INDEX_PREFIX", "rtc2")
    monkeypatch.setenv("RTC_KIBANA_URL", "http://127.0.0.1:5601")
    monkeypatch.setenv("RTC_KIBANA_PASSWORD", "kibana-secret")
    settings = Settings()
    assert settings.search_spool_path == tmp_path / "spool"
    assert settings.search_index_prefix == "rtc2"
    assert settings.kibana_password is not None
    assert settings.kibana_password.get_secret_value() == "kibana-secret"
    assert "kibana-secret" not in repr(settings)


@pytest.mark.parametrize("prefix", ["RTC", "rtc-*", "-rtc", "r tc", ""])
def test_an_index_prefix_elasticsearch_would_refuse_is_rejected_by_name(prefix: str) -> None:
    with pytest.raises(ValidationError, match="search_index_prefix"):
        Settings(search_index_prefix=prefix)


@pytest.mark.parametrize("field", ["search_bulk_batch_size", "search_flush_interval_s"])
def test_batch_size_and_interval_must_be_positive(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: 0})
