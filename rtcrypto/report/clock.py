"""The review's clock: "now" and the forecast offset for ``rtc report`` and the ``trade_report`` DAG.

The review counts back from the trader's clock, the feed clock (:mod:`rtcrypto.exchange.feedclock`):

1. live feed: the wall clock;
2. simulator feed, simulator answering: the simulator's time (``--since 1h`` is the last hour of
   the replay, historical or shifted to now);
3. simulator feed, simulator gone (the replay was stopped): the newest time the trader recorded in
   Elasticsearch, the end of the newest liquidity window or the newest order, whichever is later;
4. nothing recorded either: the wall clock, and the report says so.

The forecast offset (how far the feed's clock is ahead of the forecast's ``ds``) is
``RTC_TRADER_FORECAST_OFFSET_MS`` if set, else the simulator's ``shift_ms``, else what the newest
forecast document shows (its ``@timestamp`` minus its ``ds``: the trader indexes the forecast on
the feed's clock), else 0. :attr:`ReviewClock.description` says which clock was used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rtcrypto.exchange.feedclock import (
    SIMULATOR,
    WALL,
    FeedClock,
    FeedClockError,
    iso_minute,
    wall_now_ms,
)
from rtcrypto.report.model import parse_time_bound
from rtcrypto.search.client import SearchError, SearchUnavailableError
from rtcrypto.search.indices import index_name

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    from rtcrypto.config import Settings

log = logging.getLogger(__name__)

ELASTICSEARCH = "elasticsearch"


@dataclass(frozen=True, slots=True)
class ReviewClock:
    """``now_ms`` to count ``--since`` / ``--until`` back from, the forecast offset, and why."""

    now_ms: int
    forecast_offset_ms: int
    source: str  # wall | simulator | elasticsearch
    description: str  # "feed clock: simulator, historical replay at 60x, now 2024-10-28 13:00 UTC"
    speed: float = 1.0  # feed seconds per wall second (the replay's speed; 1 when unknown)


def _iso_ms(text: Any) -> int | None:
    """Epoch ms of an ISO 8601 string (``2024-10-28T13:00:00.000Z``); None if it is not one."""
    if not isinstance(text, str):
        return None
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _newest_source(client: Elasticsearch, index: str, symbol: str | None) -> dict[str, Any] | None:
    """The ``_source`` of ``index``'s document with the latest ``@timestamp`` (None: none)."""
    query: dict[str, Any] = {"match_all": {}}
    if symbol:
        query = {"bool": {"filter": [{"term": {"symbol": symbol.upper()}}]}}
    import elasticsearch

    try:
        response = client.search(
            index=index,
            query=query,
            sort=[{"@timestamp": {"order": "desc", "unmapped_type": "date"}}],
            size=1,
            ignore_unavailable=True,
            allow_no_indices=True,
            track_total_hits=False,
        )
    except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as error:
        raise SearchUnavailableError(
            f"Elasticsearch does not answer while reading {index} for the review's clock: "
            f"{error}. Start the local node with `rtc stack up`, or set RTC_SEARCH_URL"
        ) from error
    except elasticsearch.ApiError as error:
        raise SearchError(f"Elasticsearch refused the search on {index}: {error}") from error
    hits = response["hits"]["hits"]
    return dict(hits[0]["_source"]) if hits else None


def newest_recorded_ms(client: Elasticsearch, prefix: str, symbol: str | None) -> int | None:
    """The latest time the trader recorded: the newest liquidity window's end or the newest
    order's time + 1 ms (so that an end-exclusive range still holds it); None if neither."""
    times: list[int] = []
    liquidity = _newest_source(client, index_name("liquidity", prefix), symbol)
    if liquidity and isinstance(liquidity.get("window_end_ms"), int):
        times.append(int(liquidity["window_end_ms"]))
    order = _newest_source(client, index_name("orders", prefix), symbol)
    if order and isinstance(order.get("ts_ms"), int):
        times.append(int(order["ts_ms"]) + 1)
    return max(times) if times else None


def recorded_forecast_offset_ms(client: Elasticsearch, prefix: str) -> int | None:
    """``@timestamp - ds`` of the newest forecast document (the offset the trader drew it with)."""
    newest = _newest_source(client, index_name("forecast", prefix), None)
    if newest is None:
        return None
    stamp, ds = _iso_ms(newest.get("@timestamp")), _iso_ms(newest.get("ds"))
    return None if stamp is None or ds is None else stamp - ds


