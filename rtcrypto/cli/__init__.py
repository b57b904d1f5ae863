"""The ``rtc`` command line."""
