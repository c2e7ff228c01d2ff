"""Change points in a series of per-run figures: E-divisive means (Matteson & James 2014), as MongoDB's CI
performance analysis and the ``hunter`` tool use it.

For a split of a segment ``y`` (length n) into ``A = y[:t]`` and ``B = y[t:]``, the energy statistic is

    Q(t) = t (n - t) / n * (2 E|a - b| - E|a - a'| - E|b - b'|)

large when the two sides differ in location (any distribution change, in fact), near 0 when they do not. The
best split of each segment is found; the largest over all segments is tested by permutation (the segment's
values shuffled, the best Q recomputed, ``permutations`` times, seeded): its p-value is the share of shuffles
that did as well. Below ``significance`` (divided by the number of segments searched) it is a change point,
the segment splits, and the search repeats on every segment until the best candidate is no longer
significant.

Pairwise sums use 2D prefix sums of the distance matrix, so one segment's every split costs O(n^2).

    e_divisive([10, 10.2, 9.9, 10.1, 12, 12.1, 11.9, 12.2], seed=0)   # -> (4,): a new level starts at index 4
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np


def _split_scores(y: np.ndarray, min_size: int) -> np.ndarray:
    """Q(t) for t = min_size .. n - min_size (index 0 is t = min_size)."""
    n = len(y)
    d = np.abs(y[:, None] - y[None, :])
    s = np.zeros((n + 1, n + 1))
    s[1:, 1:] = d.cumsum(0).cumsum(1)
    t = np.arange(min_size, n - min_size + 1)
    within_a = s[t, t]
    within_b = s[n, n] - s[t, n] - s[n, t] + s[t, t]
    between = s[t, n] - s[t, t]
    m = n - t
    q = 2 * between / (t * m) - within_a / (t * (t - 1)) - within_b / (m * (m - 1))
    return t * m / n * q


def best_split(y: np.ndarray, min_size: int) -> tuple[int, float] | None:
    """(t, Q(t)) of the best split of ``y``, or None when it is too short to split."""
    if len(y) < 2 * min_size:
        return None
    q = _split_scores(y, min_size)
    i = int(np.argmax(q))
    return i + min_size, float(q[i])


def _p_value(y: np.ndarray, observed: float, min_size: int, permutations: int, rng: np.random.Generator) -> float:
    hits = 0
    for _ in range(permutations):
        found = best_split(rng.permutation(y), min_size)
        if found is not None and found[1] >= observed:
            hits += 1
    return (hits + 1) / (permutations + 1)


def e_divisive(values: Sequence[float], *, min_size: int = 2, significance: float = 0.05, permutations: int = 199,
               seed: int | Sequence[int] = 0) -> tuple[int, ...]:
    """Indices where a new segment starts (sorted); () for a series without a significant change."""
    if min_size < 2:
        raise ValueError("min_size must be at least 2 (a segment's within-distance needs two values)")
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    cuts: list[int] = []
    while True:
        bounds = [0, *sorted(cuts), len(x)]
        best: tuple[float, int, int, int] | None = None  # (Q, start, stop, split) of the best candidate
        for start, stop in itertools.pairwise(bounds):
            found = best_split(x[start:stop], min_size)
            if found is not None and (best is None or found[1] > best[0]):
                best = (found[1], start, stop, start + found[0])
        if best is None or best[0] <= 0:
            return tuple(sorted(cuts))
        q, start, stop, split = best
        # the candidate is the best of len(bounds) - 1 segments: Bonferroni over them, so a series with k real
        # steps does not collect a false one in one of its k + 1 quiet segments 5% of the time each
        if _p_value(x[start:stop], q, min_size, permutations, rng) >= significance / (len(bounds) - 1):
            return tuple(sorted(cuts))
        cuts.append(split)
