"""Everything of the platform's Spark jobs that is not a query: how they are launched
(``submit``: the liquidity job's options dataclass, its spark-submit command and process
control), how a job's options become its command line and back (``options``), how a record
contract of ``rtcrypto.market.schemas`` becomes a Spark schema and columns (``contract``), the
column-level event-time check (``event_time``), the drivers' shared loop pieces (``driver``:
Kafka options from Settings, stop signals, watchdog), the liquidity job's progress log
(``progress``), heartbeats (``heartbeat``) and the web UI's address (``ui``). It may import
``rtcrypto.config``/``logs``, ``market`` and ``kafka``; never ``trader``, ``feedbars``,
``supervision`` or ``cli``. The jobs themselves are ``spark_jobs/liquidity.py`` and
``spark_jobs/bars.py`` (its query in ``rtcrypto.feedbars``).
"""
