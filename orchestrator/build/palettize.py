"""Fast exact palettization of float16 weights: a LUT of 2**nbits values and an index per weight.

Core ML stores palettized weights as a float16 look-up table plus nbits-wide indices. Finding the
table is 1-D k-means on the weights; this module solves it exactly and at close to memory speed by
never looking at the n weights more than twice:

1. **Histogram.** A float16 has 65,536 bit patterns, so one pass over the uint16 view of the weights
   counts each pattern (no sort, no ``np.unique``). Walking the patterns in value order (negatives
   from -65504 up, zero, positives) gives the m <= 63,487 distinct finite values with their counts;
   -0 is counted as +0, and any NaN/infinity pattern is an error.
2. **Optimal clustering** of those m weighted points by dynamic programming
   (:mod:`orchestrator.build.kmeans1d`): the same minimum squared error as k-means over all n weights.
3. **LUT and index table.** Each cluster mean is rounded to float16 (what Core ML stores) and every
   distinct value is mapped to its nearest LUT entry (ties to the lower index), filling a 65,536-entry
   ``bits -> index`` table; a second pass over the weights reads their index from it.

The MSE reported everywhere is measured the way a device decompresses: float16 weights against the
float16 LUT. float32/float64 input is cast to float16 first (what Core ML stores for fp16 models).

Granularity: per tensor (one LUT), or per grouped channel: ``group_size`` consecutive channels along
``axis`` (the output-channel axis, 0 for conv and linear weights) share a LUT, as in Core ML's iOS 18
``per_grouped_channel`` palettization. Groups run in parallel on threads (the kernels release the
GIL); a single large tensor splits its two passes over the weights across threads the same way.

    >>> import numpy as np
    >>> w = np.array([[0.0, 0.1, 0.9, 1.0]], dtype=np.float16)
    >>> lut, idx = palettize(w, nbits=1)
    >>> lut.tolist(), idx.tolist()
    ([0.04998779296875, 0.9501953125], [[0, 0, 1, 1]])
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from orchestrator.build.kmeans1d import solve

SUPPORTED_NBITS = (1, 2, 3, 4, 6, 8)
_PARALLEL_MIN_ELEMENTS = 1 << 20  # below this, thread hand-off costs more than it saves
_NEG_ZERO = 0x8000
_jit = njit(nogil=True, cache=True, error_model="numpy")

# Every finite float16 in ascending order (-0 folded into +0), as bit patterns and exact float64 values.
SORTED_BITS = np.concatenate([
    np.arange(0xFBFF, _NEG_ZERO, -1), [0], np.arange(1, 0x7C00),
]).astype(np.uint16)
SORTED_VALUES = SORTED_BITS.view(np.float16).astype(np.float64)


@_jit
def _count(bits: np.ndarray, counts: np.ndarray) -> None:
    """Add one to ``counts[pattern]`` for every uint16 pattern in ``bits``."""
    for t in range(bits.size):
        counts[bits[t]] += 1


@_jit
def _gather(bits: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:
    """``out[t] = table[bits[t]]``: the index pass."""
    for t in range(bits.size):
        out[t] = table[bits[t]]


@_jit
def _nonfinite(counts: np.ndarray) -> int:
    """How many counted patterns are infinity or NaN (exponent bits all ones)."""
    bad = 0
    for u in range(0x7C00, 0x8000):
        bad += counts[u] + counts[u | _NEG_ZERO]
    return bad


@_jit
def _round_to_half(v: float, sorted_values: np.ndarray, sorted_bits: np.ndarray) -> int:
    """Position in the sorted float16 table of ``v`` rounded to nearest, ties to even (IEEE, as numpy)."""
    p = int(np.searchsorted(sorted_values, v))
    if p == sorted_values.size or sorted_values[p] == v:
        return min(p, sorted_values.size - 1)
    if p == 0:
        return 0
    below = v - sorted_values[p - 1]
    above = sorted_values[p] - v
    if below < above or (below == above and (sorted_bits[p - 1] & 1) == 0):
        return p - 1
    return p


@_jit
def _points(counts: np.ndarray, sorted_bits: np.ndarray, sorted_values: np.ndarray) -> tuple[
        np.ndarray, np.ndarray, np.ndarray]:
    """The distinct finite values present, ascending, with their counts and positions in the sorted table."""
    x = np.empty(sorted_bits.size)
    w = np.empty(sorted_bits.size)
    pos = np.empty(sorted_bits.size, np.int64)
    m = 0
    for p in range(sorted_bits.size):
        c = counts[sorted_bits[p]]
        if sorted_bits[p] == 0:
            c += counts[_NEG_ZERO]
        if c > 0:
            x[m], w[m], pos[m] = sorted_values[p], c, p
            m += 1
    return x[:m], w[:m], pos[:m]


@_jit
def _table(
    x: np.ndarray, pos: np.ndarray, means: np.ndarray, sorted_bits: np.ndarray, sorted_values: np.ndarray,
    lut_bits: np.ndarray, table: np.ndarray,
) -> None:
    """Write the float16 LUT (cluster means rounded, padded with the last entry) and the index table.

    Only ``table`` entries of the patterns present are written; the gather pass reads no others.
    """
    kk = means.size
    lut_pos = np.empty(kk, np.int64)
    for c in range(kk):
        lut_pos[c] = _round_to_half(means[c], sorted_values, sorted_bits)
    for c in range(lut_bits.size):
        lut_bits[c] = sorted_bits[lut_pos[min(c, kk - 1)]]
    q = 0  # points and LUT are both ascending, so the nearest entry only moves right
    for p in range(x.size):
        while q + 1 < kk and abs(sorted_values[lut_pos[q + 1]] - x[p]) < abs(sorted_values[lut_pos[q]] - x[p]):
            q += 1
        table[sorted_bits[pos[p]]] = q
    table[_NEG_ZERO] = table[0]


@_jit
def _reset(bits: np.ndarray, counts: np.ndarray) -> None:
    """Zero the counts of the patterns in ``bits`` (cheaper than clearing all 65,536 for small groups)."""
    for t in range(bits.size):
        counts[bits[t]] = 0


# The glue below stays in Python on purpose: numba caches a jitted function keyed on its own file, so a
# cached kernel here that called ``solve`` would keep an old copy after kmeans1d.py changed. A few calls
# per group cost microseconds against milliseconds of clustering.
def _fit(counts: np.ndarray, k: int, lut_bits: np.ndarray, table: np.ndarray) -> None:
    """Cluster one histogram into ``lut_bits`` (float16 bit patterns) and the ``bits -> index`` table."""
    x, w, pos = _points(counts, SORTED_BITS, SORTED_VALUES)
    _, means, _ = solve(x, w, k)
    _table(x, pos, means, SORTED_BITS, SORTED_VALUES, lut_bits, table)


def _palettize_rows(bits: np.ndarray, first: int, stop: int, k: int, luts: np.ndarray, out: np.ndarray) -> int:
    """Palettize rows ``first..stop-1`` of ``bits`` (one group per row). Returns a bad row, or -1."""
    counts = np.zeros(65536, np.int64)
    table = np.zeros(65536, np.uint8)
    for g in range(first, stop):
        row = bits[g]
        _count(row, counts)
        if _nonfinite(counts) > 0:
            return g
        _fit(counts, k, luts[g], table)
        _gather(row, table, out[g])
        _reset(row, counts)
    return -1


def palettize(
    weights: np.ndarray, nbits: int, group_size: int | None = None, axis: int = 0, *, workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Palettize ``weights`` with an exact k-means LUT of ``2**nbits`` float16 values.

    Returns ``(lut, indices)``. Per tensor (``group_size=None``): ``lut`` has shape ``(2**nbits,)``.
    Grouped: ``lut`` has shape ``(channels // group_size, 2**nbits)``, row ``g`` serving channels
    ``g*group_size .. (g+1)*group_size-1`` along ``axis``. ``indices`` is uint8 in the weights' shape
    (nbits <= 8), so ``lut[indices]`` (per group: ``lut[g][indices]``) decompresses. LUT rows are
    ascending; with fewer distinct values than entries the spare entries repeat the last value.
    ``workers`` threads (default: the CPUs this process may use) share the work.

    Raises ``ValueError`` for unsupported nbits, empty or non-float input, NaN/infinity (also values
    beyond float16 range), or a group size that does not divide the channel count.
    """
    k = _check_nbits(nbits)
    half = _as_half(weights)
    threads = max(1, workers if workers is not None else _available_cpus())
    if group_size is None:
        return _palettize_tensor(half, k, threads)
    axis = _check_groups(half, group_size, axis)
    moved = np.ascontiguousarray(np.moveaxis(half, axis, 0))
    groups = moved.shape[0] // group_size
    bits = moved.view(np.uint16).reshape(groups, -1)
    luts = np.empty((groups, k), np.uint16)
    out = np.empty(bits.shape, np.uint8)
    batches = np.linspace(0, groups, min(groups, threads * 4) + 1).astype(int)
    with ThreadPoolExecutor(threads) as pool:
        bad = list(pool.map(
            lambda lo, hi: _palettize_rows(bits, int(lo), int(hi), k, luts, out),
            batches[:-1], batches[1:],
        ))
    for row in bad:
        if row >= 0:
            raise ValueError(f"palettize: weights contain NaN or infinity (in channel group {row}); "
                             "palettization needs finite float16 values")
    indices = np.ascontiguousarray(np.moveaxis(out.reshape(moved.shape), 0, axis))
    return luts.view(np.float16), indices


