"""Which exchange a REST base URL points at, by its parsed host (pure).

URL strings are never compared: ``https://API.gemini.com:443/`` and ``https://api.gemini.com``
are the same exchange. A host is lower case, without a trailing dot, and keeps its port only when
it is not the scheme's default. The trader names its journal and nonce files by mode and host,
so sandbox and live (or two simulators) never share one.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from rtcrypto.config import GEMINI_LIVE_REST_URL

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class EndpointError(ValueError):
    """A base URL without a scheme and host, or with an invalid port."""


def endpoint_host(url: str) -> str:
    """``host`` or ``host:port`` of ``url``: lower case, no trailing dot, no userinfo, the
    scheme's default port dropped (``https://API.gemini.com:443`` -> ``api.gemini.com``)."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError as error:  # port out of range or not a number
        raise EndpointError(f"URL {url!r} has an invalid port: {error}") from None
    host = (parts.hostname or "").rstrip(".")
    if not parts.scheme or not host:
        raise EndpointError(f"URL {url!r} needs a scheme and a host (https://api.gemini.com)")
    if port is None or port == DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return f"{host}:{port}"


LIVE_GEMINI_HOSTS = frozenset({endpoint_host(GEMINI_LIVE_REST_URL)})


def is_live_gemini(url: str) -> bool:
    """True when ``url``'s host is live Gemini's REST host, whatever its case, port or path."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").rstrip(".")
    return host in LIVE_GEMINI_HOSTS


def venue_slug(mode: str, url: str | None) -> str:
    """``<mode>`` for paper, else ``<mode>-<host>`` made file-name safe (``:`` -> ``_``):
    ``sandbox-api.sandbox.gemini.com``, ``live-api.gemini.com``, ``sandbox-127.0.0.1_8765``."""
    if mode == "paper" or url is None:
        return mode
    return f"{mode}-" + re.sub(r"[^a-z0-9.-]", "_", endpoint_host(url))
