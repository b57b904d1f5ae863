"""Versioned forecast artifacts, the publish gate, and ``load_current`` for the trader.

Layout under ``settings.forecast_dir`` (default ``<home>/forecast``)::

    versions/<version>/forecast.parquet   ds (UTC), yhat, yhat_lower, yhat_upper (log price), side
    versions/<version>/metadata.json      version, training window, data fingerprint, holdout
                                          window and backtest metrics, parity flag, gate verdict
    versions/<version>/components.png     trend and seasonality of the model
    versions/<version>/equity.png         holdout equity: strategy vs buy-and-hold
    current                               text file: the current version (replaced atomically)

Contract for the trader: read ``current`` (``current_version()`` is one small file read; poll
it, or its mtime, each minute), and when the version changes call ``load_current()`` and switch
to the new forecast between minutes. A version directory is complete before ``current`` names
it, and is never modified afterwards.

The gate (``gate``), in this order; the rule that decided and its reason are recorded in the
version's ``metadata.json`` (``gate.rule``, ``gate.reason``):

1. ``first``: no current version: the candidate becomes current.
2. ``stale_current``: the current version is **stale**: its forecast does not cover the next
   ``stale_after_hours`` hours (``RTC_FORECAST_STALE_AFTER_HOURS``, default 24) after the
   reference time, every minute of ``[reference, reference + stale_after_hours)``. The reference
   is ``now_ms`` when given (the feed's clock: the trader's minutes), else the candidate's data
   end (the minute after its last held-out minute). Then any **valid** candidate becomes current:
   finite ``yhat`` on every row, scored on at least one held-out minute, and covering that same
   window itself (a candidate that would not help the trader either is not promoted).
3. ``not_worse`` / ``worse``: a candidate trains on its data before the holdout (the last
   ``holdout_days`` days) and is scored on the holdout. The current version is re-scored from its
   stored forecast on the same held-out minutes, restricted to minutes after both models'
   training ends (so neither has seen them) and covered by both forecasts: that is the common
   holdout. The candidate becomes current when its strategy return after fees there is not below
   the current's (ties pass); else it stays a candidate.
4. ``no_common_holdout``: fewer than 2 common held-out minutes and the current version is not
   stale (or the candidate is not valid): the candidate stays a candidate.

Before, rule 4 refused every candidate once the current forecast had no held-out minute in
common with new data (a forecast covers about 104 days): the current version then aged out and
the trader skipped every minute. Rule 2 ends that. ``publish(force_reason=...)``
(``rtc forecast publish --force --reason TEXT``) promotes regardless of the gate (rule
``forced``) and records the reason, the user and the time in ``metadata.json`` (``forced``); the
gate's own verdict is kept next to it.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rtcrypto.forecast.model import (
    DEFAULT_HORIZON_MINUTES,
    FORECAST_COLUMNS,
    ForecastError,
    ForecastModel,
    TrainOptions,
    components_frame,
    forecast,
    prepare,
    side_codes,
    train,
)
from rtcrypto.forecast.walkforward import (
    DEFAULT_HOLDOUT_DAYS,
    HoldoutScore,
    score_forecast,
    split_holdout,
)
from rtcrypto.locks import exclusive_file_lock
from rtcrypto.trading.backtest import BacktestConfig, simulate

CURRENT_POINTER = "current"
VERSIONS_DIR = "versions"
GATE_METRIC = "return_pct"


class NoCurrentForecastError(ForecastError):
    """Nothing has been published as current yet."""


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    reason: str
    common_minutes: int
    candidate_metrics: dict[str, Any] | None
    current_metrics: dict[str, Any] | None
    rule: str = ""  # first, stale_current, not_worse, worse, no_common_holdout (forced: publish)
    freshness: dict[str, Any] | None = None  # reference time, window, what covers it


@dataclass(frozen=True)
class Freshness:
    """Whether forecasts cover ``[reference, reference + hours)`` (UTC minutes)."""

    reference: pd.Timestamp
    hours: float
    current_last: pd.Timestamp | None
    current_covers: bool
    candidate_covers: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference.isoformat(),
            "stale_after_hours": self.hours,
            "current_forecast_last": None
            if self.current_last is None
            else self.current_last.isoformat(),
            "current_covers": self.current_covers,
            "candidate_covers": self.candidate_covers,
        }


@dataclass(frozen=True)
class PublishResult:
    version: str
    folder: Path
    promoted: bool
    reason: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class CurrentForecast:
    version: str
    forecast: pd.DataFrame  # FORECAST_COLUMNS
    metadata: dict[str, Any]
    pointer_mtime_ns: int


def resolve_forecast_dir(forecast_dir: Path | None = None) -> Path:
    """The forecast folder: the argument, else ``settings.forecast_dir``, else ``<home>/forecast``."""
    if forecast_dir is not None:
        return Path(forecast_dir)
    from rtcrypto.config import get_settings

    return get_settings().forecast_path


def data_fingerprint(bars: pd.DataFrame) -> str:
    """SHA-256 of the minute times (ms) and prices the model and holdout used."""
    ts = pd.to_datetime(bars["ts"], utc=True).dt.tz_convert(None).to_numpy()
    digest = hashlib.sha256()
    digest.update(ts.astype("datetime64[ms]").astype(np.int64).tobytes())
    digest.update(np.ascontiguousarray(bars["price"].to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()


def current_version(forecast_dir: Path | None = None) -> str | None:
    """The current version's name, or None; cheap enough to poll every minute."""
    pointer = resolve_forecast_dir(forecast_dir) / CURRENT_POINTER
    try:
        return pointer.read_text().strip() or None
    except FileNotFoundError:
        return None


