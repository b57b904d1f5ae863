"""Sandbox accounts: API keys, secrets, starting balances and the heartbeat flag (pure), and the
request counter middleware of the simulator's app.

``--sandbox-account KEY:SECRET`` (repeatable) and ``--sandbox-from-settings`` make the accounts;
``--sandbox-require-heartbeat`` marks them as Gemini "Requires Heartbeat" sessions, whose live
orders are cancelled after ``RTC_SIMULATOR_HEARTBEAT_TIMEOUT_S`` (30 s) without a private
request (:mod:`rtcrypto.simulator.sandbox_trades`). Secrets are never echoed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

DEFAULT_USD = Decimal("10000")
DEFAULT_BTC = Decimal("0")


@dataclass(frozen=True, slots=True)
class SandboxAccount:
    """An API key of the sandbox, its secret and the starting balances (lower-case currencies)."""

    api_key: str
    api_secret: str = field(repr=False)
    balances: tuple[tuple[str, Decimal], ...] = (("usd", DEFAULT_USD), ("btc", DEFAULT_BTC))
    # Gemini's "Requires Heartbeat" session: live orders cancelled after a silence
    requires_heartbeat: bool = False

    def __post_init__(self) -> None:
        if not self.api_key or not self.api_secret:
            raise ValueError("a sandbox account needs an API key and a secret")
        for currency, amount in self.balances:
            if amount < 0:
                raise ValueError(f"sandbox balance of {currency} must be >= 0, got {amount}")


def parse_sandbox_account(
    spec: str,
    usd: Decimal = DEFAULT_USD,
    btc: Decimal = DEFAULT_BTC,
    requires_heartbeat: bool = False,
) -> SandboxAccount:
    """``KEY:SECRET`` -> an account with ``usd`` and ``btc``; the secret is not echoed on error."""
    api_key, separator, api_secret = spec.partition(":")
    if not separator or not api_key.strip() or not api_secret.strip():
        raise ValueError("--sandbox-account must be KEY:SECRET (both non-empty)")
    return SandboxAccount(
        api_key.strip(), api_secret.strip(), (("usd", usd), ("btc", btc)), requires_heartbeat
    )


def sandbox_accounts_from_flags(
    specs: Sequence[str],
    usd: Decimal = DEFAULT_USD,
    btc: Decimal = DEFAULT_BTC,
    settings_key: str | None = None,
    settings_secret: str | None = None,
    requires_heartbeat: bool = False,
) -> tuple[SandboxAccount, ...]:
    """Accounts of ``--sandbox-account KEY:SECRET`` (repeatable) and, when given, the settings'
    key and secret (``--sandbox-from-settings``: RTC_GEMINI_API_KEY / RTC_GEMINI_API_SECRET)."""
    accounts = [parse_sandbox_account(spec, usd, btc, requires_heartbeat) for spec in specs]
    if settings_key is not None or settings_secret is not None:
        if not settings_key or not settings_secret:
            raise ValueError(
                "--sandbox-from-settings needs RTC_GEMINI_API_KEY and RTC_GEMINI_API_SECRET"
            )
        balances = (("usd", usd), ("btc", btc))
        accounts.append(SandboxAccount(settings_key, settings_secret, balances, requires_heartbeat))
    keys = [account.api_key for account in accounts]
    if len(set(keys)) != len(keys):
        raise ValueError("each sandbox account needs its own API key")
    return tuple(accounts)


def request_counter(counts: Counter[str]) -> Any:
    """aiohttp middleware: count every request per route pattern (``/v1/book/{symbol}``), so
    tests can prove which endpoints a client hit. ``/_sim/*`` (the admin API) is not counted."""

    @web.middleware
    async def count(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        resource = request.match_info.route.resource
        pattern = resource.canonical if resource is not None else "unmatched"
        if not pattern.startswith("/_sim/"):
            counts[pattern] += 1
        return await handler(request)

    return count
