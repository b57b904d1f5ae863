"""Import the "Trade review" saved objects into Kibana (``kibana/trade_review.ndjson``).

``POST <kibana_url>/api/saved_objects/_import?overwrite=true`` with the NDJSON file as a
multipart upload, the ``kbn-xsrf`` header Kibana requires on every write, and HTTP basic auth
when a user name is given. Importing again overwrites the same objects (their ids are fixed),
so it is idempotent. Kibana answers 200 even when some objects fail; its ``success`` flag and
``errors`` list decide, and a failure raises :class:`KibanaImportError` naming each object.

The objects (data views over ``rtc-*`` and per index; line charts of cumulative profit,
liquidity ratio, depth imbalance, price against forecast, forecast price per version, buys and
sells, equity; tables of orders, restarts and heartbeats; the dashboard) target the default
index prefix ``rtc``. Each chart and table aggregates and shows what the request body of the
same name in :mod:`rtcrypto.search.queries` does (``tests/unit/test_kibana_objects.py`` holds
them to it); the trade review reads its documents with that module's filter too. Their
migration versions are Kibana 9's (``tests/unit/test_kibana9_structure.py`` names the sources).
Kibana cannot run on the machines this project is tested on: the objects are checked for
structure and the import against a recorded HTTP exchange, never rendered there.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from rtcrypto.redact import redact_url, url_userinfo

logger = logging.getLogger(__name__)

SAVED_OBJECTS_FILE = Path(__file__).resolve().parent / "kibana" / "trade_review.ndjson"
IMPORT_PATH = "/api/saved_objects/_import"


class KibanaError(Exception):
    """Kibana could not be reached or refused the request."""


class KibanaUnavailableError(KibanaError):
    """Nothing answers at the Kibana URL."""


class KibanaImportError(KibanaError):
    """Kibana answered, but did not import every object (``errors`` holds its reasons)."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


@dataclass(frozen=True)
class ImportResult:
    """Kibana's answer to a successful import."""

    success_count: int
    objects: list[tuple[str, str]]  # (type, id) of each imported object


def multipart_body(filename: str, content: bytes, boundary: str) -> bytes:
    """A ``multipart/form-data`` body with one file field named ``file`` (what Kibana reads)."""
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/ndjson\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode()


def _basic_auth(username: str, password: str | SecretStr | None) -> str:
    secret = password.get_secret_value() if isinstance(password, SecretStr) else password or ""
    token = base64.b64encode(f"{username}:{secret}".encode()).decode("ascii")
    return f"Basic {token}"


def _describe_errors(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors[:10]:
        detail = error.get("error") or {}
        kind = detail.get("type", "unknown")
        if kind == "missing_references":
            missing = ", ".join(
                f"{ref.get('type')}:{ref.get('id')}" for ref in detail.get("references", [])
            )
            kind = f"missing references ({missing})"
        elif detail.get("message"):
            kind = f"{kind}: {detail['message']}"
        parts.append(f"{error.get('type')}:{error.get('id')} {kind}")
    more = f" (+{len(errors) - 10} more)" if len(errors) > 10 else ""
    return "; ".join(parts) + more


def import_saved_objects(
    kibana_url: str,
    username: str | None = None,
    password: str | SecretStr | None = None,
    *,
    path: Path = SAVED_OBJECTS_FILE,
    space_id: str | None = None,
    timeout_s: float = 30.0,
) -> ImportResult:
    """Import ``path`` (NDJSON saved objects) into Kibana at ``kibana_url``, overwriting.

    Raises :class:`KibanaUnavailableError` if nothing answers, :class:`KibanaImportError` if
    Kibana refuses the request (HTTP error: status and message) or reports ``success: false``
    (each failed object with its reason). The password is sent, never logged; a
    ``user:password@`` in ``kibana_url`` is used when ``username`` is not given, never printed.
    """
    url_user, url_password = url_userinfo(kibana_url)
    if username is None and url_user is not None:
        username, password = url_user, url_password
    base = redact_url(kibana_url).rstrip("/")
    if space_id:
        base += f"/s/{quote(space_id, safe='')}"
    url = f"{base}{IMPORT_PATH}?overwrite=true"
    boundary = f"rtcrypto-{uuid.uuid4().hex}"
    body = multipart_body(path.name, path.read_bytes(), boundary)
    headers = {
        "kbn-xsrf": "true",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Accept": "application/json",
    }
    if username:
        headers["Authorization"] = _basic_auth(username, password)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    logger.info("importing Kibana saved objects %s into %s (user %s)", path.name, base, username)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read()
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace")[:1000]
        try:
            message = json.loads(detail).get("message", detail)
        except ValueError:
            message = detail
        hint = " (check RTC_KIBANA_USERNAME / RTC_KIBANA_PASSWORD)" if error.code == 401 else ""
        raise KibanaImportError(
            f"Kibana at {base} refused the saved-object import: HTTP {error.code}: {message}{hint}"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise KibanaUnavailableError(
            f"Kibana does not answer at {base} ({reason}); start it (docker-compose up kibana) "
            f"or unset RTC_KIBANA_URL to skip the import"
        ) from None
    try:
        answer = json.loads(raw)
    except ValueError:
        raise KibanaImportError(f"Kibana at {base} answered with non-JSON: {raw[:200]!r}") from None
    errors = list(answer.get("errors") or [])
    if not answer.get("success", False) or errors:
        raise KibanaImportError(
            f"Kibana at {base} did not import every saved object "
            f"({answer.get('successCount', 0)} imported): {_describe_errors(errors)}",
            errors,
        )
    objects = [
        (str(item.get("type")), str(item.get("id"))) for item in answer.get("successResults", [])
    ]
    logger.info("Kibana imported %d saved objects", int(answer.get("successCount", 0)))
    return ImportResult(success_count=int(answer.get("successCount", 0)), objects=objects)


def saved_objects(path: Path = SAVED_OBJECTS_FILE) -> list[dict[str, Any]]:
    """The saved objects of ``path``, one dict per NDJSON line (for checks and tools)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
