"""Launch-level regression statistics on synthetic launches (no timing): correlated launches, too few launches,
the noise floor, per-comparison seeds, and uncompared jobs named in the report."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.report import build_report
from orchestrator.report.data import JobData
from orchestrator.report.hierarchical import hierarchical_medians, hierarchical_ratio
from orchestrator.report.noise import noise_floor
from orchestrator.report.regression import classify, compare_latency, ratio_of_medians
from orchestrator.spec.model import RegressionSpec
from tests.report.runs import RunWriter, tiny_sd_jobs, with_job

KEY = ("host", "unet", "fp16-none-original", "cpu_only")
SPEC = RegressionSpec(resamples=1000)


def launches_job(launches: list[list[float]]) -> JobData:
    values = tuple(v for launch in launches for v in launch)
    ids = tuple(i for i, launch in enumerate(launches) for _ in launch)
    return JobData("r/0001", *KEY, status="ok", predicted_peak_mb=None, limit_mb=None, error=None,
                   metrics={"latency_ms": values}, launch_ids={"latency_ms": ids})


def correlated(rng: np.random.Generator, median: float, n_launches: int = 4, n: int = 30,
               between: float = 0.12, within: float = 0.02) -> list[list[float]]:
    """Each launch shifted as a whole by a random factor (contention, clock), its predictions tight around it."""
    out = []
    for _ in range(n_launches):
        level = median * rng.lognormal(0.0, between)
        out.append(list(level * rng.lognormal(0.0, within, n)))
    return out


def per_sample_verdict(cand: list[list[float]], base: list[list[float]], seed: int) -> str:
    """The old statistic: every prediction an independent sample."""
    flat_c = [v for launch in cand for v in launch]
    flat_b = [v for launch in base for v in launch]
    ratio, low, high = ratio_of_medians(flat_c, flat_b, resamples=SPEC.resamples, confidence=0.95, seed=seed)
    return classify(ratio, low, high, null=1.0, up=1.05, down=0.95)


def test_correlated_launches_give_no_false_regression_where_the_per_sample_test_cries_wolf():
    rng = np.random.default_rng(7)
    trials = [(correlated(rng, 50.0), correlated(rng, 50.0)) for _ in range(100)]
    old = [per_sample_verdict(c, b, seed=i) for i, (c, b) in enumerate(trials)]
    new = [compare_latency(KEY, launches_job(c), [launches_job(b)], SPEC, seed=i).classification
           for i, (c, b) in enumerate(trials)]
    old_flagged = sum(v in ("regression", "improvement") for v in old)
    new_flagged = sum(v in ("regression", "improvement") for v in new)
    print(f"\nidentical launches, 100 trials: per-sample test flagged {old_flagged}, launch-level {new_flagged}")
    assert old_flagged >= 25  # the old test: the launch offsets read as changes, in a quarter of trials or more
    assert new_flagged <= 5  # at most 5%


def test_a_real_2x_change_across_several_launches_is_a_regression():
    rng = np.random.default_rng(3)
    for i in range(10):
        c = compare_latency(KEY, launches_job(correlated(rng, 100.0)), [launches_job(correlated(rng, 50.0))],
                            SPEC, seed=i)
        assert c.classification == "regression", c.reason
        assert c.launches_candidate == c.launches_baseline == 4
        assert c.low > 1.05 and c.change == pytest.approx(2.0, rel=0.3)


def test_the_interval_is_wider_than_the_per_sample_one():
    rng = np.random.default_rng(11)
    cand, base = correlated(rng, 50.0), correlated(rng, 50.0)
    _, low, high = hierarchical_ratio(cand, base, resamples=1000, confidence=0.95, seed=1)
    _, flat_low, flat_high = ratio_of_medians([v for x in cand for v in x], [v for x in base for v in x],
                                              resamples=1000, confidence=0.95, seed=1)
    assert high - low > 2 * (flat_high - flat_low)


def test_one_launch_a_side_with_a_modest_change_is_insufficient_data_not_a_regression():
    rng = np.random.default_rng(5)
    base = [list(50.0 * rng.lognormal(0.0, 0.02, 30))]
    cand = [list(55.0 * rng.lognormal(0.0, 0.02, 30))]  # +10%: far outside the within-launch interval
    c = compare_latency(KEY, launches_job(cand), [launches_job(base)], RegressionSpec(), seed=0)
    assert c.low > 1.05  # the per-sample interval alone would confirm it
    assert c.classification == "insufficient data"
    assert "1 candidate and 1 baseline launch(es)" in c.reason and "widened to ±15%" in c.reason


@pytest.mark.parametrize("factor", [2.0, 0.3, 7.5])  # single launches of unchanged jobs differed this much
def test_one_launch_a_side_without_history_is_never_a_regression_or_improvement(factor):
    rng = np.random.default_rng(6)
    base = [list(50.0 * rng.lognormal(0.0, 0.02, 30))]
    cand = [list(50.0 * factor * rng.lognormal(0.0, 0.02, 30))]
    c = compare_latency(KEY, launches_job(cand), [launches_job(base)], RegressionSpec(), seed=0)
    assert c.classification == "suspicious" and c.change == pytest.approx(factor, rel=0.05)
    assert "no history to learn the variance between them from" in c.reason


def test_one_launch_a_side_is_judged_against_the_noise_floor_when_history_has_one():
    rng = np.random.default_rng(8)
    base = [list(50.0 * rng.lognormal(0.0, 0.02, 30))]
    doubled = [list(100.0 * rng.lognormal(0.0, 0.02, 30))]
    modest = [list(55.0 * rng.lognormal(0.0, 0.02, 30))]
    floor = noise_floor([50.0, 53.0, 49.0, 52.0, 50.5])  # unchanged reruns move by ~6-12%
    assert floor is not None
    big = compare_latency(KEY, launches_job(doubled), [launches_job(base)], SPEC, seed=0, floor=floor)
    small = compare_latency(KEY, launches_job(modest), [launches_job(base)], SPEC, seed=0, floor=floor)
    assert big.classification == "regression" and "noise floor from history stands in" in big.reason
    assert small.classification == "no change" and small.threshold == pytest.approx(floor)


def test_the_noise_floor_widens_the_threshold():
    # medians of past runs of the same spec on a noisy device: consecutive runs differ by ~10%
    history = [50.0, 55.0, 49.0, 54.5, 50.5, 56.0]
    floor = noise_floor(history)
    assert floor is not None and 0.10 < floor < 0.40
    rng = np.random.default_rng(2)
    cand = [list(54.0 * rng.lognormal(0.0, 0.01, 30)) for _ in range(4)]  # +8%, tight launches
    base = [list(50.0 * rng.lognormal(0.0, 0.01, 30)) for _ in range(4)]
    plain = compare_latency(KEY, launches_job(cand), [launches_job(base)], SPEC, seed=0)
    widened = compare_latency(KEY, launches_job(cand), [launches_job(base)], SPEC, seed=0, floor=floor)
    assert plain.classification == "regression" and plain.threshold == pytest.approx(0.05)
    assert widened.classification == "no change" and widened.threshold == pytest.approx(floor)
    assert widened.noise_floor == floor and "noise floor of this device" in widened.reason


def test_noise_floor_needs_five_runs_and_counts_a_step_once():
    assert noise_floor([50.0, 51.0, 50.5, 49.0]) is None
    quiet = noise_floor([50.0, 50.5, 49.8, 50.2, 50.1, 49.9, 50.3])
    stepped = noise_floor([50.0, 50.5, 49.8, 50.2, 75.1, 74.9, 75.3, 75.0])
    assert quiet is not None and stepped is not None
    assert quiet < 0.03 and stepped < 0.03  # a real step between two runs is not noise


def test_seeds_are_per_comparison_and_deterministic():
    rng = np.random.default_rng(4)
    cand, base = launches_job(correlated(rng, 50.0)), launches_job(correlated(rng, 50.0))
    a = compare_latency(KEY, cand, [base], SPEC, seed=0)
    assert compare_latency(KEY, cand, [base], SPEC, seed=0) == a
    other = ("virtual:iphone-12", *KEY[1:])
    b = compare_latency(other, cand, [base], SPEC, seed=0)
    assert (b.low, b.high) != (a.low, a.high)  # another key draws other resamples from the same base seed
    launches = correlated(rng, 50.0)
    first = hierarchical_medians(launches, 500, np.random.default_rng(9))
    assert np.array_equal(first, hierarchical_medians(launches, 500, np.random.default_rng(9)))


def test_the_report_learns_the_floor_from_earlier_runs(writer: RunWriter, catalog):
    rng = np.random.default_rng(0)
    for slow in (1.0, 1.12, 0.98, 1.13, 1.0, 1.12):  # the host unet wanders by ~12% between unchanged runs
        jobs = with_job(tiny_sd_jobs(rng, cv=0.01), "host", "unet",
                        latencies=list(48.0 * slow * rng.lognormal(0.0, 0.01, 30)))
        writer.run(jobs)
    cand = writer.run(with_job(tiny_sd_jobs(rng, cv=0.01), "host", "unet",
                               latencies=list(48.0 * 1.08 * rng.lognormal(0.0, 0.01, 30))))
    report = build_report(writer.store, cand, "window:2", catalog)
    unet = next(c for c in report.comparisons if c.metric == "latency" and c.device_key == "host"
                and c.component == "unet")
    quiet = next(c for c in report.comparisons if c.metric == "latency" and c.device_key == "host"
                 and c.component == "text_encoder")
    assert unet.noise_floor is not None and unet.noise_floor > 0.08 and unet.threshold == unet.noise_floor
    assert unet.classification != "regression"
    assert quiet.threshold == pytest.approx(0.05)  # a quiet component keeps the spec's threshold
    assert len(report.history) == 9 and all(len(s.points) == 7 for s in report.history)


def test_an_uncompared_job_is_named_with_the_baseline_run(writer: RunWriter, catalog):
    rng = np.random.default_rng(0)
    base = writer.run(tiny_sd_jobs(rng))
    jobs = with_job(tiny_sd_jobs(rng), "host", "unet", variant="fp16-none-original")
    report = build_report(writer.store, writer.run(jobs), "last", catalog)
    assert report.uncompared == (("host", "unet", "fp16-none-original", "cpu_only"),)
    assert f"uncompared: host unet fp16-none-original cpu_only: not in baseline run {base}" in report.notes
