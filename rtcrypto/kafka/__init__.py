"""TODO: docstring for rtcrypto.kafka."""
