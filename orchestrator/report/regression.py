"""Regression statistics: is the candidate run slower, fatter or worse than its baseline, or is that noise?

Per (device, component, variant, compute units) and metric:

    latency  launches are the unit (``hierarchical``): change = ratio of the pooled medians (candidate /
             baseline) with a two-stage bootstrap interval (launches, then predictions within them; seeded per
             comparison); a window baseline pools the launches of its runs. The threshold is the spec's or the
             key's noise floor from history (``noise``), whichever is larger. Fewer than ``min_launches`` a
             side: a within-launch interval, confirmed only against a noise floor (else at most
             *suspicious*, with a threshold widened 3x). Fewer than ``min_samples``: insufficient data.
    memory   one peak per run (nearly deterministic): change = candidate - baseline median in MB; the interval
             spans the difference with every baseline run of the window. Threshold: the larger of
             ``memory_mb`` and ``memory_pct`` of the baseline. A jetsam where the baseline fit is a regression.
    quality  one PSNR per run: change = candidate - baseline in dB (negative is worse), same interval rule.

Classification (HUD-style): the point estimate beyond the threshold and the interval excluding "no change"
(ratio 1, delta 0) is a regression (or an improvement, in the good direction); beyond the threshold but the
interval still admitting no change is *suspicious*; within the threshold is *no change*.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from orchestrator.report.data import Baseline, JobData, RunData
from orchestrator.report.hierarchical import hierarchical_ratio
from orchestrator.spec.model import RegressionSpec

Classification = Literal["regression", "improvement", "no change", "suspicious", "insufficient data"]
_CHUNK = 1 << 21  # resampled values per block: bounds memory for large pooled windows
# With fewer than min_launches launches a side and no history, the within-launch interval understates the noise
# by an unknown amount: changes within 3x the threshold (15% by default) are then not even called suspicious.
FEW_LAUNCH_WIDENING = 3.0


@dataclass(frozen=True)
class Comparison:
    device_key: str
    component: str
    variant: str
    compute_units: str
    metric: str  # latency | memory | quality
    unit: str  # ms | MB | dB
    n_candidate: int
    n_baseline: int
    candidate: float | None  # median of the candidate's samples
    baseline: float | None  # median of the baseline's samples
    change: float | None  # latency: ratio; memory: MB; quality: dB
    low: float | None  # confidence interval of ``change``
    high: float | None
    threshold: float  # latency: fraction (0.05); memory: MB; quality: dB
    classification: Classification
    reason: str
    launches_candidate: int = 1  # latency: launches on each side (the unit of the interval)
    launches_baseline: int = 1
    noise_floor: float | None = None  # latency: the key's between-run noise learned from history (fraction)

    @property
    def pct(self) -> float | None:
        """The change as a percentage of the baseline."""
        if self.metric == "latency":
            return None if self.change is None else (self.change - 1.0) * 100
        if self.change is None or not self.baseline:
            return None
        return self.change / self.baseline * 100


# ---- statistics ------------------------------------------------------------------------------------------
def bootstrap_medians(x: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of ``resamples`` resamples (with replacement) of ``x``, computed in bounded blocks."""
    n = len(x)
    per_block = max(1, _CHUNK // max(n, 1))
    out = np.empty(resamples)
    for start in range(0, resamples, per_block):
        stop = min(resamples, start + per_block)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = np.median(x[idx], axis=1)
    return out


def ratio_of_medians(candidate: Sequence[float], baseline: Sequence[float], *, resamples: int, confidence: float,
                     seed: int | Sequence[int]) -> tuple[float, float, float]:
    """(median(candidate) / median(baseline), low, high) with a percentile-bootstrap interval."""
    c, b = np.asarray(candidate, dtype=float), np.asarray(baseline, dtype=float)
    rng = np.random.default_rng(seed)
    ratios = bootstrap_medians(c, resamples, rng) / bootstrap_medians(b, resamples, rng)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha])
    return float(np.median(c) / np.median(b)), float(low), float(high)


def classify(point: float, low: float, high: float, *, null: float, up: float, down: float,
             higher_is_worse: bool = True) -> Classification:
    """Above ``up`` or below ``down`` is a change; confirmed when [low, high] excludes ``null``."""
    if point > up:
        confirmed, higher = low > null, True
    elif point < down:
        confirmed, higher = high < null, False
    else:
        return "no change"
    if not confirmed:
        return "suspicious"
    return "regression" if higher == higher_is_worse else "improvement"


def seed_for(base_seed: int, key: str) -> list[int]:
    """A stable per-comparison seed (Python's hash() is salted per process; crc32 is not)."""
    return [base_seed, zlib.crc32(key.encode())]


