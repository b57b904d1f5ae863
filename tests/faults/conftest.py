"""Fixtures of the fault suite (``pytest -m faults``).

``kafka_broker``, ``kafka_topic_factory``, ``fresh_topics`` and ``services_report`` come from
tests/conftest.py (visible everywhere under tests/). The Elasticsearch node and the trader's
environment live in tests/integration; importing the fixture functions here registers them for
this folder too (the node is shared through its lease files, never started twice).
"""

from __future__ import annotations

from tests.integration.conftest import search_node
from tests.integration.test_trader_service import trader_env

__all__ = ["search_node", "trader_env"]
