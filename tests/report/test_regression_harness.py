"""The regression classifier on harness latencies: synthetic samples with a known slowdown, and the harness's
own subprocess output.

Detection rates over real latencies (a 10% slowdown caught in >= 95% of trials, identical runs flagged in
<= 5%) depend on how busy the machine is: they are measured by ``bench/regression_trials.py``, not asserted
here. These tests use seeded synthetic samples with the noise measured on a busy 2-core machine (IQR 14% of
the median), so each outcome is fixed and a failure means the classifier changed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from orchestrator.harness.contract import InputSpec, Job, read_result
from orchestrator.report.data import JobData
from orchestrator.report.regression import Classification, compare_latency
from orchestrator.spec.model import RegressionSpec

SHAPE = (128, 512)
KEY = ("host", "probe", "fp32-none-original", "cpu_only")
IQR_SHARE = 0.14  # the within-trial spread measured on a shared 2-core machine (bench/regression_trials.py)
LAUNCHES = 5  # samples are split into this many consecutive launches, as the runner stores measure.launches


@pytest.fixture(scope="module")
def probe_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ML program (4 x linear + relu, a few ms per prediction on one core), built with coremltools."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 0.05, (SHAPE[1], SHAPE[1])).astype(np.float32) for _ in range(4)]

    @mb.program(input_specs=[mb.TensorSpec(shape=SHAPE, dtype=types.fp32)])
    def prog(x):  # type: ignore[no-untyped-def]
        for w in weights:
            x = mb.relu(x=mb.linear(x=x, weight=w))
        return x

    model = ct.convert(prog, convert_to="mlprogram", compute_precision=ct.precision.FLOAT32,
                       minimum_deployment_target=ct.target.iOS16)
    root = tmp_path_factory.mktemp("probe")
    model.save(str(root / "probe.mlpackage"))
    return root


def run_harness_process(root: Path, name: str, iterations: int) -> list[float]:
    """``python -m orchestrator.harness JOB.json``, the documented entry point; the job's latencies."""
    job_dir = root / name
    job_dir.mkdir()
    Job(job_id=name, model="probe.mlpackage", compute_units="cpu_only", inputs=(InputSpec("x", SHAPE),),
        warmup=1, iterations=iterations, sample_interval_ms=200, timeout_s=300, return_outputs=False).write(job_dir)
    cmd = [sys.executable, "-m", "orchestrator.harness", str(job_dir / "job.json"), "--root", str(root),
           "--runtime", "mil-executor"]
    proc = subprocess.run(cmd, capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return list(read_result(job_dir, job_id=name).latencies_ms)


def latencies(rng: np.random.Generator, n: int, median_ms: float = 5.0) -> list[float]:
    """n latencies around ``median_ms`` with an IQR of IQR_SHARE of the median (normal noise, IQR = 1.349 sd)."""
    return list(median_ms * (1 + rng.normal(0, IQR_SHARE / 1.349, n)))


def classify(candidate: list[float], baseline: list[float], seed: int = 0) -> Classification:
    """Each side measured in LAUNCHES launches of equal size (launches are the statistic's unit)."""
    def job(values: list[float]) -> JobData:
        launch_ids = tuple(i * LAUNCHES // len(values) for i in range(len(values)))
        return JobData("probe", *KEY, status="ok", predicted_peak_mb=None, limit_mb=None, error=None,
                       metrics={"latency_ms": tuple(values)}, launch_ids={"latency_ms": launch_ids})

    return compare_latency(KEY, job(candidate), [job(baseline)], RegressionSpec(), seed=seed).classification


@pytest.mark.parametrize("seed", range(5))
def test_a_ten_percent_slowdown_of_150_noisy_samples_is_a_regression(seed):
    rng = np.random.default_rng(seed)
    baseline = latencies(rng, 150)
    slow = [1.10 * v for v in latencies(rng, 150)]
    assert classify(slow, baseline, seed) == "regression"
    assert classify(baseline, slow, seed) == "improvement"


@pytest.mark.parametrize("seed", range(5))
def test_identical_conditions_of_150_noisy_samples_are_no_change(seed):
    rng = np.random.default_rng(100 + seed)
    assert classify(latencies(rng, 150), latencies(rng, 150), seed) == "no change"


@pytest.mark.parametrize("seed", range(8))
def test_a_slowdown_within_the_noise_of_few_samples_is_never_called_a_regression(seed):
    # 10 samples a side (5 launches of 2) at 14% IQR: the interval is wider than the 10% shift
    rng = np.random.default_rng(seed)
    baseline = latencies(rng, 10)
    assert classify([1.10 * v for v in latencies(rng, 10)], baseline, seed) in ("suspicious", "no change")


def test_an_exact_ten_percent_slowdown_without_noise_is_a_regression():
    baseline = [5.0 + 0.01 * i for i in range(20)]
    assert classify([1.10 * v for v in baseline], baseline) == "regression"
    assert classify([1.02 * v for v in baseline], baseline) == "no change"  # within the 5% threshold


def test_too_few_harness_samples_are_insufficient_data(probe_model):
    min_samples = RegressionSpec().min_samples
    few = run_harness_process(probe_model, "few", iterations=min_samples - 1)
    assert len(few) == min_samples - 1

    def job(values: list[float]) -> JobData:
        return JobData("few", *KEY, status="ok", predicted_peak_mb=None, limit_mb=None, error=None,
                       metrics={"latency_ms": tuple(values)})

    c = compare_latency(KEY, job(few), [job(few * 10)], RegressionSpec(), seed=0)
    assert c.classification == "insufficient data" and c.n_candidate == min_samples - 1