# ---- comparisons -----------------------------------------------------------------------------------------
Key = tuple[str, str, str, str]


def _pool(runs: Sequence[RunData], key: Key) -> list[JobData]:
    return [j for r in runs for j in r.jobs if j.key == key and j.status in ("ok", "jetsam")]


def _latency_reason(mc: float, mb: float, ratio: float, low: float, high: float, spec: RegressionSpec,
                    t: float, launches: tuple[int, int], floor: float | None, mode: str) -> str:
    few = f"{launches[0]} candidate and {launches[1]} baseline launch(es): the interval is within launches"
    basis = {"launches": f"over {launches[0]} and {launches[1]} launches",
             "floor": f"{few}; the device's noise floor from history stands in for the variance between them",
             "widened": f"{few} and no history to learn the variance between them from, so nothing is confirmed "
                        f"and the threshold is widened to ±{t:.0%} (measure.launches >= {spec.min_launches})"}[mode]
    why = f"; noise floor of this device {floor:.0%}" if floor is not None and floor > spec.latency_pct / 100 else ""
    return (f"median {mc:.4g} ms vs {mb:.4g} ms: {ratio - 1:+.1%} [{low - 1:+.1%}, {high - 1:+.1%}] at "
            f"{spec.confidence:.0%} {basis}; threshold ±{t:.0%}{why}")


_Common = tuple[str, str, str, str, str, str, int, int, float | None, float | None]  # Comparison's first fields


def _few_launches(common: _Common, flat_c: list[float], flat_b: list[float], spec: RegressionSpec, t: float,
                  floor: float | None, seed: list[int], extra: tuple[int, int, float | None]) -> Comparison:
    """Too few launches for their variance: the interval comes from predictions alone (too narrow). A noise floor
    learned from history stands in for the missing variance between launches; without one, nothing can be
    confirmed: a change beyond the widened threshold is only *suspicious*, one between the thresholds is
    *insufficient data* (on a shared 2-core machine single launches of unchanged jobs differed by -71% to
    +646%; issue 19)."""
    ratio, low, high = ratio_of_medians(flat_c, flat_b, resamples=spec.resamples, confidence=spec.confidence,
                                        seed=seed)
    launches = (extra[0], extra[1])
    mc, mbase = float(np.median(flat_c)), float(np.median(flat_b))
    if floor is not None:
        cls = classify(ratio, low, high, null=1.0, up=1 + t, down=1 - t)
        reason = _latency_reason(mc, mbase, ratio, low, high, spec, t, launches, floor, "floor")
        return Comparison(*common, ratio, low, high, t, cls, reason, *extra)
    wide = t * FEW_LAUNCH_WIDENING
    cls = classify(ratio, low, high, null=1.0, up=1 + wide, down=1 - wide)
    if cls in ("regression", "improvement"):
        cls = "suspicious"
    elif cls == "no change" and abs(ratio - 1) > t:
        cls = "insufficient data"
    reason = _latency_reason(mc, mbase, ratio, low, high, spec, wide, launches, floor, "widened")
    return Comparison(*common, ratio, low, high, wide, cls, reason, *extra)


def compare_latency(key: Key, cand: JobData, base: list[JobData], spec: RegressionSpec, seed: int, *,
                    floor: float | None = None) -> Comparison:
    """Ratio of medians with a hierarchical (launches, then predictions) bootstrap interval.

    The threshold is the spec's, or the key's noise floor learned from history when that is larger. With fewer
    than ``min_launches`` launches on a side, see ``_few_launches``: never a regression without history.
    """
    c = cand.launches("latency_ms")
    b = tuple(launch for j in base if j.status == "ok" for launch in j.launches("latency_ms"))
    flat_c = [v for launch in c for v in launch]
    flat_b = [v for launch in b for v in launch]
    t = max(spec.latency_pct / 100, floor or 0.0)
    mc = float(np.median(flat_c)) if flat_c else None
    mbase = float(np.median(flat_b)) if flat_b else None
    common: _Common = (*key, "latency", "ms", len(flat_c), len(flat_b), mc, mbase)
    extra = (len(c), len(b), floor)  # launches a side and the noise floor: Comparison's last fields
    if len(flat_c) < spec.min_samples or len(flat_b) < spec.min_samples:
        why = f"{len(flat_c)} candidate and {len(flat_b)} baseline samples; at least {spec.min_samples} each needed"
        return Comparison(*common, None, None, None, t, "insufficient data", why, *extra)
    if not mbase or mbase <= 0 or mc is None:
        return Comparison(*common, None, None, None, t, "insufficient data", "baseline median is zero", *extra)
    rng_seed = seed_for(seed, "/".join((*key, "latency")))
    if min(len(c), len(b)) < spec.min_launches:
        return _few_launches(common, flat_c, flat_b, spec, t, floor, rng_seed, extra)
    ratio, low, high = hierarchical_ratio(c, b, resamples=spec.resamples, confidence=spec.confidence, seed=rng_seed)
    cls = classify(ratio, low, high, null=1.0, up=1 + t, down=1 - t)
    reason = _latency_reason(mc, mbase, ratio, low, high, spec, t, (len(c), len(b)), floor, "launches")
    return Comparison(*common, ratio, low, high, t, cls, reason, *extra)


