"""The project's one way to reach Elasticsearch: a client factory, a health call, a version check.

The embedded node (``rtc stack up``) and docker-compose's Elasticsearch are both reached with the
official ``elasticsearch`` client at ``settings.search_url``. The client refuses a server whose
major version differs from its own, so :func:`ensure_compatible` says so in plain words first.
"""

from __future__ import annotations

from rtcrypto.search.client import (
    ClusterHealth,
    SearchError,
    SearchUnavailableError,
    cluster_health,
    ensure_compatible,
    search_client,
    server_version,
)

__all__ = [
    "ClusterHealth",
    "SearchError",
    "SearchUnavailableError",
    "cluster_health",
    "ensure_compatible",
    "search_client",
    "server_version",
]
