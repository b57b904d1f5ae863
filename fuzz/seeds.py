"""Seed inputs from the real captures in ``../shared/data/orderbook`` (shared by the targets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ORDERBOOK_DATA = REPO.parent / "shared" / "data" / "orderbook"
GEMINI_CAPTURE = ORDERBOOK_DATA / "gemini_2021-04-17__GEMINI.ws.36.0.gz"


def capture_lines(path: Path, count: int) -> list[str]:
    """The first ``count`` lines of a capture file (gzip or text)."""
    from rtcrypto.market.captures.reader import read_lines

    lines: list[str] = []
    for line in read_lines(path):
        lines.append(line)
        if len(lines) >= count:
            break
    return lines


def gemini_v1_frames(count: int = 200, events_per_frame: int = 4) -> list[str]:
    """Gemini v1 market data frames (updates with change and trade events, heartbeats) made from
    the real Gemini capture the way the simulator sends them, with ``socket_sequence`` from 0."""
    from rtcrypto.market.captures import TradePrint, load_capture
    from rtcrypto.market.captures.gemini_v1 import replay_v1_change_events, trade_to_v1_event

    capture = load_capture(GEMINI_CAPTURE)
    frames: list[str] = []
    batch: list[dict[str, Any]] = []
    batch_ms = 0
    event_id = 1
    for ts_ms, event in replay_v1_change_events(capture.messages, "BTCUSD"):
        if batch and (ts_ms != batch_ms or len(batch) >= events_per_frame):
            frames.append(_update(len(frames), event_id, batch_ms, batch))
            event_id += 1
            batch = []
        batch.append(dict(event))
        batch_ms = ts_ms
        if len(frames) >= count:
            break
    trades = [m for m in capture.messages if isinstance(m, TradePrint)][:20]
    for trade in trades:
        frames.append(
            _update(len(frames), event_id, trade.ts_receive_ms, [trade_to_v1_event(trade)])
        )
        event_id += 1
    heartbeat = {"type": "heartbeat", "socket_sequence": len(frames)}
    frames.append(json.dumps({**heartbeat, "timestampms": capture.last_ms + 60_000}))
    return frames


def _update(sequence: int, event_id: int, ts_ms: int, events: list[dict[str, Any]]) -> str:
    message = {
        "type": "update",
        "eventId": event_id,
        "socket_sequence": sequence,
        "timestamp": ts_ms // 1000,
        "timestampms": ts_ms,
        "events": events,
    }
    return json.dumps(message, separators=(",", ":"))
