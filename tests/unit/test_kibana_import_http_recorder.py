"""Kibana cannot run here (it is on no package registry this project reaches), so the saved-object
import is checked against a local HTTP recorder: a real HTTP server on 127.0.0.1 that records each
request and answers what Kibana's import API answers.

What this proves: the request the client sends (method, path, query, ``kbn-xsrf``, basic auth,
the multipart upload of the NDJSON file, the space prefix) and how Kibana's answers are handled
(success, ``success: false`` with per-object errors, HTTP errors, nothing listening).
What it does not prove: that a real Kibana 9.x accepts these saved objects and renders them;
the NDJSON's structure is checked in test_kibana_objects.py, its queries against the real
Elasticsearch node in tests/integration/test_search_indexing.py.
"""

from __future__ import annotations

import base64
import email
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from rtcrypto.search.kibana import (
    SAVED_OBJECTS_FILE,
    KibanaImportError,
    KibanaUnavailableError,
    import_saved_objects,
    saved_objects,
)

PASSWORD = "s3cret-kibana-pw"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """What the recorder received, and what it answers next (status, JSON body)."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    status: int = 200
    answer: dict[str, Any] = field(default_factory=dict)


def _kibana_success() -> dict[str, Any]:
    objects = saved_objects()
    return {
        "success": True,
        "successCount": len(objects),
        "successResults": [{"type": obj["type"], "id": obj["id"]} for obj in objects],
        "errors": [],
    }


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    state = Recorder(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length", "0"))
            state.requests.append(
                Recorded(
                    method="POST",
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=self.rfile.read(length),
                )
            )
            payload = json.dumps(state.answer).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    state.answer = _kibana_success()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _multipart_files(recorded: Recorded) -> list[tuple[str | None, str | None, bytes]]:
    """(field name, file name, content) of each part of a multipart/form-data body."""
    raw = f"Content-Type: {recorded.headers['content-type']}\r\n\r\n".encode() + recorded.body
    message = email.message_from_bytes(raw)
    assert message.is_multipart()
    return [
        (
            part.get_param("name", header="content-disposition"),
            part.get_filename(),
            part.get_payload(decode=True),
        )
        for part in message.get_payload()
    ]


def test_import_posts_the_ndjson_as_multipart_with_xsrf_and_basic_auth(recorder: Recorder) -> None:
    result = import_saved_objects(recorder.url, "elastic", SecretStr(PASSWORD))

    (request,) = recorder.requests
    assert request.method == "POST"
    assert request.path == "/api/saved_objects/_import"
    assert request.query == {"overwrite": ["true"]}
    assert request.headers["kbn-xsrf"] == "true"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    expected_auth = base64.b64encode(f"elastic:{PASSWORD}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected_auth}"
    ((name, filename, content),) = _multipart_files(request)
    assert (name, filename) == ("file", "trade_review.ndjson")
    assert content == SAVED_OBJECTS_FILE.read_bytes()
    assert result.success_count == len(saved_objects())
    assert ("dashboard", "rtc-trade-review") in result.objects


def test_without_a_user_no_authorization_is_sent(recorder: Recorder) -> None:
    import_saved_objects(recorder.url)

    assert "authorization" not in recorder.requests[0].headers


def test_a_space_prefixes_the_path(recorder: Recorder) -> None:
    import_saved_objects(recorder.url + "/", "elastic", PASSWORD, space_id="trading desk")

    assert recorder.requests[0].path == "/s/trading%20desk/api/saved_objects/_import"


def test_success_false_raises_with_each_failed_object_and_reason(recorder: Recorder) -> None:
    recorder.answer = {
        "success": False,
        "successCount": 8,
        "errors": [
            {
                "id": "rtc-price-vs-forecast",
                "type": "visualization",
                "error": {
                    "type": "missing_references",
                    "references": [{"type": "index-pattern", "id": "rtc-price-forecast"}],
                },
            },
            {
                "id": "rtc-trade-review",
                "type": "dashboard",
                "error": {"type": "unknown", "message": "bad panelsJSON", "statusCode": 400},
            },
        ],
    }

    with pytest.raises(KibanaImportError) as raised:
        import_saved_objects(recorder.url, "elastic", PASSWORD)

    message = str(raised.value)
    assert "8 imported" in message
    assert (
        "visualization:rtc-price-vs-forecast missing references (index-pattern:rtc-price-forecast)"
        in message
    )
    assert "dashboard:rtc-trade-review unknown: bad panelsJSON" in message
    assert [error["id"] for error in raised.value.errors] == [
        "rtc-price-vs-forecast",
        "rtc-trade-review",
    ]


def test_an_http_error_names_the_status_and_kibanas_message_but_not_the_password(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    recorder.status = 401
    recorder.answer = {
        "statusCode": 401,
        "error": "Unauthorized",
        "message": "[security_exception] unable to authenticate user",
    }

    with caplog.at_level(logging.DEBUG), pytest.raises(KibanaImportError) as raised:
        import_saved_objects(recorder.url, "elastic", SecretStr(PASSWORD))

    assert "HTTP 401" in str(raised.value)
    assert "unable to authenticate user" in str(raised.value)
    assert "RTC_KIBANA_PASSWORD" in str(raised.value)
    assert PASSWORD not in str(raised.value)
    assert PASSWORD not in caplog.text


def test_nothing_listening_raises_unavailable_with_what_to_do() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(KibanaUnavailableError, match="RTC_KIBANA_URL"):
        import_saved_objects(f"http://127.0.0.1:{port}", "elastic", PASSWORD, timeout_s=5)