def load_version(version: str, forecast_dir: Path | None = None) -> tuple[pd.DataFrame, dict]:
    folder = resolve_forecast_dir(forecast_dir) / VERSIONS_DIR / version
    frame = pd.read_parquet(folder / "forecast.parquet")
    metadata = json.loads((folder / "metadata.json").read_text())
    return frame, metadata


def load_current(forecast_dir: Path | None = None) -> CurrentForecast:
    """The current forecast and its version; raises ``NoCurrentForecastError`` if none."""
    folder = resolve_forecast_dir(forecast_dir)
    pointer = folder / CURRENT_POINTER
    try:
        mtime_ns = pointer.stat().st_mtime_ns
    except FileNotFoundError:
        raise NoCurrentForecastError(
            f"no current forecast in {folder}: publish one with `rtc forecast publish`"
        ) from None
    version = pointer.read_text().strip()
    frame, metadata = load_version(version, folder)
    return CurrentForecast(
        version=version, forecast=frame, metadata=metadata, pointer_mtime_ns=mtime_ns
    )


def _write_pointer(folder: Path, version: str) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=".current-", dir=folder)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(version + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, folder / CURRENT_POINTER)  # atomic: readers see old or new


def covers(frame: pd.DataFrame, start: pd.Timestamp, hours: float) -> bool:
    """Whether ``frame`` (``ds`` UTC minutes) has every minute of ``[start, start + hours)``."""
    if frame.empty:
        return False
    first = _utc(start).floor("min")
    wanted = pd.date_range(first, periods=max(1, math.ceil(hours * 60)), freq="min")
    present = pd.DatetimeIndex(pd.to_datetime(frame["ds"], utc=True))
    return bool(wanted.isin(present).all())


def valid_candidate(frame: pd.DataFrame) -> str | None:
    """None when ``frame`` is a usable forecast, else what is wrong with it."""
    if frame.empty:
        return "the candidate forecast is empty"
    if not np.isfinite(frame["yhat"].to_numpy(dtype=np.float64)).all():
        return "the candidate forecast has non-finite yhat"
    return None


