"""Spark Structured Streaming job: ``gemini.trades.v1`` (+ the book's mid) -> 1-minute bars.

Run it with spark-submit; ``rtc bars run`` and the service ``bars`` (``rtc up``) build the
command (``rtcrypto/feedbars/options.py``)::

    spark-submit --master local[1] --jars <kafka connector jars> spark_jobs/bars.py

Per symbol and UTC minute it upserts one bar into the history store, source
``history_feed_source`` (``gemini-feed``) for the traded symbol; the bar rules are in
``rtcrypto/feedbars/model.py``, the query in ``rtcrypto/feedbars/streaming.py``. The checkpoint
is ``<run_dir>/checkpoints/bars/bars``; a restart resumes after the last committed batch and a
re-run batch rewrites identical minutes (the store does not change). SIGTERM / SIGINT stop the
query between batches.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from rtcrypto.feedbars.options import HEARTBEAT_SERVICE, parse_args
    from rtcrypto.feedbars.streaming import run
    from rtcrypto.logs import setup_logging

    setup_logging(HEARTBEAT_SERVICE)
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
