"""Disk watermarks of the local Elasticsearch node: on, as absolute free space.

They were switched off (``cluster.routing.allocation.disk.threshold_enabled: false``) because
Elasticsearch's percentage defaults (85 / 90 / 95 % used) turn the indices read-only on a large
laptop disk that is 95 % full with tens of GB still free. Off, nothing stops the node from
filling the disk, which breaks Kafka, the spool and the OS too. Now they are on with free-space
thresholds (``RTC_SEARCH_DISK_WATERMARK_*``, defaults 2gb / 1gb / 500mb free): low stops new
shards on the node, high moves shards away (a single node has nowhere to move them), flood stage
makes the project's indices read-only (writes answer 429; the bulk writer spools and, past its
cap, alerts) until space is freed; Elasticsearch lifts the block by itself below high.

They are written to ``elasticsearch.yml`` for a new start and set as persistent cluster
settings on a node that runs already (:func:`apply_disk_watermarks`), like the topic bounds.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from rtcrypto.config import Settings
from rtcrypto.stack.errors import StackError

PREFIX = "cluster.routing.allocation.disk."


def disk_watermarks(settings: Settings) -> dict[str, str]:
    """The node's disk-threshold settings (flat keys, as in ``elasticsearch.yml``)."""
    return {
        PREFIX + "threshold_enabled": "true",
        PREFIX + "watermark.low": settings.search_disk_watermark_low,
        PREFIX + "watermark.high": settings.search_disk_watermark_high,
        PREFIX + "watermark.flood_stage": settings.search_disk_watermark_flood_stage,
    }


def _call(url: str, method: str, path: str, body: Any = None, timeout_s: float = 10.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())


def apply_disk_watermarks(settings: Settings, timeout_s: float = 10.0) -> dict[str, str]:
    """Set the watermarks as persistent cluster settings on the running node; return them."""
    wanted = disk_watermarks(settings)
    try:
        _call(settings.search_url, "PUT", "/_cluster/settings", {"persistent": wanted}, timeout_s)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise StackError(f"cannot set the disk watermarks on Elasticsearch: {error}") from error
    return wanted


def current_disk_watermarks(settings: Settings, timeout_s: float = 10.0) -> dict[str, str]:
    """The node's effective disk-threshold settings (persistent, else yml, else default)."""
    answer = _call(
        settings.search_url,
        "GET",
        "/_cluster/settings?flat_settings=true&include_defaults=true",
        timeout_s=timeout_s,
    )
    merged: dict[str, str] = {}
    for scope in ("defaults", "persistent", "transient"):  # later scopes win
        for key, value in answer.get(scope, {}).items():
            if key in disk_watermarks(settings):
                merged[key] = str(value)
    return merged
