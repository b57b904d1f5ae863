"""Exchange simulator: replays recorded order books as Gemini market data v1 / v2 and REST.

``rtc simulate --capture FILE`` (or ``python -m streaming.simulator``) serves it; see
:mod:`rtcrypto.simulator.server` for the routes and :mod:`rtcrypto.market.captures` for the mapping.
"""

from rtcrypto.simulator.server import (
    RunningSimulator,
    Simulator,
    SimulatorOptions,
    run,
    serve,
    start_simulator,
)

__all__ = ["RunningSimulator", "Simulator", "SimulatorOptions", "run", "serve", "start_simulator"]
