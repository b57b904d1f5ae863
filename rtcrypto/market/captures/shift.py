"""Moving a parsed capture in time, by whole minutes (the simulator's loop over a short file)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from rtcrypto.market.captures.messages import CaptureMessage, TradePrint
from rtcrypto.market.captures.reader import Capture


def whole_minutes_until(first_ms: int, now_ms: int) -> int:
    """The largest multiple of one minute that moves ``first_ms`` to at most ``now_ms``."""
    return max(0, (now_ms - first_ms) // 60_000 * 60_000)


def shift_capture(capture: Capture, shift_ms: int) -> Capture:
    """A copy of ``capture`` with every receive (and exchange) time moved by ``shift_ms``.

    Shifting by whole minutes keeps every message in the same position inside its one-minute
    window, so per-window sums are those of the file, relabelled to later minutes.
    """

    def trade(print_: TradePrint) -> TradePrint:
        exchange_ms = None if print_.ts_exchange_ms is None else print_.ts_exchange_ms + shift_ms
        return replace(
            print_, ts_receive_ms=print_.ts_receive_ms + shift_ms, ts_exchange_ms=exchange_ms
        )

    messages: list[CaptureMessage] = []
    for message in capture.messages:
        if isinstance(message, TradePrint):
            messages.append(trade(message))
        else:
            messages.append(
                replace(
                    message,
                    ts_receive_ms=message.ts_receive_ms + shift_ms,
                    trades=tuple(trade(t) for t in message.trades),
                )
            )
    return replace(capture, messages=messages, skip_reasons=Counter(capture.skip_reasons))
