"""Exact weighted k-means in one dimension: the clustering kernel of the palettizer.

Problem: points ``x_0 <= x_1 <= ... <= x_{m-1}`` with positive weights ``w_i``; split them into ``k``
clusters minimising the weighted sum of squared distances to each cluster's mean. In one dimension an
optimal clustering is a split of the sorted points into ``k`` contiguous runs, so it is the DP

    D[1][j] = cost(0, j)
    D[c][j] = min_{c-1 <= i < j}  D[c-1][i] + cost(i, j)          (first j points, c clusters)
    cost(i, j) = S2(i, j) - S1(i, j)^2 / W(i, j)                   (points i .. j-1, from prefix sums)

and the answer is D[k][m]. Two exact solvers:

* **Layered DP** (here). ``cost`` satisfies the quadrangle inequality, so the leftmost optimal split
  ``T[c][j]`` is non-decreasing in ``j`` (each layer is solved by divide and conquer: solve the middle
  ``j``, then each half searches only the splits on its side of that optimum) and in ``c``
  (``T[c-1][j] <= T[c][j]``, Knuth's bound, shortens each search further). About ten evaluations per
  point per layer: O(k m log m) worst case. Always succeeds; used for k < 8 and as the fallback.
* **Lagrangian relaxation** (below): a few O(m log m) solves of the problem with a price per cluster
  instead of k layers; 2x-80x faster for k >= 16. It gives up on exact ties (then the layered DP runs).

Precision: prefix sums are float64 over values centred on the weighted mean, so ``S2 - S1^2 / W`` does
not cancel against a large offset; the returned means and cost are recomputed from the points. Both
solvers are deterministic (fixed evaluation order, fixed tie rules).

The kernels are compiled with numba (``nogil=True``: the palettizer runs groups on threads in parallel).
``error_model="numpy"`` matters for speed: the default Python error model checks every division for
zero and stops LLVM from optimising the inner loops. Keep every jitted function that calls another in
the same file as its callee: numba's on-disk cache is keyed on the caller's own file, so a cached caller
would keep running an old copy of a callee edited in another file.

    >>> import numpy as np
    >>> starts, means, cost = kmeans1d(np.array([0.0, 1.0, 10.0, 11.0]), np.ones(4), 2)
    >>> starts.tolist(), means.tolist(), float(cost)
    ([0, 2], [0.5, 10.5], 1.0)
"""

from __future__ import annotations

import numpy as np
from numba import njit

_jit = njit(nogil=True, cache=True, error_model="numpy")
AUTO, LAYERED, LAGRANGE = 0, 1, 2  # solve(method=...)
_METHODS = {"auto": AUTO, "layered": LAYERED, "lagrange": LAGRANGE}
_LAGRANGE_MIN_K = 8  # measured: 2-4 clusters are faster layered, 8 break even, 16+ gain 2-80x
MAX_SOLVES = 24  # priced solves before the Lagrangian search gives up (typically 2-3 suffice)


