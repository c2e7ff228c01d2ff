"""The hierarchical bootstrap: launches are the unit, predictions within a launch are not independent.

Every prediction of one launch shares that launch's state (clock frequency, what else ran on the machine,
where the model landed in memory), so its samples are correlated: a launch that happened to share the CPU is
slow as a whole. Resampling predictions as if they were independent gives an interval as narrow as if there
were hundreds of launches, and a slow launch then reads as a regression. Here one resample is two stages:

    1. draw as many launches as were measured, with replacement;
    2. within each drawn launch, draw ``m`` of its predictions with replacement (``m``: the mean launch size,
       so every launch weighs the same, whatever its length).

and the statistic is the median of the pooled draws. The ratio of a candidate's and a baseline's resampled
medians gives a percentile interval whose width reflects the variance between launches as well as within;
its log spread is scaled by sqrt(L / (L - 1)) (L: the fewer launches of the two sides), the small-sample
correction of a variance estimated from L clusters.

    ratio, low, high = hierarchical_ratio(cand_launches, base_launches, resamples=2000, confidence=0.95,
                                          seed=[0, 1234])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_CHUNK = 1 << 21  # resampled values per block: bounds memory for long windows of long launches

Launches = Sequence[Sequence[float]]


def pooled_median(launches: Launches) -> float:
    """The median of every prediction of every launch (the point estimate; the one p50 of the report)."""
    return float(np.median(np.concatenate([np.asarray(x, dtype=float) for x in launches])))


def hierarchical_medians(launches: Launches, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of ``resamples`` two-stage resamples of ``launches`` (launches, then predictions within them)."""
    groups = [np.asarray(x, dtype=float) for x in launches if len(x)]
    n_launches = len(groups)
    sizes = np.array([len(g) for g in groups])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    flat = np.concatenate(groups)
    m = max(1, round(float(sizes.mean())))
    width = n_launches * m
    per_block = max(1, _CHUNK // width)
    out = np.empty(resamples)
    for start in range(0, resamples, per_block):
        stop = min(resamples, start + per_block)
        chosen = rng.integers(0, n_launches, size=(stop - start, n_launches, 1))
        within = (rng.random((stop - start, n_launches, m)) * sizes[chosen]).astype(np.int64)
        idx = offsets[chosen] + within
        out[start:stop] = np.median(flat[idx].reshape(stop - start, width), axis=1)
    return out


def hierarchical_ratio(candidate: Launches, baseline: Launches, *, resamples: int, confidence: float,
                       seed: int | Sequence[int]) -> tuple[float, float, float]:
    """(pooled median(candidate) / pooled median(baseline), low, high): a two-stage percentile interval."""
    rng = np.random.default_rng(seed)
    point = pooled_median(candidate) / pooled_median(baseline)
    logs = np.log(hierarchical_medians(candidate, resamples, rng) / hierarchical_medians(baseline, resamples, rng))
    # Resampling L launches with replacement understates their variance by (L - 1) / L (the plug-in variance);
    # with the 3-5 launches a run has, that matters: spread the resampled log ratios back around the point.
    n = min(sum(1 for x in candidate if len(x)), sum(1 for x in baseline if len(x)))
    if n > 1:
        centre = float(np.median(logs))
        logs = centre + (logs - centre) * np.sqrt(n / (n - 1))
    alpha = (1.0 - confidence) / 2
    low, high = np.exp(np.quantile(logs, [alpha, 1 - alpha]))
    return point, float(low), float(high)
