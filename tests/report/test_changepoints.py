"""E-divisive means on synthetic series: steps found at their index, flat noisy series left alone."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.report.changepoints import best_split, e_divisive


def test_a_step_is_found_at_its_index():
    rng = np.random.default_rng(0)
    series = np.concatenate([rng.normal(50.0, 1.0, 12), rng.normal(60.0, 1.0, 8)])
    assert e_divisive(series, seed=0) == (12,)


def test_a_step_down_near_the_end_is_found():
    rng = np.random.default_rng(1)
    series = np.concatenate([rng.normal(100.0, 2.0, 15), rng.normal(80.0, 2.0, 3)])
    assert e_divisive(series, seed=0) == (15,)


def test_two_steps_are_both_found():
    rng = np.random.default_rng(2)
    series = np.concatenate([rng.normal(10.0, 0.3, 10), rng.normal(13.0, 0.3, 10), rng.normal(9.0, 0.3, 10)])
    assert e_divisive(series, seed=0) == (10, 20)


def test_a_flat_noisy_series_has_no_change_point():
    series = np.random.default_rng(100).normal(50.0, 5.0, 25)
    assert e_divisive(series, seed=0) == ()


def test_flat_noisy_series_rarely_get_a_change_point():
    """At the 5% level, about one flat series in twenty gets a (false) change point; not more."""
    found = [e_divisive(np.random.default_rng(200 + i).normal(50.0, 5.0, 20), seed=i, permutations=99)
             for i in range(60)]
    assert sum(bool(cps) for cps in found) <= 6


def test_short_or_constant_series_have_no_change_point():
    assert e_divisive([], seed=0) == ()
    assert e_divisive([50.0, 51.0, 49.0], seed=0) == ()
    assert e_divisive([50.0] * 12, seed=0) == ()


def test_the_permutation_test_is_seeded():
    rng = np.random.default_rng(3)
    series = np.concatenate([rng.normal(50.0, 3.0, 10), rng.normal(54.0, 3.0, 10)])  # a marginal step
    first = [e_divisive(series, seed=s, permutations=99) for s in range(5)]
    assert first == [e_divisive(series, seed=s, permutations=99) for s in range(5)]


def test_best_split_matches_a_direct_computation():
    y = np.array([1.0, 2.0, 1.5, 7.0, 8.0, 7.5, 9.0])

    def q(t: int) -> float:
        a, b = y[:t], y[t:]
        between = np.mean(np.abs(a[:, None] - b[None, :]))
        within_a = np.abs(a[:, None] - a[None, :]).sum() / (len(a) * (len(a) - 1))
        within_b = np.abs(b[:, None] - b[None, :]).sum() / (len(b) * (len(b) - 1))
        return len(a) * len(b) / len(y) * (2 * between - within_a - within_b)

    t, score = best_split(y, 2)
    assert t == 3 and score == pytest.approx(max(q(k) for k in range(2, 6)))


def test_min_size_below_two_is_refused():
    with pytest.raises(ValueError, match="min_size"):
        e_divisive([1.0, 2.0, 3.0], min_size=1)
