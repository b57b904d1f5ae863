"""The platform's own minute bars: ``gemini.trades.v1`` (plus the book's mid) -> history store.

- ``model``: the pure bar rules (trades -> OHLCV, mid fill) in plain Python; the reference the
  Spark expressions are tested against.
- ``options``: the job's options (one dataclass) and its spark-submit command; no pyspark.
- ``streaming``: the Spark Structured Streaming query and the job's run loop (needs pyspark).
- ``sink``: a micro-batch's bars into the history store (``history.upsert.upsert_bars``).

The entry point is ``spark_jobs/bars.py``; the service ``bars`` of ``rtcrypto/supervision/registry.py``.
"""
