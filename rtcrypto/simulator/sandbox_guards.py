"""Gemini's refusals that are not about a request's content: the private rate limit (429
``RateLimit``) and maintenance (503 ``Maintenance``), for the simulator.

- :class:`RateWindow`: at most ``rate_per_min`` private requests per API key in any 60 s
  (``RTC_SIMULATOR_PRIVATE_RATE_PER_MIN``; Gemini documents 600 per minute; 0 = no limit, the
  default, so existing clients are not slowed). A refused request does not use its nonce.
- :func:`maintenance_gate`: while :class:`MaintenanceSwitch` is on, every REST and websocket
  route except ``/_sim/*`` answers 503 with Gemini's error body; ``POST /_sim/maintenance``
  ``{"on": true|false}`` flips it (a fault endpoint: only with ``--fault-endpoints``).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

WINDOW_S = 60.0


class RateWindow:
    """A sliding 60 s window of request times per key (wall clock, seconds)."""

    def __init__(self, rate_per_min: int, wall: Callable[[], float] = time.monotonic) -> None:
        if rate_per_min < 0:
            raise ValueError(f"RTC_SIMULATOR_PRIVATE_RATE_PER_MIN must be >= 0, got {rate_per_min}")
        self.rate_per_min = rate_per_min
        self.wall = wall
        self.seen: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str) -> bool:
        """Count one request of ``key`` and say whether it is within the limit (a refused
        request is not counted)."""
        if self.rate_per_min == 0:
            return True
        now = self.wall()
        times = self.seen[key]
        while times and times[0] <= now - WINDOW_S:
            times.popleft()
        if len(times) >= self.rate_per_min:
            return False
        times.append(now)
        return True


@dataclass(slots=True)
class MaintenanceSwitch:
    """Whether the simulated exchange is in maintenance."""

    on: bool = False

    async def handle_toggle(self, request: web.Request) -> web.Response:
        """``POST /_sim/maintenance`` with ``{"on": bool}``."""
        try:
            body = await request.json()
            value = body["on"]
            if not isinstance(value, bool):
                raise TypeError("on must be true or false")
        except (ValueError, KeyError, TypeError) as error:
            return web.json_response(
                {"result": "error", "reason": "BadRequest", "message": f"{{'on': bool}}: {error}"},
                status=400,
            )
        self.on = value
        return web.json_response({"maintenance": self.on})


def maintenance_body() -> dict[str, str]:
    return {
        "result": "error",
        "reason": "Maintenance",
        "message": "The exchange is down for maintenance (simulated); retry later",
    }


def maintenance_gate(switch: MaintenanceSwitch) -> Any:
    """aiohttp middleware: 503 ``Maintenance`` for every route but ``/_sim/*`` while on."""

    @web.middleware
    async def gate(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if switch.on and not request.path.startswith("/_sim/"):
            return web.json_response(maintenance_body(), status=503)
        return await handler(request)

    return gate
