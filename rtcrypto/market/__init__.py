"""TODO: docstring for rtcrypto.market."""
