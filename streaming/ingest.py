"""``python -m streaming.ingest``: Gemini market data (or the simulator) -> Kafka."""

from rtcrypto.ingest.service import main

if __name__ == "__main__":
    main()
