"""The exact palettizer: optimality (brute force, coremltools' kmeans1d), grouping, edge cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from coremltools.optimize.coreml._quantization_passes import palettize_weights as ct_pass
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.build.kmeans1d import _prefix_sums, kmeans1d, lagrangian_starts
from orchestrator.build.palettize import (
    SORTED_BITS,
    SORTED_VALUES,
    _round_to_half,
    dequantize,
    palette_mse,
    palettize,
)

NBITS = (1, 2, 3, 4, 6, 8)


def brute_force_cost(x: np.ndarray, w: np.ndarray, k: int) -> float:
    """O(k m^2) DP over every split, written independently of the kernel (direct sums, no centring)."""
    m = len(x)
    k = min(k, m)

    cost = np.zeros((m + 1, m + 1))
    for i in range(m):
        for j in range(i + 1, m + 1):
            seg, sw = x[i:j], w[i:j]
            cost[i, j] = np.sum(sw * (seg - np.sum(sw * seg) / np.sum(sw)) ** 2)
    best = [0.0] + [np.inf] * m
    for _ in range(k):
        best = [np.inf] + [min(best[i] + cost[i, j] for i in range(j)) for j in range(1, m + 1)]
    return float(best[m])


def partition_cost(x: np.ndarray, w: np.ndarray, starts: np.ndarray) -> float:
    bounds = [*starts.tolist(), len(x)]
    total = 0.0
    for a, b in itertools.pairwise(bounds):
        assert b > a, "every cluster holds at least one point"
        mean = np.average(x[a:b], weights=w[a:b])
        total += float(np.sum(w[a:b] * (x[a:b] - mean) ** 2))
    return total


def coremltools_palette(weights: np.ndarray, nbits: int) -> tuple[np.ndarray, np.ndarray]:
    """What coremltools 9.0's palettize pass computes for one tensor in kmeans mode (its own code path)."""
    lut, indices = ct_pass._get_lut_and_indices(weights, "KMEANS", nbits, None)
    return lut, indices.reshape(weights.shape)


def sd_like(shape: tuple[int, ...], seed: int, dtype: type = np.float16) -> np.ndarray:
    fan_in = int(np.prod(shape[1:]))
    return (np.random.default_rng(seed).normal(size=shape) / np.sqrt(fan_in)).astype(dtype)


# --- the DP kernel ------------------------------------------------------------------------------------

points = st.lists(st.tuples(st.integers(-20, 20), st.integers(1, 9)), min_size=1, max_size=24)


@settings(max_examples=150, deadline=None)
@given(points=points, k=st.integers(1, 9), scale=st.sampled_from([1.0, 0.37, 1e-3]))
def test_kmeans1d_equals_brute_force(points: list[tuple[int, int]], k: int, scale: float) -> None:
    # integer grids give many duplicate values and exact ties: the hard case for monotone-split shortcuts
    # and for the Lagrangian search (ties are where it must give up and fall back)
    pts = sorted(points)
    x = np.array([p[0] for p in pts], dtype=np.float64) * scale
    w = np.array([p[1] for p in pts], dtype=np.float64)
    expected = brute_force_cost(x, w, k)
    spread = float(np.sum(w * x**2))  # both DPs round relative to this
    for method in ("layered", "lagrange"):
        starts, means, cost = kmeans1d(x, w, k, method=method)
        assert len(starts) == min(k, len(x)) and starts[0] == 0
        assert cost == pytest.approx(expected, rel=1e-9, abs=1e-12 * spread)
        assert partition_cost(x, w, starts) == pytest.approx(expected, rel=1e-9, abs=1e-12 * spread)
        bounds = [*starts.tolist(), len(x)]
        for c, mean in enumerate(means):
            segment = slice(bounds[c], bounds[c + 1])
            assert mean == pytest.approx(np.average(x[segment], weights=w[segment]))


def test_kmeans1d_random_reals_equal_brute_force() -> None:
    rng = np.random.default_rng(7)
    found = 0
    for _ in range(100):
        m = int(rng.integers(3, 32))
        x = np.sort(rng.standard_t(3, size=m))
        w = rng.integers(1, 50, size=m).astype(np.float64)
        k = int(rng.integers(2, min(m, 12)))
        expected = brute_force_cost(x, w, k)
        starts = lagrangian_starts(*_prefix_sums(x, w)[:3], k)
        if starts.size:  # the fast path answered by itself: it must be optimal
            found += 1
            assert partition_cost(x, w, starts) == pytest.approx(expected, rel=1e-9, abs=1e-15)
        for method in ("auto", "layered", "lagrange"):
            assert kmeans1d(x, w, k, method=method)[2] == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert found > 50  # real-valued data rarely has the ties that force the fallback


