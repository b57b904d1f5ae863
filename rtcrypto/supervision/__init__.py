"""TODO: docstring for rtcrypto.supervision."""