def gate(
    candidate: pd.DataFrame,
    candidate_trained_until: pd.Timestamp,
    holdout: pd.DataFrame,
    forecast_dir: Path | None = None,
    config: BacktestConfig | None = None,
    *,
    now_ms: int | None = None,
    stale_after_hours: float | None = None,
) -> GateDecision:
    """The module's gate: first, stale current, then the common holdout comparison."""
    version = current_version(forecast_dir)
    if version is None:
        return GateDecision(
            True, "no current version: the first candidate becomes current", 0, None, None, "first"
        )
    hours = _stale_after_hours(stale_after_hours)
    holdout_ts = pd.to_datetime(holdout["ts"], utc=True)
    if now_ms is not None:
        reference, reference_text = pd.Timestamp(now_ms, unit="ms", tz="UTC"), "now (feed clock)"
    else:
        reference = holdout_ts.iloc[-1] + pd.Timedelta(minutes=1)
        reference_text = "the candidate's data end"
    current_frame, current_meta = load_version(version, forecast_dir)
    current_ds = pd.to_datetime(current_frame["ds"], utc=True)
    problem = valid_candidate(candidate)
    freshness = Freshness(
        reference=reference.floor("min"),
        hours=hours,
        current_last=current_ds.max() if len(current_ds) else None,
        current_covers=covers(current_frame, reference, hours),
        candidate_covers=problem is None and covers(candidate, reference, hours),
    )
    window = f"the {hours:g} h after {reference_text} ({freshness.reference:%Y-%m-%d %H:%M})"
    current_until = pd.Timestamp(current_meta["training"]["last"])
    since = max(_utc(candidate_trained_until), _utc(current_until))
    covered = (
        (holdout_ts > since)
        & holdout_ts.isin(current_ds)
        & holdout_ts.isin(pd.to_datetime(candidate["ds"], utc=True))
    )
    common = holdout[covered.to_numpy()].reset_index(drop=True)
    mine = theirs = None
    comparison = ""
    if len(common) >= 2:
        mine = score_forecast(candidate, common, candidate_trained_until, config).metrics()
        theirs = score_forecast(current_frame, common, current_until, config).metrics()
        comparison = (
            f"{GATE_METRIC} after fees on {len(common):,} common held-out minutes: candidate "
            f"{mine[GATE_METRIC]:+.4f} % vs current {version} {theirs[GATE_METRIC]:+.4f} %"
        )
    record = freshness.to_dict()
    if not freshness.current_covers and freshness.candidate_covers:
        reason = (
            f"current version {version} is stale: its forecast does not cover {window}; the "
            f"candidate does"
        )
        reason += f" ({comparison})" if comparison else ""
        return GateDecision(True, reason, len(common), mine, theirs, "stale_current", record)
    if mine is None or theirs is None:
        why = (
            f"the candidate cannot replace it: {problem}"
            if problem
            else f"current version {version} still covers {window}"
            if freshness.current_covers
            else f"the candidate does not cover {window} either"
        )
        reason = (
            f"no common holdout with current version {version}: no held-out minute after both "
            f"training ends ({since:%Y-%m-%d %H:%M}) is covered by both forecasts, and {why}"
        )
        return GateDecision(False, reason, len(common), None, None, "no_common_holdout", record)
    promoted = mine[GATE_METRIC] >= theirs[GATE_METRIC]
    reason = ("not worse than current: " if promoted else "worse than current: ") + comparison
    rule = "not_worse" if promoted else "worse"
    return GateDecision(promoted, reason, len(common), mine, theirs, rule, record)


def _stale_after_hours(hours: float | None) -> float:
    if hours is not None:
        if hours <= 0:
            raise ForecastError(f"stale_after_hours must be > 0, got {hours}")
        return float(hours)
    from rtcrypto.config import get_settings

    return float(get_settings().forecast_stale_after_hours)