@pytest.mark.parametrize("k", [8, 16, 64, 256])
def test_lagrangian_fast_path_answers_real_layers(k: int) -> None:
    # layer-sized problems must not silently fall back to the slow layered DP, and must agree with it
    for seed, rows in ((0, 16), (1, 256)):
        values, counts = np.unique(sd_like((rows, 320), seed).astype(np.float64), return_counts=True)
        counts = counts.astype(np.float64)
        starts = lagrangian_starts(*_prefix_sums(values, counts)[:3], k)
        assert starts.size == k
        layered = kmeans1d(values, counts, k, method="layered")
        np.testing.assert_array_equal(starts, layered[0])
        assert kmeans1d(values, counts, k)[2] == pytest.approx(layered[2], rel=1e-12)


def test_kmeans1d_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="sorted"):
        kmeans1d(np.array([1.0, 0.0]), np.ones(2), 2)
    with pytest.raises(ValueError, match="positive"):
        kmeans1d(np.array([0.0, 1.0]), np.array([1.0, 0.0]), 2)
    with pytest.raises(ValueError, match="non-empty"):
        kmeans1d(np.array([]), np.array([]), 2)
    with pytest.raises(ValueError, match="method"):
        kmeans1d(np.array([0.0, 1.0]), np.ones(2), 2, method="smawk")


# --- float16 palettes against coremltools ------------------------------------------------------------

@pytest.mark.parametrize("nbits", NBITS)
def test_same_mse_as_coremltools_kmeans1d(nbits: int) -> None:
    # >= 10k float16 elements: coremltools takes its vendored exact kmeans1d path, so the MSEs must agree
    weights = sd_like((128, 96), seed=nbits)
    ct_lut, ct_idx = coremltools_palette(weights, nbits)
    lut, idx = palettize(weights, nbits)
    ours, theirs = palette_mse(weights, lut, idx), palette_mse(weights, ct_lut, ct_idx)
    assert ours <= theirs * (1 + 1e-12)
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert idx.dtype == np.uint8 and idx.shape == weights.shape and int(idx.max()) < 2**nbits
    assert lut.dtype == np.float16 and lut.shape == (2**nbits,)
    assert np.all(np.diff(lut.astype(np.float64)) > 0)


def test_better_than_coremltools_sklearn_path() -> None:
    # < 10k elements (every channel group of a typical layer) and float32 weights take scikit-learn's KMeans
    small = sd_like((48, 160), seed=1)
    for weights in (small, sd_like((160, 96), seed=2, dtype=np.float32)):
        ct_lut, ct_idx = coremltools_palette(weights, 4)
        lut, idx = palettize(weights, 4)
        reference = weights.astype(np.float64)  # fp32 weights: judged against what was given
        ours = float(np.mean((reference - lut[idx].astype(np.float64)) ** 2))
        theirs = float(np.mean((reference - ct_lut.reshape(-1)[ct_idx].astype(np.float64)) ** 2))
        assert ours < theirs


def test_float32_input_is_clustered_as_float16() -> None:
    weights = sd_like((64, 64), seed=3, dtype=np.float32)
    lut32, idx32 = palettize(weights, 6)
    lut16, idx16 = palettize(weights.astype(np.float16), 6)
    np.testing.assert_array_equal(lut32, lut16)
    np.testing.assert_array_equal(idx32, idx16)


