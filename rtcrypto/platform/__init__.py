"""The platform as a whole: what ``rtc up`` and ``rtc prepare`` do, as functions of the settings.

:mod:`~rtcrypto.platform.bootstrap` holds the idempotent preparation steps (history import,
first forecast, indices), :mod:`~rtcrypto.platform.prepare` runs them in order,
:mod:`~rtcrypto.platform.up` starts the local stack, prepares and starts every streaming service
of the registry, and :mod:`~rtcrypto.platform.summary` says where everything is and what the
simulator replays. Each takes a ``progress`` callback that receives one line per step, so the CLI
(or a test) decides how to show it. This package sits just below the CLI: it may import every
other package of ``rtcrypto`` (stack, supervision, search, forecast, history, market, config,
...) but never ``rtcrypto.cli``; only the CLI and the DAGs import it.
"""