def _per_run(key: Key, metric: str, unit: str, cand: float | None, base: list[float], threshold: float,
             higher_is_worse: bool) -> Comparison:
    if cand is not None and base and all(math.isinf(v) for v in (cand, *base)):
        return Comparison(*key, metric, unit, 1, len(base), cand, base[0], 0.0, 0.0, 0.0, threshold, "no change",
                          "identical outputs (∞ dB) in the candidate and the baseline")
    if cand is None or not base or any(math.isinf(v) for v in (cand, *base)):
        why = "no candidate figure" if cand is None else "no baseline figure" if not base else \
            "∞ dB (identical outputs) on one side only"
        return Comparison(*key, metric, unit, int(cand is not None), len(base), cand,
                          float(np.median(base)) if base else None, None, None, None, threshold,
                          "insufficient data", why)
    median = float(np.median(base))
    change = cand - median
    low, high = cand - max(base), cand - min(base)
    sign = 1 if higher_is_worse else -1
    cls = classify(change, low, high, null=0.0, up=threshold, down=-threshold, higher_is_worse=higher_is_worse)
    spread = f" [{low:+.1f}, {high:+.1f}] over {len(base)} baseline runs" if len(base) > 1 else ""
    reason = (f"{cand:.1f} {unit} vs {median:.1f} {unit}: {change:+.1f} {unit}{spread}; "
              f"threshold {sign * threshold:+.1f} {unit}")
    return Comparison(*key, metric, unit, 1, len(base), cand, median, change, low, high, threshold, cls, reason)


def compare_memory(key: Key, cand: JobData, base: list[JobData], spec: RegressionSpec) -> Comparison:
    ok_base = [v for j in base if j.status == "ok" and (v := j.value("peak_footprint_mb")) is not None]
    median = float(np.median(ok_base)) if ok_base else 0.0
    threshold = max(spec.memory_mb, spec.memory_pct / 100 * median)
    if cand.status == "jetsam" and ok_base:
        at = cand.value("peak_footprint_mb")
        change = at - median if at is not None else None
        return Comparison(*key, "memory", "MB", 1, len(ok_base), at, median, change, change, change, threshold,
                          "regression", f"killed by jetsam; the baseline fit at {median:.1f} MB")
    if cand.status == "jetsam":
        return Comparison(*key, "memory", "MB", 0, len(ok_base), None, None, None, None, None, threshold,
                          "insufficient data", "killed by jetsam in the candidate and in every baseline run")
    return _per_run(key, "memory", "MB", cand.value("peak_footprint_mb"), ok_base, threshold, True)


def compare_quality(key: Key, cand: JobData, base: list[JobData], spec: RegressionSpec) -> Comparison:
    def psnr(j: JobData) -> float | None:
        v = j.value("psnr_db")
        return v if v is not None else j.artifact_psnr_db

    ok_base = [v for j in base if j.status == "ok" and (v := psnr(j)) is not None]
    return _per_run(key, "quality", "dB", psnr(cand), ok_base, spec.quality_db, False)


def compare_runs(run: RunData, baseline: Baseline, *, seed: int = 0,
                 floors: Mapping[Key, float] | None = None) -> tuple[Comparison, ...]:
    """Every metric of every candidate job that ran (ok or jetsam) against the pooled baseline jobs; ``floors``:
    the latency noise floor per key learned from history (``noise.noise_floors``)."""
    floors = floors or {}
    if not baseline.runs:
        return ()
    spec = run.regression
    out: list[Comparison] = []
    for cand in run.jobs:
        if cand.status not in ("ok", "jetsam"):
            continue
        base = _pool(baseline.runs, cand.key)
        if not base:
            continue
        if cand.status == "ok":
            out.append(compare_latency(cand.key, cand, base, spec, seed, floor=floors.get(cand.key)))
        out.append(compare_memory(cand.key, cand, base, spec))
        if cand.status == "ok":
            quality = compare_quality(cand.key, cand, base, spec)
            if quality.n_candidate or quality.n_baseline:
                out.append(quality)
    return tuple(out)
