"""Credentials never reach what is printed or logged: URLs are redacted, and a ``user:password@``
in ``RTC_SEARCH_URL`` / ``RTC_KIBANA_URL`` moves into its own settings (issue 10, Secrets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from rtcrypto import supervision as services
from rtcrypto.config import Settings
from rtcrypto.redact import redact_url, split_credentials, url_userinfo
from tests.helpers import REPO, free_port

SECRET = "Sh0uldNeverBePrinted"

userinfo_text = st.text(min_size=1, max_size=30)
hosts = st.sampled_from(["127.0.0.1", "elasticsearch", "[::1]", "kibana.example.org"])
paths = st.sampled_from(["", "/", "/x/y", "/_cluster/health?pretty=true"])


@given(user=userinfo_text, password=userinfo_text, host=hosts, port=st.integers(1, 65535))
def test_redact_url_drops_exactly_the_userinfo(
    user: str, password: str, host: str, port: int
) -> None:
    for path in ("", "/", "/x/y?z=1"):
        clean = f"http://{host}:{port}{path}"
        with_userinfo = f"http://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}"
        assert redact_url(with_userinfo + path) == clean
        assert redact_url(clean) == clean
        assert url_userinfo(with_userinfo + path) == (user, password)


@given(text=st.text(max_size=60))
def test_redact_url_never_raises_and_keeps_no_userinfo(text: str) -> None:
    redacted = redact_url(text)
    assert isinstance(redacted, str)
    assert not redacted.startswith("http://") or "@" not in redacted.split("/")[2]


def test_a_password_in_the_search_url_moves_into_its_own_settings() -> None:
    settings = Settings(search_url=f"http://rtc_app:{SECRET}@127.0.0.1:9200")
    assert settings.search_url == "http://127.0.0.1:9200"
    assert settings.search_username == "rtc_app"
    assert settings.search_password == SecretStr(SECRET)
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    kibana = Settings(kibana_url=f"http://elastic:{quote(SECRET + '@/', safe='')}@kibana:5601")
    assert kibana.kibana_url == "http://kibana:5601"
    assert kibana.kibana_username == "elastic"
    assert kibana.kibana_password == SecretStr(SECRET + "@/")


def test_a_url_naming_other_credentials_than_the_settings_is_refused() -> None:
    with pytest.raises(ValidationError, match="RTC_SEARCH_URL carries a password and RTC_SEARCH_"):
        Settings(search_url=f"http://u:{SECRET}@h:9200", search_password="other")
    with pytest.raises(ValidationError, match="RTC_KIBANA_USERNAME says 'b'"):
        Settings(kibana_url="http://a:x@h:5601", kibana_username="b")
    # the same credentials twice are fine
    url, user, password = split_credentials("search", "http://u:p@h", "u", SecretStr("p"))
    assert (url, user, password) == ("http://h", "u", SecretStr("p"))


def test_a_service_started_with_the_url_form_still_gets_the_password() -> None:
    """settings_env passes RTC_SEARCH_URL without userinfo: the password goes as its own
    variable in the child's environment, never in its command line."""
    settings = Settings(search_url=f"http://rtc_app:{SECRET}@127.0.0.1:9200")
    launch = services.get_service("trader").launch(settings)
    assert SECRET not in " ".join(launch.command)
    assert launch.env["RTC_SEARCH_URL"] == "http://127.0.0.1:9200"
    assert launch.env["RTC_SEARCH_PASSWORD"] == SECRET
    child = subprocess.run(
        [sys.executable, "-c", "from rtcrypto.config import Settings; s = Settings(); "
         "print(s.search_username, s.search_password.get_secret_value())"],
        env={**os.environ, **launch.env, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert child.stdout.split() == ["rtc_app", SECRET]


def test_rtc_up_summary_prints_the_search_url_without_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rtcrypto.cli.platform import print_summary

    print_summary(Settings(home=tmp_path, search_url=f"http://rtc_app:{SECRET}@127.0.0.1:9200"))
    out = capsys.readouterr().out
    assert "Elasticsearch  http://127.0.0.1:9200  indices" in out
    assert SECRET not in out


def test_kibana_errors_name_the_url_without_its_password() -> None:
    from rtcrypto.search.kibana import KibanaUnavailableError, import_saved_objects

    url = f"http://elastic:{SECRET}@127.0.0.1:{free_port()}"
    with pytest.raises(KibanaUnavailableError) as error:
        import_saved_objects(url, timeout_s=2.0)
    assert SECRET not in str(error.value)
    assert f"http://127.0.0.1:{url.rsplit(':', 1)[1]}" in str(error.value)


def test_search_provision_fallback_hosts_carry_no_password(tmp_path: Path) -> None:
    """search_provision logs its hosts: from RTC_SEARCH_URL they hold no userinfo, and the
    credentials go to the client as basic auth."""
    code = (
        "import json, sys; sys.path.insert(0, 'dags'); import search_provision as m; "
        "hosts, args, origin = m._elasticsearch_hosts(); "
        "print(json.dumps({'hosts': hosts, 'auth': args.get('basic_auth'), 'origin': origin}))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "RTC_SEARCH_URL": f"http://rtc_app:{SECRET}@127.0.0.1:9200",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["origin"] == "RTC_SEARCH_URL"
    assert found["hosts"] == ["http://127.0.0.1:9200"]
    assert found["auth"] == ["rtc_app", SECRET]


def test_rtc_stack_status_prints_the_search_url_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from rtcrypto.cli.main import app
    from rtcrypto.config import get_settings

    port = free_port()
    monkeypatch.setenv("RTC_HOME", str(tmp_path))
    monkeypatch.setenv("RTC_SEARCH_URL", f"http://rtc_app:{SECRET}@127.0.0.1:{port}")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "elasticsearch.pid").write_text(f"{os.getpid()}\n")  # a live pid: "running"
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["stack", "status"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert f"search    http://127.0.0.1:{port}: not answering" in result.output
    assert SECRET not in result.output
