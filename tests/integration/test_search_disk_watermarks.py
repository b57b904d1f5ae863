"""The local Elasticsearch node's disk watermarks are on (issue 10), checked on the real node.

Before issue 10 ``cluster.routing.allocation.disk.threshold_enabled`` was false: nothing kept the
node from filling the disk. ``rtc stack up`` now writes the watermarks to elasticsearch.yml and
sets them on a node that runs already; here they are set on the session's node and read back
from its cluster settings, then the node's persistent settings are put back as they were.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest

from rtcrypto.config import Settings
from rtcrypto.stack import search_disk

pytestmark = pytest.mark.integration


def _persistent(url: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{url}/_cluster/settings?flat_settings=true") as response:
        return dict(json.loads(response.read())["persistent"])


@pytest.fixture
def node_settings_restored(search_node: str) -> Iterator[str]:
    before = _persistent(search_node)
    yield search_node
    keys = search_disk.disk_watermarks(Settings())
    body = {"persistent": {key: before.get(key) for key in keys}}
    request = urllib.request.Request(
        f"{search_node}/_cluster/settings",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request).close()


def test_watermarks_are_on_in_the_running_node(node_settings_restored: str) -> None:
    settings = Settings(
        search_url=node_settings_restored,
        search_disk_watermark_low="3gb",
        search_disk_watermark_high="2gb",
        search_disk_watermark_flood_stage="1gb",
    )
    search_disk.apply_disk_watermarks(settings)
    effective = search_disk.current_disk_watermarks(settings)
    prefix = "cluster.routing.allocation.disk."
    assert effective[prefix + "threshold_enabled"] == "true"
    assert effective[prefix + "watermark.low"] == "3gb"
    assert effective[prefix + "watermark.high"] == "2gb"
    assert effective[prefix + "watermark.flood_stage"] == "1gb"


@pytest.mark.parametrize(
    ("low", "high", "flood"),
    [("1gb", "2gb", "500mb"), ("85%", "1gb", "500mb"), ("95%", "90%", "85%")],
)
def test_inconsistent_watermarks_are_refused_at_start_up(low: str, high: str, flood: str) -> None:
    with pytest.raises(ValueError, match="RTC_SEARCH_DISK_WATERMARK_LOW"):
        Settings(
            search_disk_watermark_low=low,
            search_disk_watermark_high=high,
            search_disk_watermark_flood_stage=flood,
        )
