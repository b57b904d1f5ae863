"""Market data as values: the Kafka record contracts (``schemas``, including the
``LiquidityMinute`` contract that the Spark job writes and the trader reads), the order book
(``orderbook``), the pure liquidity math (``liquidity``), the venue capture parsers
(``captures``) and the feed's clock (``feedclock``). It may import only the root utilities
(``rtcrypto.config``, ``logs``, ``redact``, ``bounded``); every other package may import it.
"""
