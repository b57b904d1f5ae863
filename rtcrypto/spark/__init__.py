"""TODO: docstring for rtcrypto.spark.submit."""
