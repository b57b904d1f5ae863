"""Gemini private-API authentication: payload, headers, nonces, and the server-side check (pure).

A private request is a ``POST`` with an empty body. Its JSON payload (``request`` = the path,
``nonce``, then the endpoint's parameters) travels base64-encoded in ``X-GEMINI-PAYLOAD``, signed
in ``X-GEMINI-SIGNATURE`` = hex(HMAC-SHA384(the base64 text, key = API secret)). The server hashes
the base64 text exactly as sent, so whitespace in the JSON does not matter.

:func:`verify_private_request` is the server half, used by the simulator's sandbox. Nothing here
logs, and no message built here contains a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

API_KEY_HEADER = "X-GEMINI-APIKEY"
PAYLOAD_HEADER = "X-GEMINI-PAYLOAD"
SIGNATURE_HEADER = "X-GEMINI-SIGNATURE"


class NonceSource:
    """Strictly increasing nonces: epoch milliseconds, or the previous nonce + 1 when the clock
    has not moved on (two calls in one millisecond, or a clock stepped back). Thread-safe.

    Milliseconds because a process restarted later still starts above every nonce it sent
    before (at Gemini's 600 requests/min the +1 guard never runs ahead of the clock by more than
    a few ms), and because most Gemini clients use them: a key shared with another ms client
    keeps increasing either way.
    """

    def __init__(self, clock_ms: Callable[[], int] | None = None) -> None:
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self._last = max(self._clock_ms(), self._last + 1)
            return self._last

    @property
    def last(self) -> int:
        """The last nonce handed out (0 before the first)."""
        return self._last


def private_payload(
    path: str, nonce: int, params: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON object of a private request: ``request`` and ``nonce`` first, then ``params``."""
    if params and ({"request", "nonce"} & set(params)):
        raise ValueError("params must not set 'request' or 'nonce'")
    return {"request": path, "nonce": nonce, **(params or {})}


def encode_payload(payload: Mapping[str, Any]) -> str:
    """Compact JSON of ``payload``, base64-encoded (the ``X-GEMINI-PAYLOAD`` value)."""
    text = json.dumps(payload, separators=(",", ":"))
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def sign(payload_b64: str, api_secret: str) -> str:
    """hex(HMAC-SHA384(payload_b64, key=api_secret)), lower case (``X-GEMINI-SIGNATURE``)."""
    return hmac.new(
        api_secret.encode("utf-8"), payload_b64.encode("ascii"), hashlib.sha384
    ).hexdigest()


def private_headers(api_key: str, api_secret: str, payload_b64: str) -> dict[str, str]:
    """Every header of a private request whose payload is already encoded."""
    return {
        "Content-Type": "text/plain",
        "Content-Length": "0",
        "Cache-Control": "no-cache",
        API_KEY_HEADER: api_key,
        PAYLOAD_HEADER: payload_b64,
        SIGNATURE_HEADER: sign(payload_b64, api_secret),
    }


def signed_headers(
    api_key: str,
    api_secret: str,
    path: str,
    nonce: int,
    params: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Headers of a private request to ``path`` (payload built, encoded and signed)."""
    payload_b64 = encode_payload(private_payload(path, nonce, params))
    return private_headers(api_key, api_secret, payload_b64)


# --- the server's side -------------------------------------------------------------------------


class SignedRequestError(Exception):
    """A private request failed authentication; ``reason`` is Gemini's code (HTTP 400)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """A private request that passed every check: whose key, its payload and its nonce."""

    api_key: str
    payload: dict[str, Any]
    nonce: int


def decode_payload(payload_b64: str) -> dict[str, Any]:
    """The JSON object inside ``X-GEMINI-PAYLOAD``; :class:`SignedRequestError` if it is not one."""
    try:
        payload = json.loads(base64.b64decode(payload_b64, validate=True))
    except (binascii.Error, ValueError) as error:
        raise SignedRequestError(
            "InvalidJson", f"X-GEMINI-PAYLOAD is not base64-encoded JSON: {error}"
        ) from error
    if not isinstance(payload, dict):
        raise SignedRequestError("InvalidJson", "X-GEMINI-PAYLOAD must hold a JSON object")
    return payload


def parse_nonce(value: Any) -> int:
    """A payload's nonce as an integer (Gemini accepts a number or a numeric string)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SignedRequestError("InvalidNonce", f"nonce must be an integer, got {value!r}")
    try:
        return int(value)
    except ValueError as error:
        raise SignedRequestError(
            "InvalidNonce", f"nonce must be an integer, got {value!r}"
        ) from error


def verify_private_request(
    headers: Mapping[str, str],
    path: str,
    secret_for_key: Callable[[str], str | None],
    last_nonce_for_key: Callable[[str], int | None],
) -> VerifiedRequest:
    """Check a private request as Gemini does; return it or raise :class:`SignedRequestError`.

    In order: the three headers are present (``Missing...Header``); the key is known and the
    signature matches (``InvalidSignature``, also for an unknown key, so a caller cannot tell
    which keys exist); the payload is a JSON object whose ``request`` is ``path``
    (``InvalidSignature``: a payload signed for another endpoint is not authority for this one);
    the nonce is greater than the key's last accepted one (``InvalidNonce``). ``headers`` must
    look up names case-insensitively (aiohttp's and requests' headers do). Pure: the caller
    records the accepted nonce.
    """
    api_key = headers.get(API_KEY_HEADER)
    payload_b64 = headers.get(PAYLOAD_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if not api_key:
        raise SignedRequestError("MissingApikeyHeader", "the X-GEMINI-APIKEY header is missing")
    if not payload_b64:
        raise SignedRequestError("MissingPayloadHeader", "the X-GEMINI-PAYLOAD header is missing")
    if not signature:
        raise SignedRequestError(
            "MissingSignatureHeader", "the X-GEMINI-SIGNATURE header is missing"
        )
    secret = secret_for_key(api_key)
    # compare_digest even for an unknown key: the answer takes as long either way
    expected = sign(payload_b64, secret if secret is not None else "")
    if not hmac.compare_digest(expected, signature.strip().lower()) or secret is None:
        raise SignedRequestError(
            "InvalidSignature", "the signature does not match the payload and API key"
        )
    payload = decode_payload(payload_b64)
    if payload.get("request") != path:
        raise SignedRequestError(
            "InvalidSignature",
            f"the payload's request {payload.get('request')!r} does not match the path {path!r}",
        )
    nonce = parse_nonce(payload.get("nonce"))
    last = last_nonce_for_key(api_key)
    if last is not None and nonce <= last:
        raise SignedRequestError(
            "InvalidNonce", f"nonce {nonce} is not greater than the previous nonce {last}"
        )
    return VerifiedRequest(api_key, payload, nonce)
