"""Fixtures of the integration tests that need the real local Elasticsearch node.

``search_node`` (session): makes sure an Elasticsearch node answers green or yellow on
``settings.search_url`` and returns that URL. It reuses a node that already answers (started by
``rtc stack up``, another test session, or docker-compose) and otherwise starts the managed one.
Several pytest sessions may share one node: each holds a lease file, and the last session out
stops the node, but only if a test session started it; a node started by ``rtc stack up`` keeps
running. Same pattern as ``kafka_broker`` in tests/conftest.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from rtcrypto.config import Settings, get_settings
from rtcrypto.search import search_client
from rtcrypto.search.indices import ensure_templates
from rtcrypto.stack import process
from rtcrypto.stack import search as search_stack
from tests.conftest import _SERVICE_LINES
from tests.shared_service import shared_service


@pytest.fixture(scope="session")
def search_node() -> Iterator[str]:
    """URL of a healthy Elasticsearch node (``http://host:port``)."""
    settings = get_settings()

    def start() -> tuple[int, bool]:
        started = search_stack.start_search(settings)
        return started.pid, started.already_running

    with shared_service(
        search_stack.SEARCH_PROCESS,
        settings,
        healthy=lambda: search_stack.search_healthy(settings.search_url),
        start=start,
        stop=lambda: search_stack.stop_search(settings),
    ):
        status = process.process_status(search_stack.SEARCH_PROCESS, settings)
        _SERVICE_LINES.append(
            f"Elasticsearch {settings.search_version} node at {settings.search_url} "
            f"(pid {status.pid or 'not managed here'}, log {status.log_path})"
        )
        yield settings.search_url


@pytest.fixture
def client(search_node: str) -> Iterator[Elasticsearch]:
    """A client of the ``search_node``."""
    es = search_client(Settings(search_url=search_node))
    yield es
    es.close()


@pytest.fixture
def prefix(client: Elasticsearch) -> Iterator[str]:
    """A fresh index prefix with its templates in place; its indices and templates are removed
    afterwards."""
    from tests.trade_documents import drop_prefix

    name = f"rtct{uuid.uuid4().hex[:8]}"
    ensure_templates(client, name)
    yield name
    drop_prefix(client, name)
