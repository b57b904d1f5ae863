"""Market data ingest: Gemini v1 websocket frames -> Kafka records."""
