"""Real-Time Crypto: the domain package (config, schemas, order book, liquidity, exchange)."""

__version__ = "0.1.0"
