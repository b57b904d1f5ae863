"""Client factory and health of the Elasticsearch cluster at ``settings.search_url`` (and, in the
cluster topology, at every node of ``settings.cluster.search_urls``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import elasticsearch
from elasticsearch import Elasticsearch

from rtcrypto.config import Settings, get_settings
from rtcrypto.config_cluster import Topology

logger = logging.getLogger(__name__)

HEALTHY_STATUSES = frozenset({"green", "yellow"})
CLIENT_VERSION = elasticsearch.__versionstr__


class SearchError(Exception):
    """Elasticsearch answered in a way the project cannot work with (wrong version, bad reply)."""


class SearchUnavailableError(SearchError):
    """Nothing usable answers at the configured URL."""


@dataclass(frozen=True)
class ClusterHealth:
    """The parts of ``GET /_cluster/health`` the project looks at."""

    cluster_name: str
    status: str  # green | yellow | red
    number_of_nodes: int
    active_shards: int
    unassigned_shards: int
    timed_out: bool

    @property
    def healthy(self) -> bool:
        """Green or yellow: every primary shard is assigned (yellow: some replica is not)."""
        return self.status in HEALTHY_STATUSES


def search_hosts(settings: Settings) -> list[str]:
    """The URLs the client talks to: ``search_url``, then, in the cluster topology, every other
    node of ``cluster.search_urls`` (the client moves to another node when one is lost).

    A ``search_url`` that is not one of the cluster's nodes (an external cluster) stays alone.
    """
    if settings.topology is not Topology.CLUSTER:
        return [settings.search_url]
    nodes = [url.rstrip("/") for url in settings.cluster.search_urls]
    first = settings.search_url.rstrip("/")
    if first not in nodes:
        return [settings.search_url]
    return [first, *(url for url in nodes if url != first)]


def search_client(
    settings: Settings | None = None,
    *,
    request_timeout_s: float = 30.0,
    max_retries: int = 3,
    **options: Any,
) -> Elasticsearch:
    """An ``Elasticsearch`` client for ``settings.search_url`` (in the cluster topology, every
    node: :func:`search_hosts`); ``options`` go to its constructor.

    Creating it sends nothing; the first request connects. Retries timeouts and unreachable
    nodes ``max_retries`` times (on another node where there are several).
    ``search_username`` / ``search_password`` go as basic auth (the URL holds no userinfo).
    """
    settings = settings or get_settings()
    if settings.search_username is not None and "basic_auth" not in options:
        password = settings.search_password
        options["basic_auth"] = (
            settings.search_username,
            password.get_secret_value() if password is not None else "",
        )
    return Elasticsearch(
        search_hosts(settings),
        request_timeout=request_timeout_s,
        max_retries=max_retries,
        retry_on_timeout=True,
        **options,
    )


def _describe(client: Elasticsearch) -> str:
    nodes = [node.base_url for node in client.transport.node_pool.all()]
    return ", ".join(nodes) or "the configured URL"


def cluster_health(
    client: Elasticsearch, *, wait_for_status: str | None = None, timeout_s: float = 30.0
) -> ClusterHealth:
    """Cluster health; with ``wait_for_status`` ("yellow", "green") wait up to ``timeout_s`` s.

    A wait that runs out returns the health with ``timed_out`` True rather than raising.
    Raises :class:`SearchUnavailableError` if the cluster cannot be reached.
    """
    arguments: dict[str, Any] = {"timeout": f"{int(timeout_s * 1000)}ms"}
    if wait_for_status is not None:
        arguments["wait_for_status"] = wait_for_status
    try:
        # 408 is how the server says "the wait ran out"; its body is still the health document.
        response = client.options(
            ignore_status=408, request_timeout=timeout_s + 10.0
        ).cluster.health(**arguments)
    except elasticsearch.UnsupportedProductError as error:
        raise SearchUnavailableError(
            f"the server at {_describe(client)} is not Elasticsearch: {error}"
        ) from error
    except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as error:
        raise SearchUnavailableError(
            f"Elasticsearch does not answer at {_describe(client)}: start the local node with "
            f"`rtc stack up`, or set RTC_SEARCH_URL ({error})"
        ) from error
    except elasticsearch.ApiError as error:
        raise SearchUnavailableError(
            f"Elasticsearch at {_describe(client)} has no usable cluster yet: {error}"
        ) from error
    body = response.body
    return ClusterHealth(
        cluster_name=str(body.get("cluster_name", "")),
        status=str(body.get("status", "red")),
        number_of_nodes=int(body.get("number_of_nodes", 0)),
        active_shards=int(body.get("active_shards", 0)),
        unassigned_shards=int(body.get("unassigned_shards", 0)),
        timed_out=bool(body.get("timed_out", False)),
    )


def server_version(client: Elasticsearch) -> str:
    """The server's version number (``GET /``), e.g. ``"9.5.3"``."""
    try:
        return str(client.info()["version"]["number"])
    except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as error:
        raise SearchUnavailableError(
            f"Elasticsearch does not answer at {_describe(client)}: {error}"
        ) from error
    except elasticsearch.ApiError as error:
        # Elasticsearch refuses a client of another major with 400 media_type_header_exception.
        raise SearchError(
            f"Elasticsearch at {_describe(client)} refused `GET /` from client {CLIENT_VERSION}: "
            f"{error}. Client and server must share the major version."
        ) from error


def major_of(version: str) -> int:
    """``"9.5.3"`` -> 9."""
    head = version.split(".", 1)[0]
    if not head.isdigit():
        raise SearchError(f"not a version number: {version!r}")
    return int(head)


def ensure_compatible(client: Elasticsearch) -> str:
    """Return the server's version, or raise :class:`SearchError` if its major differs from ours."""
    version = server_version(client)
    if major_of(version) != major_of(CLIENT_VERSION):
        raise SearchError(
            f"Elasticsearch {version} at {_describe(client)} does not match the Python client "
            f"{CLIENT_VERSION}: install elasticsearch=={major_of(version)}.* or run a "
            f"{major_of(CLIENT_VERSION)}.x server"
        )
    return version