def review_clock(
    settings: Settings, client: Elasticsearch | None, *, symbol: str | None = None
) -> ReviewClock:
    """The clock the review counts back from (see the module docstring for the order)."""
    explicit_offset = settings.trader_forecast_offset_ms
    feed_clock = FeedClock.from_settings(settings)
    if feed_clock.source == WALL:
        now = wall_now_ms()
        return ReviewClock(
            now,
            explicit_offset or 0,
            WALL,
            f"feed clock: wall clock (live feed), now {iso_minute(now)}",
        )
    try:
        feed_clock.start()
    except FeedClockError as error:
        log.info("review clock: %s", error)
    else:
        now = feed_clock.now_ms()
        offset = feed_clock.shift_ms if explicit_offset is None else explicit_offset
        reading = feed_clock.reading
        speed = reading.speed if reading is not None and reading.speed > 0 else 1.0
        return ReviewClock(now, offset, SIMULATOR, f"feed clock: {feed_clock.describe()}", speed)
    return _recorded_clock(settings, client, symbol, explicit_offset, feed_clock.url)


def _recorded_clock(
    settings: Settings,
    client: Elasticsearch | None,
    symbol: str | None,
    explicit_offset: int | None,
    url: str,
) -> ReviewClock:
    """The simulator is gone: the newest recorded time, else the wall clock."""
    prefix = settings.search_index_prefix
    newest = recorded = None
    if client is not None:
        newest = newest_recorded_ms(client, prefix, symbol)
        recorded = recorded_forecast_offset_ms(client, prefix)
    offset = explicit_offset if explicit_offset is not None else (recorded or 0)
    if newest is not None:
        return ReviewClock(
            newest,
            offset,
            ELASTICSEARCH,
            f"feed clock: the simulator does not answer at {url}; now is the newest time the "
            f"trader recorded in Elasticsearch ({prefix}-liquidity / {prefix}-orders), "
            f"{iso_minute(newest)}",
        )
    now = wall_now_ms()
    return ReviewClock(
        now,
        offset,
        WALL,
        f"feed clock: the simulator does not answer at {url} and Elasticsearch holds no "
        f"liquidity or order document under {prefix}-*; wall clock, now {iso_minute(now)}",
    )


def trader_now_ms(settings: Settings) -> tuple[int | None, str]:
    """``(now_ms, why)``: the trader's clock for a retrain, as the review finds it (the wall clock
    with the live feed; the simulator's time; the newest time the trader recorded), or None when
    the simulator feed's clock is unknown (the platform is down and recorded nothing)."""
    from rtcrypto.search.client import search_client

    client = None
    try:
        client = search_client(settings, max_retries=0)
        clock = review_clock(settings, client)
    except SearchError as error:
        log.info("trader clock: Elasticsearch does not answer (%s)", error)
        clock = review_clock(settings, None)
    finally:
        if client is not None:
            client.close()
    if clock.source == WALL and FeedClock.from_settings(settings).source != WALL:
        return None, clock.description + " (unknown: the retrain judges by its data)"
    return clock.now_ms, clock.description


@dataclass(frozen=True, slots=True)
class ReviewRange:
    """A review's ``[start_ms, end_ms)`` and the clock it was counted on."""

    start_ms: int
    end_ms: int
    clock: ReviewClock
    wall_time_scale: float | None  # durations in wall time: multiplied by this; None: feed time

    @property
    def description(self) -> str:
        """Which clock, and whether durations were taken in wall time."""
        if self.wall_time_scale is None:
            return self.clock.description
        return f"{self.clock.description}; durations in wall time x{self.wall_time_scale:g}"


def resolve_range(
    settings: Settings,
    client: Elasticsearch | None,
    *,
    since: str,
    until: str,
    symbol: str | None,
    durations: str | None = None,
    clock: ReviewClock | None = None,
) -> ReviewRange:
    """``since`` .. ``until`` on the review's clock (``rtc report`` and the Trade review page).

    ``until`` is ``now`` (the feed clock's), a duration before it or an ISO time; a duration in
    ``since`` counts back from ``until``. ``durations`` ``wall`` (default
    ``settings.report_durations``) multiplies durations by the replay's speed. ``clock`` None
    reads :func:`review_clock`. Raises ``ReportError`` for a time it cannot read.
    """
    clock = clock or review_clock(settings, client, symbol=symbol)
    in_wall_time = (durations or settings.report_durations) == "wall"
    scale = clock.speed if in_wall_time else 1.0
    end_ms = parse_time_bound(until, clock.now_ms, scale)
    # A duration in --since counts back from --until, so "--since 24h --until X" is a day.
    start_ms = parse_time_bound(since, end_ms, scale)
    return ReviewRange(start_ms, end_ms, clock, scale if in_wall_time else None)
