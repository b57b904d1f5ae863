"""TODO: docstring for rtcrypto.platform."""
