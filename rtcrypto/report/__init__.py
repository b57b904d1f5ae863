"""The trade review: what the trader recorded in a time range, as HTML, a PNG chart and JSON.

``fetch`` reads the range's documents from Elasticsearch (with the request bodies of
``rtcrypto.search.queries``) and the current forecast from its files; ``series`` turns rows into
P&L, trades, liquidity, forecast-against-price and equity series (pure); ``render`` draws the
chart and writes the HTML page; ``model`` holds the values and formatting helpers they share;
``clock`` says which clock the range is counted on; ``build`` runs the whole report
(:func:`build_report`) and resolves ``rtc report``'s arguments (:func:`report_range`). This
package may import the root utilities (config, logs), ``rtcrypto.market``, ``rtcrypto.trading``,
``rtcrypto.search`` and ``rtcrypto.forecast`` (the published forecast); never ``cli``, ``stack``
or ``platform``.
"""

from __future__ import annotations

from rtcrypto.report.build import build_report, report_range
from rtcrypto.report.model import ReportError, ReportResult

__all__ = ["ReportError", "ReportResult", "build_report", "report_range"]
