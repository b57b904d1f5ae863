"""The trade review's inputs: the trader's documents of a range from Elasticsearch, and the
current published forecast from its files.

The request bodies come from :mod:`rtcrypto.search.queries` (:func:`documents_in_range_body`, the
range / mode / symbol filter the Kibana "Trade review" visualizations use too); pages are read
with ``search_after``. Times are epoch milliseconds (UTC).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtcrypto.report.model import ReportRows
from rtcrypto.search.client import SearchError, SearchUnavailableError
from rtcrypto.search.indices import index_name
from rtcrypto.search.queries import REVIEW_TIEBREAKERS, documents_in_range_body

if TYPE_CHECKING:
    import pandas as pd
    from elasticsearch import Elasticsearch

PAGE_SIZE = 1_000  # documents per search request; search_after pages through the rest


def fetch_rows(
    client: Elasticsearch,
    kind: str,
    *,
    start_ms: int,
    end_ms: int,
    prefix: str,
    mode: str | None = None,
    symbol: str | None = None,
    page_size: int = PAGE_SIZE,
) -> list[dict[str, Any]]:
    """Every ``_source`` of ``<prefix>-<kind>`` with ``@timestamp`` in ``[start_ms, end_ms)``
    (of ``mode`` and ``symbol`` where the kind has them), sorted by time, paged with
    ``search_after``. A missing index gives no rows."""
    import elasticsearch

    body = documents_in_range_body(
        kind, since_ms=start_ms, until_ms=end_ms, trading_mode=mode, symbol=symbol, size=page_size
    )
    index = index_name(kind, prefix)
    rows: list[dict[str, Any]] = []
    after: list[Any] | None = None
    try:
        while True:
            extra: dict[str, Any] = {} if after is None else {"search_after": after}
            response = client.search(
                index=index,
                **body,
                ignore_unavailable=True,
                allow_no_indices=True,
                track_total_hits=False,
                **extra,
            )
            hits = response["hits"]["hits"]
            rows.extend(hit["_source"] for hit in hits)
            if len(hits) < page_size:
                return rows
            after = hits[-1]["sort"]
    except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as error:
        raise SearchUnavailableError(
            f"Elasticsearch does not answer while reading {index}: {error}. Start the local node "
            "with `rtc stack up`, or set RTC_SEARCH_URL"
        ) from error
    except elasticsearch.ApiError as error:
        raise SearchError(f"Elasticsearch refused the search on {index}: {error}") from error


def fetch_report_rows(
    client: Elasticsearch,
    *,
    start_ms: int,
    end_ms: int,
    prefix: str,
    mode: str | None = None,
    symbol: str | None = None,
) -> ReportRows:
    """The documents of every kind the report uses (see :func:`fetch_rows`)."""
    fetched = {
        kind: fetch_rows(
            client, kind, start_ms=start_ms, end_ms=end_ms, prefix=prefix, mode=mode, symbol=symbol
        )
        for kind in REVIEW_TIEBREAKERS
    }
    return ReportRows(**fetched)


def load_forecast(
    forecast_dir: Path | None,
) -> tuple[pd.DataFrame | None, str | None, str | None]:
    """(frame, version, None) of the current forecast, or (None, None, why not)."""
    from rtcrypto.forecast.model import ForecastError
    from rtcrypto.forecast.publish import load_current

    try:
        current = load_current(forecast_dir)
    except ForecastError as error:
        return None, None, str(error)
    except (OSError, ValueError, KeyError) as error:
        return None, None, f"the current forecast could not be read: {error}"
    return current.forecast, current.version, None
