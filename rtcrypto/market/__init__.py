"""The market's data and its pure rules: what the feed says and how the platform reads it.

``schemas`` holds the record schemas the ingest writes to Kafka and every reader parses,
including the one ``LiquidityMinute`` contract of ``liquidity.minute.v1`` that both the Spark
job and the trader import; ``orderbook`` the order-book state of one symbol and its depth
summary; ``liquidity`` the liquidity math (minute windows, price-weighted volume, the liquidity
ratio); ``captures`` the venue capture parsers (Gemini, Kraken, Binance, Binance.US and Bitstamp
recordings as typed book and trade messages) with the v2 -> v1 mapping the simulator replays.
It may import only the root utilities (``rtcrypto.config``, ``rtcrypto.logs``,
``rtcrypto.bounded``) and does no I/O at all: no Kafka, Spark, Elasticsearch or HTTP (the feed
clock, which reads the simulator's ``/_sim/status``, lives in ``rtcrypto.exchange``). Everything else in ``rtcrypto`` builds
on this package; nothing here imports upward.
"""
