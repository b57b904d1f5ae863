"""Exchange simulator: replays recorded order books as Gemini market data v1 / v2 and REST.

``rtc simulate --capture FILE`` (or ``python -m streaming.simulator``) serves it; see
:mod:`rtcrypto.simulator.server` for the routes, :mod:`rtcrypto.simulator.flags` for the
command-line flags and :mod:`rtcrypto.market.captures` for the mapping. The server's names are
imported on first use, so the flags (read by every ``rtc`` command) cost no server import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rtcrypto.simulator.server import (
        RunningSimulator,
        Simulator,
        SimulatorOptions,
        run,
        serve,
        start_simulator,
    )

__all__ = ["RunningSimulator", "Simulator", "SimulatorOptions", "run", "serve", "start_simulator"]


def __getattr__(name: str) -> Any:
    """The server's public names, imported from :mod:`rtcrypto.simulator.server` on first use."""
    if name in __all__:
        from rtcrypto.simulator import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
