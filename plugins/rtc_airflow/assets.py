"""The platform's Airflow Assets: the minute-bar history and the published forecast.

- ``HISTORY`` (``rtc://history/minute-bars``): the Parquet history store
  (``rtcrypto.history``, ``RTC_HISTORY_DIR``). Produced by ``history_download.import_history``
  (an outlet: every successful import, a re-import of the same file too) and consumed by
  ``forecast_retrain``, which runs on ``FORECAST_RETRAIN_SCHEDULE``: nightly at 00:30 UTC **or**
  when the history gets an event.
  The platform's own bars (the Spark bars job ``feedbars``, ``RTC_HISTORY_FEED_SOURCE``) are
  written into the same store by a streaming job outside Airflow, one batch a minute. They emit
  no asset event: an event a minute would queue a Prophet retrain a minute, and the job would
  need an Airflow API token. The nightly cron half of the schedule is their trigger: at 00:30 a
  whole new UTC day of bars is in the store.
- ``FORECAST`` (``rtc://forecast/current``): the published forecast under ``<RTC_HOME>/forecast``.
  Produced by ``forecast_retrain.train_and_publish``, the publish task: each success wrote a
  version, and the event's extra says which and whether the gate made it current
  (``{"version", "promoted", "rule"}``; a candidate leaves ``current`` as it was). Declared as an
  inlet by the consumers that read the current forecast (``trade_report``'s review).

Names and URIs only: nothing here touches a file, the network or a database (DAG files import
this at parse time).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable

GROUP = "rtcrypto"
HISTORY = Asset(name="rtc_history", uri="rtc://history/minute-bars", group=GROUP)
FORECAST = Asset(name="rtc_forecast", uri="rtc://forecast/current", group=GROUP)

RETRAIN_CRON = "30 0 * * *"  # daily at 00:30 UTC
# Nightly, or at once when new history is imported. A trigger timetable: the nightly run needs no
# data interval (the trader's clock decides the window, rtcrypto.forecast.selection).
FORECAST_RETRAIN_SCHEDULE = AssetOrTimeSchedule(
    timetable=CronTriggerTimetable(RETRAIN_CRON, timezone="UTC", interval=timedelta(0)),
    assets=HISTORY,
)