def _palettize_tensor(half: np.ndarray, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """One LUT for the whole tensor; the histogram and index passes are split across threads."""
    bits = np.ascontiguousarray(half).view(np.uint16).reshape(-1)
    chunks = np.array_split(bits, threads) if bits.size >= _PARALLEL_MIN_ELEMENTS and threads > 1 else [bits]
    partial = [np.zeros(65536, np.int64) for _ in chunks]
    out = np.empty(bits.size, np.uint8)
    outs = np.array_split(out, len(chunks))
    with ThreadPoolExecutor(len(chunks)) as pool:
        list(pool.map(_count, chunks, partial))
        counts = np.sum(partial, axis=0)
        if _nonfinite(counts) > 0:
            raise ValueError(f"palettize: weights contain {_nonfinite(counts)} NaN or infinite value(s); "
                             "palettization needs finite float16 values")
        lut = np.empty(k, np.uint16)
        table = np.zeros(65536, np.uint8)
        _fit(counts, k, lut, table)
        list(pool.map(_gather, chunks, [table] * len(chunks), outs))
    return lut.view(np.float16), out.reshape(half.shape)


def _check_nbits(nbits: int) -> int:
    if isinstance(nbits, bool) or not isinstance(nbits, (int, np.integer)) or int(nbits) not in SUPPORTED_NBITS:
        raise ValueError(f"palettize: nbits must be one of {SUPPORTED_NBITS}, got {nbits!r}")
    return 1 << int(nbits)


def _as_half(weights: np.ndarray) -> np.ndarray:
    """The weights as float16 (cast from wider floats; out-of-range values become inf and are refused)."""
    arr = np.asarray(weights)
    if arr.dtype.kind != "f":
        raise ValueError(f"palettize: weights must be a floating-point array, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"palettize: weights are empty (shape {arr.shape}); nothing to palettize")
    if arr.dtype == np.float16:
        return arr
    with np.errstate(over="ignore"):
        return arr.astype(np.float16)


def _check_groups(half: np.ndarray, group_size: int, axis: int) -> int:
    if half.ndim == 0:
        raise ValueError("palettize: grouped palettization needs an array with a channel axis, got a scalar")
    if not -half.ndim <= axis < half.ndim:
        raise ValueError(f"palettize: axis {axis} is out of range for weights of shape {half.shape}")
    axis %= half.ndim
    channels = half.shape[axis]
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 1:
        raise ValueError(f"palettize: group_size must be a positive integer, got {group_size!r}")
    if channels % group_size:
        raise ValueError(f"palettize: group_size {group_size} does not divide the {channels} channels "
                         f"on axis {axis} of weights shaped {half.shape}")
    return axis


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def dequantize(lut: np.ndarray, indices: np.ndarray, axis: int = 0) -> np.ndarray:
    """The float16 weights a LUT and indices stand for (per tensor or grouped along ``axis``)."""
    if lut.ndim == 1:
        return lut[indices]
    moved = np.moveaxis(indices, axis, 0)
    per_group = moved.reshape(lut.shape[0], -1)
    values = np.take_along_axis(lut, per_group.astype(np.intp), axis=1)
    return np.moveaxis(values.reshape(moved.shape), 0, axis)


def palette_mse(weights: np.ndarray, lut: np.ndarray, indices: np.ndarray, axis: int = 0) -> float:
    """Mean squared error of the float16 weights against their decompressed palette (float64 sums)."""
    half = _as_half(weights).astype(np.float64)
    return float(np.mean((half - dequantize(lut, indices, axis).astype(np.float64)) ** 2))