def _utc(moment: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _plot_components(model: ForecastModel, path: Path, frame: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = pd.date_range(model.train_first, model.train_last, freq="15min")
    future = pd.DatetimeIndex(frame["ds"].dt.tz_convert(None)[::15])
    parts = components_frame(model, history.append(future))
    names = [name for name in ("trend", "daily", "weekly", "yearly") if name in parts.columns]
    figure, axes = plt.subplots(len(names), 1, figsize=(9, 2.4 * len(names)), squeeze=False)
    periods = {"daily": pd.Timedelta(days=1), "weekly": pd.Timedelta(days=7)}
    for axis, name in zip(axes[:, 0], names, strict=True):
        if name in periods:  # one period is the whole story, as in Prophet's own plot
            shown = parts[parts["ds"] < parts["ds"].iloc[0] + periods[name]]
            axis.plot(shown["ds"], shown[name], linewidth=0.9)
            axis.set_title(f"{name} seasonality (log price), one period", fontsize=9)
            continue
        axis.plot(parts["ds"], parts[name], linewidth=0.8)
        axis.set_title(f"{name} (log price); dotted: end of training", fontsize=9)
        axis.axvline(model.train_last, color="grey", linestyle=":", linewidth=0.8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _plot_equity(
    frame: pd.DataFrame, holdout: pd.DataFrame, config: BacktestConfig, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    joined = pd.DataFrame(
        {"ds": pd.to_datetime(holdout["ts"], utc=True), "close": holdout["close"].to_numpy()}
    ).merge(frame[["ds", "side"]].assign(ds=pd.to_datetime(frame["ds"], utc=True)), on="ds")
    figure, axis = plt.subplots(figsize=(9, 3.5))
    if not joined.empty:
        prices = joined["close"].to_numpy()
        strategy = simulate(prices, side_codes(joined["side"].to_numpy()), config)
        hold = simulate(prices, np.ones(len(prices), dtype=np.int8), config)
        axis.plot(joined["ds"], strategy.equity, label="forecast strategy", linewidth=0.9)
        axis.plot(joined["ds"], hold.equity, label="buy and hold", linewidth=0.9)
        axis.legend(fontsize=8)
    axis.set_title("held-out equity (USD, fees charged, no liquidity gate)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def new_version_name(fingerprint: str, now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{fingerprint[:8]}"


def publish(
    bars: pd.DataFrame,
    *,
    source: str = "",
    holdout_days: float = DEFAULT_HOLDOUT_DAYS,
    horizon_minutes: int = DEFAULT_HORIZON_MINUTES,
    book_parity: bool = False,
    options: TrainOptions | None = None,
    forecast_dir: Path | None = None,
    config: BacktestConfig | None = None,
    version: str | None = None,
    now_ms: int | None = None,
    stale_after_hours: float | None = None,
    force_reason: str | None = None,
    forced_by: str | None = None,
) -> PublishResult:
    """Train on ``bars`` before the holdout, score, write the artifacts, then apply the gate.

    The published forecast starts at the minute after training (the holdout's first minute) and
    runs ``horizon_minutes`` on: the very forecast that was scored. ``now_ms`` and
    ``stale_after_hours`` go to ``gate`` (see the module doc). ``force_reason`` (non-empty)
    promotes regardless of the gate and records it with ``forced_by`` (default: the OS user).
    """
    policy = GatePolicy(now_ms, stale_after_hours, force_reason, forced_by)
    policy.check()
    config = config or BacktestConfig()
    training, holdout = split_holdout(bars, holdout_days)
    model = train(prepare(training), book_parity=book_parity, options=options)
    frame = forecast(model, minutes=horizon_minutes)
    score: HoldoutScore = score_forecast(frame, holdout, model.train_last, config)
    fingerprint = data_fingerprint(bars)
    version = version or new_version_name(fingerprint)
    root = resolve_forecast_dir(forecast_dir)
    folder = root / VERSIONS_DIR / version
    if folder.exists():
        raise ForecastError(f"version {version} already exists in {folder.parent}")
    with _publish_lock(root):
        return _write_and_gate(
            root,
            folder,
            version,
            model,
            frame,
            holdout,
            score,
            fingerprint,
            source,
            holdout_days,
            horizon_minutes,
            config,
            policy,
        )


@dataclass(frozen=True)
class GatePolicy:
    """What ``publish`` passes to the gate, and a forced promotion's reason."""

    now_ms: int | None = None
    stale_after_hours: float | None = None
    force_reason: str | None = None
    forced_by: str | None = None

    def check(self) -> None:
        if self.force_reason is not None and not self.force_reason.strip():
            raise ForecastError("a forced publish needs a reason: pass a non-empty force_reason")
        if self.stale_after_hours is not None and self.stale_after_hours <= 0:
            raise ForecastError(f"stale_after_hours must be > 0, got {self.stale_after_hours}")

    def forced(self, decision: GateDecision) -> tuple[GateDecision, dict[str, Any] | None]:
        """``decision`` overridden by a forced promotion (and its record), or unchanged."""
        if self.force_reason is None:
            return decision, None
        record = {
            "reason": self.force_reason.strip(),
            "by": self.forced_by or _os_user(),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "gate_rule": decision.rule,
            "gate_reason": decision.reason,
            "gate_would_promote": decision.promoted,
        }
        reason = (
            f"forced by {record['by']} at {record['at']}: {record['reason']} (the gate alone: "
            f"{'promote' if decision.promoted else 'refuse'}, {decision.reason})"
        )
        return replace(decision, promoted=True, reason=reason, rule="forced"), record


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


@contextmanager
def _publish_lock(root: Path) -> Iterator[None]:
    """One publish at a time per forecast folder (the gate reads, then moves, the pointer)."""
    with exclusive_file_lock(_ensure(root) / ".publish.lock"):
        yield


def _write_and_gate(
    root: Path,
    folder: Path,
    version: str,
    model: ForecastModel,
    frame: pd.DataFrame,
    holdout: pd.DataFrame,
    score: HoldoutScore,
    fingerprint: str,
    source: str,
    holdout_days: float,
    horizon_minutes: int,
    config: BacktestConfig,
    policy: GatePolicy,
) -> PublishResult:
    if folder.exists():
        raise ForecastError(f"version {version} already exists in {folder.parent}")
    compared_with = current_version(root)
    decision, forced = policy.forced(
        gate(
            frame,
            model.train_last,
            holdout,
            root,
            config,
            now_ms=policy.now_ms,
            stale_after_hours=policy.stale_after_hours,
        )
    )
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=_ensure(root / VERSIONS_DIR)))
    frame[list(FORECAST_COLUMNS)].to_parquet(staging / "forecast.parquet", index=False)
    _plot_components(model, staging / "components.png", frame)
    _plot_equity(frame, holdout, config, staging / "equity.png")
    holdout_ts = pd.to_datetime(holdout["ts"], utc=True)
    metadata: dict[str, Any] = {
        "version": version,
        "source": source,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "book_parity": model.options.book_parity,
        "train_options": model.options.to_dict(),
        "training": {
            "first": _utc(model.train_first).isoformat(),
            "last": _utc(model.train_last).isoformat(),
            "rows": model.train_rows,
            "fit_rows": model.fit_rows,
            "bucket_minutes": model.bucket_minutes,
            "fit_seconds": round(model.fit_seconds, 3),
            "train_seconds": round(model.train_seconds, 3),
        },
        "data_fingerprint": fingerprint,
        "horizon_minutes": horizon_minutes,
        "forecast_first": frame["ds"].iloc[0].isoformat(),
        "forecast_last": frame["ds"].iloc[-1].isoformat(),
        "holdout": {
            "first": holdout_ts.iloc[0].isoformat(),
            "last": holdout_ts.iloc[-1].isoformat(),
            "days": holdout_days,
        },
        "backtest": score.metrics(),
        "bounds": "cheap: yhat +- z*sqrt(residual_var + h*step_var), log scale",
        "gate": {
            "metric": GATE_METRIC,
            "promoted": decision.promoted,
            "rule": decision.rule,
            "reason": decision.reason,
            "freshness": decision.freshness,
            "common_minutes": decision.common_minutes,
            "candidate": decision.candidate_metrics,
            "current": decision.current_metrics,
            "compared_with": compared_with,
        },
        "status": "current" if decision.promoted else "candidate",
    }
    if forced is not None:
        metadata["forced"] = forced
    (staging / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str))
    os.replace(staging, folder)
    if decision.promoted:
        _write_pointer(root, version)
    return PublishResult(version, folder, decision.promoted, decision.reason, metadata)


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder
