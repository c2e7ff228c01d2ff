"""The regression classifier against real host-harness latencies with a known, injected slowdown.

The host harness (``python -m orchestrator.harness JOB.json``) stretches every timed prediction by
``MLFARM_HARNESS_DELAY_FACTOR``. Process start-up costs seconds, so each condition is one harness process
with many iterations, split afterwards into disjoint trials, each classified with its own bootstrap seed:

    baseline  (factor 1.00)  ||  candidate (factor 1.10)     run side by side: 10% slower must be a regression
    baseline' (factor 1.00)  ||  identical (factor 1.00)     run side by side: must almost never be flagged

Each pair runs concurrently (one thread each) so both sides see the same machine load, and trial ``i`` takes
every ``TRIALS``-th sample: slow drift in the machine's speed is then shared by every trial instead of
deciding some of them. The figures are printed (``pytest -s``) next to the required rates.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from orchestrator.harness.contract import InputSpec, Job, read_result
from orchestrator.report.data import JobData
from orchestrator.report.regression import Classification, compare_latency
from orchestrator.spec.model import RegressionSpec

TRIALS, SAMPLES = 25, 20
SHAPE = (64, 512)
KEY = ("host", "probe", "fp32-none-original", "cpu_only")


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


def start_harness(root: Path, name: str, factor: float, iterations: int = TRIALS * SAMPLES,
                  ) -> tuple[Path, subprocess.Popen[bytes]]:
    job_dir = root / name
    job_dir.mkdir()
    Job(job_id=name, model="probe.mlpackage", compute_units="cpu_only", inputs=(InputSpec("x", SHAPE),),
        warmup=5, iterations=iterations, sample_interval_ms=200, timeout_s=300,
        return_outputs=False).write(job_dir)
    env = {**os.environ, "MLFARM_HARNESS_DELAY_FACTOR": str(factor), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "orchestrator.harness", str(job_dir / "job.json"), "--root", str(root),
           "--runtime", "mil-executor"]
    return job_dir, subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_pair(root: Path, a: tuple[str, float], b: tuple[str, float]) -> tuple[list[float], list[float]]:
    """Run two harness processes side by side; return their per-prediction latencies."""
    procs = [start_harness(root, name, factor) for name, factor in (a, b)]
    out = []
    for job_dir, proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode(errors="replace")
        result = read_result(job_dir, job_id=job_dir.name)
        assert result.raw["status"] == "ok" and len(result.latencies_ms) == TRIALS * SAMPLES
        out.append(list(result.latencies_ms))
    return out[0], out[1]


def classify_trials(candidate: list[float], baseline: list[float]) -> list[Classification]:
    """Trial i = every TRIALS-th sample from i; each trial bootstrapped with its own seed."""
    spec = RegressionSpec()  # the defaults: +-5% latency threshold, 95% interval, 2000 resamples

    def job(values: list[float]) -> JobData:
        return JobData("probe", *KEY, status="ok", predicted_peak_mb=None, limit_mb=None, error=None,
                       metrics={"latency_ms": tuple(values)})

    return [compare_latency(KEY, job(candidate[i::TRIALS]), [job(baseline[i::TRIALS])], spec, seed=i).classification
            for i in range(TRIALS)]


@pytest.fixture(scope="module")
def latencies(probe_model: Path) -> dict[str, list[float]]:
    base, slow = run_pair(probe_model, ("baseline", 1.0), ("slow", 1.10))
    base2, same = run_pair(probe_model, ("baseline2", 1.0), ("same", 1.0))
    return {"baseline": base, "slow": slow, "baseline2": base2, "same": same}


@pytest.mark.slow
def test_the_delay_knob_slows_the_real_harness(latencies):
    ratio = np.median(latencies["slow"]) / np.median(latencies["baseline"])
    print(f"\nharness median {np.median(latencies['baseline']):.2f} ms; slowed/baseline = {ratio:.3f} "
          f"(knob 1.10); identical/baseline' = "
          f"{np.median(latencies['same']) / np.median(latencies['baseline2']):.3f}")
    assert ratio > 1.05


@pytest.mark.slow
def test_ten_percent_slowdown_is_a_regression_in_at_least_95_percent_of_trials(latencies):
    counts = Counter(classify_trials(latencies["slow"], latencies["baseline"]))
    rate = counts["regression"] / TRIALS
    print(f"\n10% slowdown, {TRIALS} trials x {SAMPLES} samples: {dict(counts)}; regression rate {rate:.0%} "
          "(required >= 95%)")
    assert rate >= 0.95, f"{dict(counts)}; latency CV {_cv(latencies['baseline']):.1%} on this machine"


@pytest.mark.slow
def test_identical_runs_are_flagged_in_at_most_5_percent_of_trials(latencies):
    counts = Counter(classify_trials(latencies["same"], latencies["baseline2"]))
    flagged = (counts["regression"] + counts["improvement"]) / TRIALS
    print(f"\nidentical runs, {TRIALS} trials x {SAMPLES} samples: {dict(counts)}; flagged {flagged:.0%} "
          "(required <= 5%)")
    assert flagged <= 0.05, f"{dict(counts)}; latency CV {_cv(latencies['baseline2']):.1%} on this machine"


def test_too_few_harness_samples_are_insufficient_data(probe_model):
    min_samples = RegressionSpec().min_samples
    job_dir, proc = start_harness(probe_model, "few", 1.0, iterations=min_samples - 1)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode(errors="replace")
    few = list(read_result(job_dir, job_id="few").latencies_ms)
    assert len(few) == min_samples - 1
    job = JobData("few", *KEY, status="ok", predicted_peak_mb=None, limit_mb=None, error=None,
                  metrics={"latency_ms": tuple(few)})
    many = JobData("many", *KEY, status="ok", predicted_peak_mb=None, limit_mb=None, error=None,
                   metrics={"latency_ms": tuple(few * 10)})
    c = compare_latency(KEY, job, [many], RegressionSpec(), seed=0)
    assert c.classification == "insufficient data" and c.n_candidate == min_samples - 1


def _cv(values: list[float]) -> float:
    a = np.asarray(values)
    return float(a.std() / a.mean())
