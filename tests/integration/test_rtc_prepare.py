"""``rtc prepare`` (docker-compose's ``bootstrap`` service) against the real local Elasticsearch.

Run as docker-compose runs it: a child process configured only by ``RTC_*`` variables, with the
Elasticsearch URL carrying the user and password (compose's ``RTC_SEARCH_URL``). The local node
has no security module, so it ignores the credentials: checked here is that such a URL works and
its password is never printed (that the client sends it as basic auth: tests/unit/test_compose.py). The forecast step finds a version already current (as on
a second ``rtc up``): training is covered by tests/integration/test_platform_up.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from rtcrypto.config import Settings
from rtcrypto.search.client import search_client
from rtcrypto.search.indices import INDEX_SPECS
from tests.helpers import free_port

pytestmark = pytest.mark.integration

PASSWORD = "Prepare0secret9"


@pytest.fixture
def prefix(search_node: str) -> Iterator[str]:
    """A fresh index prefix; its indices and templates are removed afterwards."""
    name = f"rtcp{uuid.uuid4().hex[:8]}"
    yield name
    client = search_client(Settings(search_url=search_node))
    try:
        found = client.indices.get(index=f"{name}-*", expand_wildcards="all", allow_no_indices=True)
        if found.body:
            client.indices.delete(index=",".join(sorted(found.body)))
        for spec in INDEX_SPECS.values():
            client.options(ignore_status=404).indices.delete_index_template(
                name=spec.template_name(name)
            )
    finally:
        client.close()


def _prepare(home: Path, search_url: str, prefix: str) -> subprocess.CompletedProcess[str]:
    forecast_dir = home / "forecast"
    forecast_dir.mkdir(parents=True, exist_ok=True)
    (forecast_dir / "current").write_text("already-current\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTC_")}
    env.update(
        RTC_HOME=str(home),
        RTC_SEARCH_URL=search_url,
        RTC_SEARCH_INDEX_PREFIX=prefix,
    )
    return subprocess.run(
        [sys.executable, "-m", "rtcrypto.cli.main", "prepare"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _with_credentials(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://rtc_app:{PASSWORD}@{parts.hostname}:{parts.port}"


def test_prepare_imports_history_and_provisions_indices_idempotently(
    search_node: str, prefix: str, tmp_path: Path
) -> None:
    url = _with_credentials(search_node)
    first = _prepare(tmp_path, url, prefix)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "10 real minute files (10 imported now" in first.stdout
    assert "already-current already current" in first.stdout
    assert f"templates: {len(INDEX_SPECS)} created" in first.stdout
    assert "Kibana: skipped (RTC_KIBANA_URL not set" in first.stdout

    second = _prepare(tmp_path, url, prefix)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "(0 imported now, 0 minutes; 10 already there)" in second.stdout
    assert f"0 created, 0 updated, {len(INDEX_SPECS)} unchanged; indices created: 0" in (
        second.stdout
    )
    assert PASSWORD not in first.stdout + first.stderr + second.stdout + second.stderr


def test_prepare_fails_with_one_line_when_elasticsearch_does_not_answer(tmp_path: Path) -> None:
    result = _prepare(tmp_path, f"http://rtc_app:{PASSWORD}@127.0.0.1:{free_port()}", "rtc")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Elasticsearch does not answer" in errors[0]
    assert PASSWORD not in result.stdout + result.stderr
