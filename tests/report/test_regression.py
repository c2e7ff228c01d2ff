"""Regression statistics on synthetic samples: classification edge cases, units, windows, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.report import build_report, regression
from orchestrator.report.data import JobData
from orchestrator.report.regression import classify, compare_latency, compare_memory, compare_quality, ratio_of_medians
from orchestrator.spec.model import RegressionSpec
from tests.report.runs import RunWriter, jetsam_event, tiny_sd_jobs, with_job

SPEC = RegressionSpec()  # latency 5%, memory 32 MB or 3%, quality 1 dB, 95%, 2000 resamples, min 5 samples
KEY = ("host", "unet", "fp16-none-original", "cpu_only")


def job(latencies=(), *, peak=None, psnr=None, status="ok", launches=3) -> JobData:
    """Latencies split into ``launches`` consecutive launches (the runner's measure.launches)."""
    metrics = {"latency_ms": tuple(latencies)}
    ids = {"latency_ms": tuple(i * launches // len(latencies) for i in range(len(latencies)))}
    if peak is not None:
        metrics["peak_footprint_mb"] = (peak,)
    if psnr is not None:
        metrics["psnr_db"] = (psnr,)
    return JobData("r/0001", *KEY, status=status, predicted_peak_mb=None, limit_mb=None, error=None,
                   metrics=metrics, launch_ids=ids)


def samples(median: float, n: int, seed: int, cv: float = 0.03) -> list[float]:
    return list(np.random.default_rng(seed).normal(median, median * cv, n))


# ---- the decision rule -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("point", "low", "high", "expected"), [
    (1.10, 1.06, 1.14, "regression"),        # beyond the threshold, interval excludes 1
    (1.10, 0.98, 1.20, "suspicious"),        # beyond the threshold, interval admits no change
    (1.03, 1.01, 1.05, "no change"),         # significant but smaller than the threshold
    (0.90, 0.86, 0.94, "improvement"),
    (0.90, 0.80, 1.01, "suspicious"),        # a possible improvement is also only suspicious
])
def test_classify(point, low, high, expected):
    assert classify(point, low, high, null=1.0, up=1.05, down=0.95) == expected


def test_classify_lower_is_worse_for_quality():
    assert classify(-1.5, -1.5, -1.5, null=0.0, up=1.0, down=-1.0, higher_is_worse=False) == "regression"
    assert classify(+1.5, +1.5, +1.5, null=0.0, up=1.0, down=-1.0, higher_is_worse=False) == "improvement"


# ---- latency -----------------------------------------------------------------------------------------------
def test_a_ten_percent_slowdown_is_a_regression_with_its_interval():
    c = compare_latency(KEY, job(samples(55.0, 30, 1)), [job(samples(50.0, 30, 2))], SPEC, seed=0)
    assert c.classification == "regression"
    assert c.low > 1.0 and c.low < c.change < c.high and abs(c.change - 1.10) < 0.03
    assert c.unit == "ms" and c.n_candidate == c.n_baseline == 30


def test_the_same_distribution_is_no_change():
    c = compare_latency(KEY, job(samples(50.0, 30, 1)), [job(samples(50.0, 30, 2))], SPEC, seed=0)
    assert c.classification == "no change" and c.low < 1.0 < c.high


def test_a_speedup_is_an_improvement():
    c = compare_latency(KEY, job(samples(40.0, 30, 1)), [job(samples(50.0, 30, 2))], SPEC, seed=0)
    assert c.classification == "improvement" and c.pct == pytest.approx((c.change - 1) * 100)


def test_too_few_samples_is_insufficient_data():
    c = compare_latency(KEY, job(samples(80.0, 4, 1)), [job(samples(50.0, 30, 2))], SPEC, seed=0)
    assert c.classification == "insufficient data" and c.change is None
    assert "4 candidate and 30 baseline samples; at least 5 each needed" in c.reason


def test_a_big_but_noisy_change_is_suspicious():
    # +8% on the median, but the samples spread over +-25%: the interval reaches well below 1.
    base = [40.0, 45.0, 50.0, 55.0, 60.0, 65.0]
    c = compare_latency(KEY, job([x * 1.08 for x in base]), [job(base)], SPEC, seed=0)
    assert c.change == pytest.approx(1.08) and c.low < 1.0 < c.high
    assert c.classification == "suspicious"


def test_bootstrap_is_reproducible_per_seed():
    args = (job(samples(52.0, 20, 1, cv=0.1)).values("latency_ms"), job(samples(50.0, 20, 2, cv=0.1)).values(
        "latency_ms"))
    first = ratio_of_medians(*args, resamples=2000, confidence=0.95, seed=5)
    assert ratio_of_medians(*args, resamples=2000, confidence=0.95, seed=5) == first
    assert ratio_of_medians(*args, resamples=2000, confidence=0.95, seed=6) != first


def test_bootstrap_blocks_do_not_change_the_result(monkeypatch):
    x = np.asarray(samples(50.0, 300, 3, cv=0.2))
    whole = regression.bootstrap_medians(x, 500, np.random.default_rng(1))
    monkeypatch.setattr(regression, "_CHUNK", 1000)  # 3 resamples per block
    assert np.array_equal(regression.bootstrap_medians(x, 500, np.random.default_rng(1)), whole)


@pytest.mark.parametrize("cv", [0.03, 0.05])
def test_trial_rates_at_known_noise(cv):
    """The rates the harness test asks for, on log-normal latencies of known CV, 100 seeded trials x 20 samples."""
    rng = np.random.default_rng(int(cv * 1000))
    sigma = np.sqrt(np.log(1 + cv**2))

    def draw(median: float) -> JobData:
        return job(median * rng.lognormal(0.0, sigma, 20))

    spec = RegressionSpec(resamples=1000)
    slow = [compare_latency(KEY, draw(11.0), [draw(10.0)], spec, seed=i).classification for i in range(100)]
    same = [compare_latency(KEY, draw(10.0), [draw(10.0)], spec, seed=i).classification for i in range(100)]
    assert slow.count("regression") >= 95
    assert same.count("regression") + same.count("improvement") <= 5


positive = st.floats(min_value=0.5, max_value=1e4, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(base=st.lists(positive, min_size=5, max_size=40), scale=st.sampled_from([2.0, 0.5]))
def test_scaling_both_sides_by_a_power_of_two_changes_nothing(base, scale):
    cand = [x * 1.07 for x in base]
    spec = RegressionSpec(resamples=200)
    a = compare_latency(KEY, job(cand), [job(base)], spec, seed=3)
    b = compare_latency(KEY, job([x * scale for x in cand]), [job([x * scale for x in base])], spec, seed=3)
    assert (a.classification, a.change, a.low, a.high) == (b.classification, b.change, b.low, b.high)


@settings(max_examples=40, deadline=None)
@given(base=st.lists(positive, min_size=5, max_size=40))
def test_doubling_every_latency_is_never_read_as_no_change_or_faster(base):
    c = compare_latency(KEY, job([x * 2 for x in base]), [job(base)], RegressionSpec(resamples=200), seed=1)
    assert c.change == pytest.approx(2.0)
    assert c.classification in ("regression", "suspicious")


@settings(max_examples=40, deadline=None)
@given(n_cand=st.integers(0, 8), n_base=st.integers(0, 8))
def test_insufficient_data_exactly_below_min_samples(n_cand, n_base):
    c = compare_latency(KEY, job([50.0 + i for i in range(n_cand)]), [job([50.0 + i for i in range(n_base)])],
                        RegressionSpec(resamples=100, min_samples=5), seed=0)
    assert (c.classification == "insufficient data") == (min(n_cand, n_base) < 5)


# ---- memory (MB) and quality (dB) ---------------------------------------------------------------------------
@pytest.mark.parametrize(("base", "cand", "change", "expected"), [
    ([300.0], 340.0, 40.0, "regression"),       # +40 MB > 32 MB (3% of 300 is only 9 MB)
    ([300.0], 320.0, 20.0, "no change"),
    ([2000.0], 2050.0, 50.0, "no change"),      # 3% of 2,000 MB = 60 MB is the larger threshold
    ([2000.0], 2070.0, 70.0, "regression"),
    ([300.0], 250.0, -50.0, "improvement"),
    ([300.0, 360.0, 330.0], 370.0, 40.0, "regression"),   # above every run of the window
    ([300.0, 360.0, 290.0], 345.0, 45.0, "suspicious"),   # beyond the threshold, but one window run was higher
])
def test_memory_delta_in_megabytes(base, cand, change, expected):
    c = compare_memory(KEY, job(peak=cand), [job(peak=b) for b in base], SPEC)
    assert c.unit == "MB" and c.change == pytest.approx(change) and c.classification == expected


def test_a_jetsam_where_the_baseline_fit_is_a_memory_regression():
    c = compare_memory(KEY, job(peak=2110.0, status="jetsam"), [job(peak=320.0)], SPEC)
    assert c.classification == "regression" and c.change == pytest.approx(1790.0)
    assert c.reason == "killed by jetsam; the baseline fit at 320.0 MB"


@pytest.mark.parametrize(("base", "cand", "expected"), [
    (40.0, 38.5, "regression"), (40.0, 39.5, "no change"), (40.0, 41.5, "improvement"), (999.0, 999.0, "no change"),
])
def test_quality_delta_in_decibels(base, cand, expected):
    c = compare_quality(KEY, job(psnr=cand), [job(psnr=base)], SPEC)
    assert c.unit == "dB" and c.change == pytest.approx(cand - base) and c.classification == expected


# ---- runs and windows through the store ----------------------------------------------------------------------
def test_window_pools_the_last_n_runs(writer: RunWriter, catalog):
    rng = np.random.default_rng(0)
    old = [writer.run(tiny_sd_jobs(rng, n=10)) for _ in range(4)]
    cand = writer.run(tiny_sd_jobs(rng, n=10))
    report = build_report(writer.store, cand, "window:3", catalog)
    assert report.baseline.ids == tuple(reversed(old[1:]))  # newest first, the oldest run left out
    latency = [c for c in report.comparisons if c.metric == "latency"]
    assert {c.n_baseline for c in latency} == {30} and {c.n_candidate for c in latency} == {10}
    assert build_report(writer.store, cand, "last", catalog).baseline.ids == (old[-1],)


def test_a_slower_and_fatter_run_against_last(writer: RunWriter, catalog):
    rng = np.random.default_rng(0)
    writer.run(tiny_sd_jobs(rng))
    jobs = with_job(tiny_sd_jobs(rng), "host", "unet", latencies=[48.0 * 1.2] * 30)
    jobs = with_job(jobs, "virtual:iphone-12", "vae_decoder", status="jetsam", peak_mb=2100.0, latencies=[],
                    events=[jetsam_event(2100.0, 2048.0)])
    report = build_report(writer.store, writer.run(jobs), "last", catalog)
    found = {(c.device_key, c.component, c.metric) for c in report.regressions}
    assert found == {("host", "unet", "latency"), ("virtual:iphone-12", "vae_decoder", "memory")}
    assert report.headline == "FAIL: 1 gate failure, 2 regressions"
