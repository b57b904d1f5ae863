"""The liquidity queries and the bars query in ONE Spark application (for ``bench.bars_footprint``).

Not a product entry point: it exists to measure the alternative to the separate ``bars`` service.
Arguments: the liquidity job's, then ``--bars``, then the bars job's (``BarsJobOptions.to_args``).
"""

from __future__ import annotations

import signal
import sys
import threading

from rtcrypto.feedbars import options
from rtcrypto.feedbars.streaming import BatchStats, start_query
from rtcrypto.spark import driver
from spark_jobs import liquidity


def main(argv: list[str]) -> int:
    split = argv.index("--bars")
    liquidity_options = liquidity.parse_args(argv[:split])
    bars_options = options.parse_args(argv[split + 1 :])
    session = driver.create_session(liquidity.SERVICE)
    session.sparkContext.setLogLevel("WARN")
    parsed = liquidity.parse_orderbook(liquidity.read_orderbook_stream(session, liquidity_options))
    queries = [
        liquidity.start_liquidity_query(parsed, liquidity_options),
        liquidity.start_deadletter_query(parsed, liquidity_options),
        start_query(session, bars_options, BatchStats()),
    ]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    for query in queries:
        query.stop()
    session.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
