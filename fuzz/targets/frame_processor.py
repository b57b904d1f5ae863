"""Fuzz target: the ingest's frame processor (:class:`rtcrypto.ingest.processor.FrameProcessor`).

One input is a sequence of websocket frames, one per line, fed to a fresh processor received at
the Gemini capture's time plus 100 ms per frame; then a clock tick a minute later and the book's
depth. Nothing may raise: a frame that cannot be processed must come back as a dead letter.
Invariants checked on every input: every record's value is JSON, and the book holds only
positive sizes.
"""

from __future__ import annotations

import json

from fuzz.seeds import gemini_v1_frames
from rtcrypto.ingest.processor import FrameProcessor

T0_MS = 1_618_677_942_000  # 2021-04-17 16:45:42 UTC, the Gemini capture's start
FRAMES_PER_SEED = 12


def test_one_input(data: bytes) -> None:
    processor = FrameProcessor(symbol="BTCUSD", band_pct=0.5, source="fuzz")
    receive_ms = T0_MS
    for frame in data.split(b"\n"):
        receive_ms += 100
        result = processor.on_frame(frame, receive_ms)
        _check(result.records)
    _check(processor.clock_tick(receive_ms + 60_000).records)
    processor.book.depth(processor.band_pct)
    for levels in (processor.book.bids, processor.book.asks):
        for size in levels.values():
            if not size > 0:
                raise AssertionError(f"the book holds a level of size {size}")


def _check(records: list) -> None:  # type: ignore[type-arg]
    for record in records:
        json.loads(record.value)


def seed_corpus() -> list[bytes]:
    """Runs of real frames from the Gemini capture (v1 form), plus a deeply nested frame."""
    frames = gemini_v1_frames()
    seeds = [
        "\n".join(frames[start : start + FRAMES_PER_SEED]).encode()
        for start in range(0, len(frames), FRAMES_PER_SEED)
    ]
    seeds.append(b"[" * 1500 + b"]" * 1500)
    return seeds
