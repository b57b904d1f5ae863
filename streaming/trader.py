"""``python -m streaming.trader``: liquidity records + the current forecast -> orders (paper by
default) -> Elasticsearch."""

from rtcrypto.trader.service import main

if __name__ == "__main__":
    main()
