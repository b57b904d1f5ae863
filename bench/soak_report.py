"""The soak test's verdict and its ``report.md`` (the tables docs/reliability.md's "Soak test" part quotes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.soak_metrics import steady_rss_mb


def nearest(samples: Sequence[Mapping[str, Any]], elapsed_s: float) -> Mapping[str, Any]:
    """The sample taken closest to ``elapsed_s``."""
    return min(samples, key=lambda sample: abs(float(sample["elapsed_s"]) - elapsed_s))


def memory_verdict(
    slopes: Mapping[str, float | None], max_slope_mb_per_h: float
) -> tuple[bool, list[str]]:
    """Pass when every process has a slope and each is below the threshold; the reasons if not."""
    problems = [
        f"{name}: {'too few samples in the second half' if slope is None else f'{slope:+.1f} MB/h'}"
        for name, slope in sorted(slopes.items())
        if slope is None or slope >= max_slope_mb_per_h
    ]
    return (bool(slopes) and not problems), problems


def _rss(samples: Sequence[Mapping[str, Any]], sample: Mapping[str, Any], name: str) -> str:
    index = next(i for i, candidate in enumerate(samples) if candidate is sample)
    steady = steady_rss_mb(samples, index, name)
    return "-" if steady is None else f"{steady:,.0f}"


def _slope(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def rss_table(
    samples: Sequence[Mapping[str, Any]],
    slopes: Mapping[str, Mapping[str, float | None]],
    run_s: float,
) -> list[str]:
    """Markdown rows: steady RSS (MB; see ``steady_rss_mb``) at the start, the middle and the end,
    the second-half slopes (long-lived processes, judged; whole tree, for information) and the
    processes of the tree at the end."""
    first, middle, last = samples[0], nearest(samples, run_s / 2), samples[-1]
    lines = [
        f"| process (with children) | RSS MB at {first['elapsed_s'] / 60:.0f} min | at "
        f"{middle['elapsed_s'] / 60:.0f} min | at {last['elapsed_s'] / 60:.0f} min | "
        "slope MB/h, 2nd half (long-lived) | (whole tree) | at the end, by process (MB) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name in sorted(slopes):
        final = (last.get("rss") or {}).get(name) or {}
        parts = ", ".join(
            f"{comm} {mb:,.0f}" for comm, mb in (final.get("by_comm_mb") or {}).items()
        )
        lines.append(
            f"| {name} | {_rss(samples, first, name)} | {_rss(samples, middle, name)} | "
            f"{_rss(samples, last, name)} | "
            f"{_slope(slopes[name].get('persistent'))} | {_slope(slopes[name].get('tree'))} | "
            f"{parts} |"
        )
    return lines


def _load(samples: Sequence[Mapping[str, Any]]) -> str:
    loads = [float(sample["load_1m"]) for sample in samples]
    return f"min {min(loads):.1f}, mean {sum(loads) / len(loads):.1f}, max {max(loads):.1f}"


def _max_lag(samples: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    worst: dict[str, int] = {}
    for sample in samples:
        for name, lag in (sample.get("lag") or {}).items():
            if isinstance(lag, int):
                worst[name] = max(worst.get(name, 0), lag)
    return worst


def write_report(summary: dict[str, Any], samples: Sequence[Mapping[str, Any]], out: Path) -> bool:
    """Judge the run, add the verdict to ``summary``, write ``report.md``; True on pass."""
    run_s = float(summary["minutes"]) * 60
    slopes = summary["slopes_mb_per_h"]
    judged = {name: value.get("persistent") for name, value in slopes.items()}
    memory_ok, memory_problems = memory_verdict(judged, float(summary["max_slope_mb_per_h"]))
    counts = summary["counts"]
    counts_ok = all(item["ok"] for item in counts["checks"])
    changes = int(counts["orderbook_by_type"].get("change", 0))
    span_s = float(counts["change_wall_span_s"]) or 1.0
    replay_rate = changes / span_s
    capture_rate = float(summary["capture"]["changes_per_s"])
    summary["rates"] = {
        "capture_changes_per_s": capture_rate,
        "replay_changes_per_wall_s": round(replay_rate, 1),
        "ratio": round(replay_rate / capture_rate, 2),
    }
    summary["verdict"] = {
        "memory_ok": memory_ok,
        "memory_problems": memory_problems,
        "counts_ok": counts_ok,
        "passed": memory_ok and counts_ok,
    }
    last = samples[-1]
    lines = [
        f"# Soak test {summary['started']}: {'PASSED' if memory_ok and counts_ok else 'FAILED'}",
        "",
        f"`{summary['command']}`: {summary['minutes']:g} min, history replay at "
        f"{summary['speed']:g}x, a sample every {summary['interval_s']:g} s; "
        f"{summary['cpus']} CPUs, load average {_load(samples)}; restarts "
        f"{len(summary.get('restarts') or [])}.",
        "",
        f"Rate: the real Gemini capture has {capture_rate:.1f} BTCUSD changes/s "
        f"({summary['capture']['changes']:,} in {summary['capture']['span_s']:.1f} s, snapshot "
        f"excluded); the replay produced {changes:,} changes in {span_s:,.0f} s of wall time: "
        f"{replay_rate:,.1f}/s = {replay_rate / capture_rate:.1f}x.",
        "",
        f"Memory (threshold < {summary['max_slope_mb_per_h']:g} MB/h over the second half): "
        f"{'flat' if memory_ok else 'NOT flat: ' + '; '.join(memory_problems)}",
        "",
        *rss_table(samples, slopes, run_s),
        "",
        "| check | result | values |",
        "|---|---|---|",
    ]
    for item in counts["checks"]:
        values = ", ".join(
            f"{k} {v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k} {v}"
            for k, v in item.items()
            if k not in ("check", "ok")
        )
        lines.append(f"| {item['check']} | {'ok' if item['ok'] else 'MISMATCH'} | {values} |")
    lines += [
        "",
        f"Orderbook records by type: {counts['orderbook_by_type']}; windows emitted "
        f"{counts['windows_emitted']}, closed windows with changes "
        f"{counts['windows_with_changes_closed']}, mismatched {counts['windows_mismatched'] or 'none'}; "
        f"journal {counts['journal_by_type']}.",
        "",
        "| topic | records produced | retained | log bytes on disk |",
        "|---|---:|---:|---:|",
    ]
    for topic, size in (last.get("topics") or {}).items():
        if isinstance(size, Mapping):
            lines.append(
                f"| {topic} | {size['produced']:,} | {size['retained']:,} | {size['bytes']:,} |"
            )
    lines += ["", "| index | documents | bytes |", "|---|---:|---:|"]
    for index, size in (last.get("indices") or {}).items():
        if isinstance(size, Mapping):
            lines.append(f"| {index} | {size['docs']:,} | {size['bytes']:,} |")
    spool = [int((sample.get("spool") or {}).get("bytes", 0)) for sample in samples]
    lines += [
        "",
        f"Spool: max {max(spool):,} B, at the end {spool[-1]:,} B. Lag, worst sample: "
        f"{_max_lag(samples)}.",
    ]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    return memory_ok and counts_ok