# --- grouped channels ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("shape", "axis", "group_size"), [
    ((64, 40), 0, 16), ((32, 8, 3, 3), 0, 8), ((24, 48), 1, 12), ((24, 48), -1, 16), ((6, 10, 4), 1, 5),
])
def test_grouped_equals_per_group_palettes(shape: tuple[int, ...], axis: int, group_size: int) -> None:
    weights = sd_like(shape, seed=11)
    lut, idx = palettize(weights, 3, group_size=group_size, axis=axis)
    channels = shape[axis]
    assert lut.shape == (channels // group_size, 8) and idx.shape == shape
    for g in range(channels // group_size):
        part = np.take(weights, np.arange(g * group_size, (g + 1) * group_size), axis=axis)
        g_lut, g_idx = palettize(part, 3)
        np.testing.assert_array_equal(lut[g], g_lut)
        np.testing.assert_array_equal(np.take(idx, np.arange(g * group_size, (g + 1) * group_size), axis=axis),
                                      g_idx)
    grouped = palette_mse(weights, lut, idx, axis=axis)
    assert grouped <= palette_mse(weights, *palettize(weights, 3)) * (1 + 1e-12)  # more LUTs never hurt


def test_grouped_same_mse_as_coremltools_grouped_path() -> None:
    weights = sd_like((32, 1280), seed=5)  # groups of 16 x 1280 = 20,480 elements: kmeans1d per group
    params = ct_pass.blockwise_compress(weights, "KMEANS", 4, [16, 0])
    from coremltools.optimize import _utils as optimize_utils

    theirs = float(np.mean((optimize_utils.lut_to_dense(params.indices, params.lut).astype(np.float64)
                            - weights.astype(np.float64)) ** 2))
    lut, idx = palettize(weights, 4, group_size=16)
    ours = palette_mse(weights, lut, idx)
    assert ours <= theirs * (1 + 1e-12) and ours == pytest.approx(theirs, rel=1e-6)


# --- edge cases -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e6])
def test_non_finite_weights_are_refused(bad: float) -> None:
    weights = sd_like((16, 16), seed=0, dtype=np.float32)
    weights[3, 4] = bad
    with pytest.raises(ValueError, match="NaN or infinit"):
        palettize(weights, 4)
    with pytest.raises(ValueError, match="channel group 0"):
        palettize(weights, 4, group_size=4)


@pytest.mark.parametrize("nbits", [0, 5, 7, 9, 16, True, 4.0, "4"])
def test_unsupported_nbits(nbits: object) -> None:
    with pytest.raises(ValueError, match="nbits must be one of"):
        palettize(np.ones((4, 4), np.float16), nbits)  # type: ignore[arg-type]


def test_bad_arrays_and_groups() -> None:
    with pytest.raises(ValueError, match="empty"):
        palettize(np.zeros((0, 8), np.float16), 4)
    with pytest.raises(ValueError, match="floating-point"):
        palettize(np.arange(16).reshape(4, 4), 4)
    with pytest.raises(ValueError, match="does not divide"):
        palettize(np.ones((10, 4), np.float16), 4, group_size=4)
    with pytest.raises(ValueError, match="out of range"):
        palettize(np.ones((8, 4), np.float16), 4, group_size=4, axis=2)
    with pytest.raises(ValueError, match="positive integer"):
        palettize(np.ones((8, 4), np.float16), 4, group_size=0)
    with pytest.raises(ValueError, match="scalar"):
        palettize(np.array(1.0, np.float16), 4, group_size=1)


def test_fewer_distinct_values_than_clusters_is_lossless() -> None:
    values = np.array([-0.5, -0.0, 0.0, 0.25, 3.0], dtype=np.float16)
    weights = np.random.default_rng(0).choice(values, size=(12, 20))
    lut, idx = palettize(weights, 4)
    assert palette_mse(weights, lut, idx) == 0.0
    np.testing.assert_array_equal(lut[:4], np.array([-0.5, 0.0, 0.25, 3.0], np.float16))
    np.testing.assert_array_equal(lut[4:], np.full(12, 3.0, np.float16))  # spare entries repeat the last
    assert set(np.unique(idx[weights == 0])) == {1}  # -0 and +0 share the zero entry
    constant = np.full((8, 8), 0.1, np.float16)
    lut, idx = palettize(constant, 2)
    assert np.all(lut == np.float16(0.1)) and np.all(idx == 0)


def test_deterministic_and_independent_of_thread_count() -> None:
    weights = sd_like((1100, 1000), seed=9)  # > 1M elements: the threaded per-tensor path
    first = palettize(weights, 6, workers=2)
    for again in (palettize(weights, 6, workers=2), palettize(weights, 6, workers=1)):
        np.testing.assert_array_equal(first[0], again[0])
        np.testing.assert_array_equal(first[1], again[1])
    grouped = [palettize(weights[:64], 4, group_size=16, workers=n) for n in (1, 2, 3)]
    for lut, idx in grouped[1:]:
        np.testing.assert_array_equal(lut, grouped[0][0])
        np.testing.assert_array_equal(idx, grouped[0][1])


@pytest.mark.parametrize("nbits", NBITS)
def test_every_nbits_is_optimal(nbits: int) -> None:
    weights = sd_like((40, 70), seed=20 + nbits)
    lut, idx = palettize(weights, nbits)
    values, counts = np.unique(weights.astype(np.float64), return_counts=True)
    _, _, optimum = kmeans1d(values, counts.astype(np.float64), 2**nbits)
    # the float16-rounded LUT costs at most the rounding of each centroid (half an ulp of its value)
    half_ulp = float(np.max(np.abs(lut.astype(np.float64)))) * 2.0**-11
    mse = palette_mse(weights, lut, idx)
    assert optimum / weights.size <= mse * (1 + 1e-9) + 1e-30
    assert mse <= optimum / weights.size + half_ulp**2 + 1e-30
    assert int(idx.max()) < 2**nbits


def test_nearest_entry_and_dequantize() -> None:
    weights = sd_like((30, 30), seed=4)
    lut, idx = palettize(weights, 3)
    distances = np.abs(weights.astype(np.float64)[..., None] - lut.astype(np.float64))
    np.testing.assert_array_equal(idx, np.argmin(distances, axis=-1))  # every weight takes its nearest entry
    np.testing.assert_array_equal(dequantize(lut, idx), lut[idx])


def test_rounding_to_float16_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    finite = SORTED_VALUES
    samples = np.concatenate([
        rng.normal(scale=0.05, size=4000), rng.uniform(-70000, 70000, 1000) / 1.1,
        (finite[:-1] + finite[1:]) / 2,  # exact midpoints: ties to even
        rng.uniform(-1e-7, 1e-7, 500),  # subnormals
    ])
    for v in samples:
        expected = np.float64(np.float16(v))
        got = SORTED_VALUES[_round_to_half(float(v), SORTED_VALUES, SORTED_BITS)]
        assert got == expected, v