@_jit
def _prefix_sums(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Prefix sums of w, w*d, w*d^2 for d = x - weighted mean (centred to avoid cancellation)."""
    m = x.size
    total_w = 0.0
    total_wx = 0.0
    for t in range(m):
        total_w += w[t]
        total_wx += w[t] * x[t]
    mu = total_wx / total_w
    p0 = np.zeros(m + 1)
    p1 = np.zeros(m + 1)
    p2 = np.zeros(m + 1)
    for t in range(m):
        d = x[t] - mu
        p0[t + 1] = p0[t] + w[t]
        p1[t + 1] = p1[t] + w[t] * d
        p2[t + 1] = p2[t] + w[t] * d * d
    return p0, p1, p2, mu


@_jit
def _best_split(e: np.ndarray, p0: np.ndarray, p1: np.ndarray, q0: float, q1: float) -> tuple[int, float]:
    """Leftmost argmin over t of e[t] - (q1 - p1[t])^2 / (q0 - p0[t]) (slices: no index wraparound)."""
    best = np.inf
    arg = 0
    for t in range(e.size):
        d1 = q1 - p1[t]
        v = e[t] - d1 * d1 / (q0 - p0[t])
        if v < best:
            best = v
            arg = t
    return arg, best


@_jit
def _solve_layer(
    c: int, k: int, m: int, e: np.ndarray, p0: np.ndarray, p1: np.ndarray, p2: np.ndarray,
    cur: np.ndarray, split: np.ndarray, prev_split: np.ndarray,
) -> None:
    """Fill cur[j] = D[c][j] and split[j] = T[c][j] for every j layer c needs, by divide and conquer.

    The recursion is unrolled by levels: with q = j - jlo + 1, level ``s`` (a power of two, largest
    first) solves the odd multiples of ``s``, whose neighbours q - s and q + s were solved on an
    earlier level (or lie outside, where the split range is open). ``e[i] = D[c-1][i] - p2[i]`` is
    precomputed so each candidate costs one division.
    """
    jlo = c
    jhi = m if c == k else m - (k - c)
    knuth_max = m - (k - c + 1)  # the last j for which layer c-1 was computed
    n = jhi - jlo + 1
    s = 1
    while s * 2 <= n:
        s *= 2
    while s >= 1:
        for q in range(s, n + 1, 2 * s):
            j = jlo + q - 1
            lo = c - 1 if q == s else split[j - s]
            hi = j - 1 if q + s > n else min(split[j + s], j - 1)
            if c > 2 and j <= knuth_max and prev_split[j] > lo:
                lo = prev_split[j]
            arg, best = _best_split(e[lo:hi + 1], p0[lo:hi + 1], p1[lo:hi + 1], p0[j], p1[j])
            cur[j] = best + p2[j]
            split[j] = lo + arg
        s //= 2


@_jit
def _layered_starts(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, k: int) -> np.ndarray:
    """First point of each cluster of an optimal k-clustering by the layered DP (``1 < k < m``)."""
    m = p0.size - 1
    splits = np.empty((k + 1, m + 1), np.int32)
    prev = np.empty(m + 1)
    cur = np.empty(m + 1)
    e = np.empty(m + 1)
    for j in range(1, m + 1):
        prev[j] = p2[j] - p1[j] * p1[j] / p0[j]
    for c in range(2, k + 1):
        last = m if c == k else m - (k - c)  # layer c reads D[c-1][i] for i < last only
        for i in range(c - 1, last):
            e[i] = prev[i] - p2[i]
        _solve_layer(c, k, m, e, p0, p1, p2, cur, splits[c], splits[c - 1])
        prev, cur = cur, prev
    starts = np.zeros(k, np.int64)
    j = m
    for c in range(k - 1, 0, -1):
        j = splits[c + 1, j]
        starts[c] = j
    return starts


# --- Lagrangian relaxation ------------------------------------------------------------------------------
# Instead of D[k][m] solve, for a price ``lam`` per cluster, E[0] = 0, E[j] = min_{i<j} E[i] + cost(i, j) + lam
# (any number of clusters). If its optimum uses exactly k clusters it is an optimal k-clustering: every other
# k-clustering pays the same lam * k on top of a cost that is not lower. As cost is Monge, D[c][m] is convex
# in c, so such prices exist (between the two chord slopes at k) unless D[k][m] lies on a straight segment,
# a tie real weights practically never produce. Each solve also yields an exact point (c, D[c][m]) of that
# convex curve: a power-law guess (D[c] ~ 1/c^2) brackets k (forced a growing step further each time), then
# the chord slope of the bracket has its optimum strictly between the bracketing counts, or nowhere (give
# up). One solve is O(m log m): candidate splits live in a deque, each owning the rows where it is best; a
# newer split overtakes an older one at most once (quadrangle inequality), found by binary search.


@_jit
def _value(e: np.ndarray, p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, i: int, j: int) -> float:
    """E[i] + cost(i, j): the best solution of the first j points whose last cluster starts at i."""
    d1 = p1[j] - p1[i]
    return e[i] + (p2[j] - p2[i]) - d1 * d1 / (p0[j] - p0[i])


@_jit
def _penalized(
    p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, lam: float,
    e: np.ndarray, count: np.ndarray, arg: np.ndarray, owner: np.ndarray, start: np.ndarray,
) -> int:
    """Solve the priced problem into ``e`` (values), ``count`` (clusters), ``arg`` (last split) per prefix.

    ``owner[head:tail]`` are candidate splits, ``start[t]`` the first row where ``owner[t]`` is best.
    Returns the number of clusters of the optimal solution of all m points.
    """
    m = p0.size - 1
    e[0] = 0.0
    count[0] = 0
    owner[0], start[0] = 0, 1
    head, tail = 0, 1
    for j in range(1, m + 1):
        while tail - head > 1 and start[head + 1] <= j:
            head += 1
        i = owner[head]
        e[j] = _value(e, p0, p1, p2, i, j) + lam
        count[j] = count[i] + 1
        arg[j] = i
        if j == m:
            break
        while tail > head:  # insert split j (serves rows > j); drop splits it beats from their first row
            b = owner[tail - 1]
            first = max(start[tail - 1], j + 1)
            if _value(e, p0, p1, p2, j, first) < _value(e, p0, p1, p2, b, first):
                if first == start[tail - 1]:
                    tail -= 1
                    continue
                owner[tail], start[tail] = j, first
                tail += 1
                break
            lo, hi = first, m + 1  # j loses at lo; find the first row where it wins (hi = m + 1: never)
            while hi - lo > 1:
                mid = (lo + hi) >> 1
                if _value(e, p0, p1, p2, j, mid) < _value(e, p0, p1, p2, b, mid):
                    hi = mid
                else:
                    lo = mid
            if hi <= m:
                owner[tail], start[tail] = j, hi
                tail += 1
            break
        if tail == head:
            owner[tail], start[tail] = j, j + 1
            tail += 1
    return count[m]


@_jit
def lagrangian_starts(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, k: int) -> np.ndarray:
    """First point of each of the ``k`` clusters of an optimal clustering, or an empty array (no price found).

    ``p0, p1, p2``: prefix sums of weights, w*d and w*d^2 (d = centred values), as in ``kmeans1d``.
    Requires ``1 < k < m``.
    """
    m = p0.size - 1
    e = np.empty(m + 1)
    count = np.empty(m + 1, np.int64)
    arg = np.empty(m + 1, np.int64)
    owner = np.empty(m + 2, np.int64)
    start = np.empty(m + 2, np.int64)
    total = p2[m] - p1[m] * p1[m] / p0[m]  # D[1][m]
    lo_c, lo_d, hi_c, hi_d = 1, total, m, 0.0  # bracket: lo_c < k < hi_c, with their exact costs
    lam = 5.4 * total / k**3  # -dD/dc for a Gaussian's D[c] ~ 2.7 D[1] / c^2
    step = 0.02  # relative move forced while the target is not yet bracketed (doubles each time)
    for _ in range(MAX_SOLVES):
        c = _penalized(p0, p1, p2, lam, e, count, arg, owner, start)
        d = e[m] - lam * c
        if c == k:
            starts = np.empty(k, np.int64)
            j = m
            for t in range(k - 1, -1, -1):
                j = arg[j]
                starts[t] = j
            return starts
        if lo_c < c < k:
            lo_c, lo_d = c, d
        elif k < c < hi_c:
            hi_c, hi_d = c, d
        if lo_c > 1 and hi_c < m:
            chord = (lo_d - hi_d) / (hi_c - lo_c)
            if chord == lam or not lo_c <= c <= hi_c:
                break  # D[k][m] lies on the chord (no price has a k-cluster optimum), or rounding at a tie
            lam = chord
        elif d > 0.0:
            guess = 2.0 * d * c * c / k**3  # power law D[c] ~ 1/c^2 through the point just found
            lam = min(guess, lam * (1.0 - step)) if c < k else max(guess, lam * (1.0 + step))
            step = min(2.0 * step, 0.5)
        else:
            break
    return np.empty(0, np.int64)


@_jit
def solve(x: np.ndarray, w: np.ndarray, k: int, method: int = AUTO) -> tuple[np.ndarray, np.ndarray, float]:
    """Optimal clustering of sorted ``x`` (float64) with weights ``w`` (float64 > 0) into ``min(k, m)`` runs.

    Returns ``(starts, means, cost)``: ``starts[c]`` is the index of the first point of cluster ``c``
    (``starts[0] == 0``), ``means[c]`` its weighted mean, ``cost`` the weighted sum of squared errors.
    ``method``: ``AUTO`` tries the Lagrangian fast path for k >= 8 (below that the layered DP is faster),
    ``LAYERED`` never does, ``LAGRANGE`` always does; every method falls back to the layered DP.
    """
    m = x.size
    k = min(k, m)
    p0, p1, p2, _ = _prefix_sums(x, w)
    starts = np.zeros(k, np.int64)
    if k == m:
        for c in range(k):
            starts[c] = c
    elif k > 1:
        fast = method == LAGRANGE or (method == AUTO and k >= _LAGRANGE_MIN_K)
        starts = lagrangian_starts(p0, p1, p2, k) if fast else starts[:0]
        if starts.size != k:
            starts = _layered_starts(p0, p1, p2, k)
    # Means and cost straight from the points (not prefix differences): exact to rounding per cluster.
    means = np.empty(k)
    cost = 0.0
    for c in range(k):
        a = starts[c]
        b = starts[c + 1] if c + 1 < k else m
        sw = 0.0
        swx = 0.0
        for t in range(a, b):
            sw += w[t]
            swx += w[t] * x[t]
        means[c] = swx / sw
        for t in range(a, b):
            cost += w[t] * (x[t] - means[c]) ** 2
    return starts, means, cost


def kmeans1d(
    values: np.ndarray, weights: np.ndarray, k: int, *, method: str = "auto",
) -> tuple[np.ndarray, np.ndarray, float]:
    """Exact weighted 1-D k-means of sorted ``values``; see :func:`solve` (``method``: auto, layered,
    lagrange). Validates its arguments."""
    x = np.ascontiguousarray(values, dtype=np.float64)
    w = np.ascontiguousarray(weights, dtype=np.float64)
    if x.ndim != 1 or w.shape != x.shape or x.size == 0:
        raise ValueError(f"kmeans1d: values and weights must be equal-length non-empty vectors, got "
                         f"{np.shape(values)} and {np.shape(weights)}")
    if not (np.isfinite(x).all() and np.isfinite(w).all()):
        raise ValueError("kmeans1d: values and weights must be finite")
    if np.any(np.diff(x) < 0) or np.any(w <= 0):
        raise ValueError("kmeans1d: values must be sorted ascending and weights positive")
    if k < 1:
        raise ValueError(f"kmeans1d: k must be >= 1, got {k}")
    if method not in _METHODS:
        raise ValueError(f"kmeans1d: method must be one of {sorted(_METHODS)}, got {method!r}")
    starts, means, cost = solve(x, w, int(k), _METHODS[method])
    return starts, means, float(cost)
