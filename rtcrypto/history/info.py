"""``summarize``: what the history folder holds, per source, from the manifest alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rtcrypto.history.store import read_manifest, resolve_history_dir


@dataclass(frozen=True)
class SourceSummary:
    """One source's imports; ``rows`` sums the imports, so overlapping files count twice."""

    source: str
    imports: int
    rows: int
    first_ts_ms: int | None
    last_ts_ms: int | None
    parts: int
    price_bases: tuple[str, ...]
    files: tuple[str, ...]


def summarize(history_dir: Path | None = None) -> list[SourceSummary]:
    """One summary per imported source, sorted by name (empty if nothing was imported)."""
    entries = read_manifest(resolve_history_dir(history_dir))
    summaries = []
    for source in sorted({entry.source for entry in entries}):
        mine = [entry for entry in entries if entry.source == source]
        firsts = [e.report["first_ts_ms"] for e in mine if e.report["first_ts_ms"] is not None]
        lasts = [e.report["last_ts_ms"] for e in mine if e.report["last_ts_ms"] is not None]
        summaries.append(
            SourceSummary(
                source=source,
                imports=len(mine),
                rows=sum(int(entry.report["rows_kept"]) for entry in mine),
                first_ts_ms=min(firsts, default=None),
                last_ts_ms=max(lasts, default=None),
                parts=sum(len(entry.parts) for entry in mine),
                price_bases=tuple(sorted({entry.report["price_basis"] for entry in mine})),
                files=tuple(entry.file for entry in mine),
            )
        )
    return summaries
