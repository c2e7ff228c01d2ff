"""Detection rates of the regression classifier on real host-harness latencies with a known, injected slowdown.

    .venv/bin/python bench/regression_trials.py [--trials 25] [--samples 150] [--chunk 5]

(moved here from tests/report/test_regression_harness.py: rates over real latencies depend on how busy the
machine is, so they are figures to read, not assertions a test may make.) Three conditions:

    baseline   factor 1.00
    slow       factor 1.10      10% slower: target a regression in >= 95% of trials
    same       factor 1.00      identical: target flagged (regression or improvement) in <= 5% of trials

The harness stretches every timed prediction by ``MLFARM_HARNESS_DELAY_FACTOR``. A harness process costs
seconds to start (torch), processes run minutes apart see different machine load, and every model load lays
the model out in memory differently: each of those would be compared instead of the knob. So the trials run
the harness's benchmark loop (``run_benchmark``) in this process on one predictor loaded once, and interleave
the conditions in chunks of a few predictions (in a rotating order): whatever the machine does during a trial
then falls on every condition alike. Each trial is classified with its own bootstrap seed.

Printed: the slow/baseline median ratio (the reference: what the knob really did in this run), the noise
(IQR within a trial as a share of the median), the regression rate for the 10% slowdown and the flag rate for
identical runs, each next to its target. On a shared 2-core machine the IQR reached 14% of the median; a
ratio of medians then has a standard error near 2.4% at 60 samples a side (a measured 92% detection rate),
about 1.5% at 150. Run it under ``flock /tmp/mlfarm-cpu.lock``.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from orchestrator.harness.contract import InputSpec, Job
from orchestrator.harness.host import DELAY_ENV, delay_factor, run_benchmark
from orchestrator.harness.runtime import mil_loader
from orchestrator.report.data import JobData
from orchestrator.report.regression import Classification, compare_latency
from orchestrator.spec.model import RegressionSpec

SHAPE = (128, 512)
KEY = ("host", "probe", "fp32-none-original", "cpu_only")
FACTORS = {"baseline": 1.0, "slow": 1.10, "same": 1.0}
ORDERS = (("baseline", "slow", "same"), ("slow", "same", "baseline"), ("same", "baseline", "slow"))


def build_probe(root: Path) -> Path:
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
    model.save(str(root / "probe.mlpackage"))
    return root / "probe.mlpackage"


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """The predictor runs on one core, as the harness subprocess does with OMP_NUM_THREADS=1."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def run_trials(model: Path, trials: int, samples: int, chunk: int) -> dict[str, list[list[float]]]:
    """condition -> ``trials`` lists of ``samples`` latencies, the conditions interleaved ``chunk`` at a time."""
    factors = {c: delay_factor({DELAY_ENV: str(f)}) for c, f in FACTORS.items()}
    blocks: dict[str, list[list[float]]] = {c: [] for c in FACTORS}
    with one_thread():
        predictor = mil_loader(model, "cpu_only")
        for i in range(trials):
            got: dict[str, list[float]] = {c: [] for c in FACTORS}
            for k in range(samples // chunk):
                for condition in ORDERS[(i + k) % len(ORDERS)]:
                    job = Job(job_id=f"{condition}-{i:02d}-{k:02d}", model=model.name, compute_units="cpu_only",
                              inputs=(InputSpec("x", SHAPE),), warmup=0, iterations=chunk, return_outputs=False)
                    timings, _, _ = run_benchmark(job, model, lambda _p, _u: predictor, model.parent,
                                                  deadline=time.perf_counter() + 300, factor=factors[condition])
                    got[condition] += timings.latencies
            for condition, values in got.items():
                blocks[condition].append(values)
            print(f"  trial {i + 1}/{trials} done", flush=True)
    return blocks


def classify_trials(candidate: list[list[float]], baseline: list[list[float]]) -> list[Classification]:
    spec = RegressionSpec()  # the defaults: +-5% latency threshold, 95% interval, 2000 resamples

    def job(values: list[float]) -> JobData:
        return JobData("probe", *KEY, status="ok", predicted_peak_mb=None, limit_mb=None, error=None,
                       metrics={"latency_ms": tuple(values)})

    return [compare_latency(KEY, job(c), [job(b)], spec, seed=i).classification
            for i, (c, b) in enumerate(zip(candidate, baseline, strict=True))]


def block_spread(blocks: list[list[float]]) -> float:
    """The typical noise within one trial: the median over blocks of each block's IQR / median."""
    spreads = []
    for b in blocks:
        q25, q50, q75 = np.percentile(b, [25, 50, 75])
        spreads.append((q75 - q25) / q50)
    return float(np.median(spreads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=25)
    parser.add_argument("--samples", type=int, default=150, help="latencies per condition and trial")
    parser.add_argument("--chunk", type=int, default=5, help="predictions per interleaved block")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlfarm-trials-") as tmp:
        blocks = run_trials(build_probe(Path(tmp)), args.trials, args.samples, args.chunk)
    base = blocks["baseline"]
    ratios = [np.median(s) / np.median(b) for s, b in zip(blocks["slow"], base, strict=True)]
    slow = Counter(classify_trials(blocks["slow"], base))
    same = Counter(classify_trials(blocks["same"], base))
    detected = slow["regression"] / args.trials
    flagged = (same["regression"] + same["improvement"]) / args.trials
    print(f"\n{args.trials} trials x {args.samples} samples a condition (interleaved {args.chunk} at a time)")
    print(f"noise: latency median {np.median(np.concatenate(base)):.2f} ms, IQR within a trial "
          f"{block_spread(base):.1%} of the median")
    print(f"knob (reference): slow/baseline median ratio {np.median(ratios):.3f} (set 1.10), "
          f"per-trial range {min(ratios):.3f}-{max(ratios):.3f}")
    print(f"10% slowdown: {dict(slow)}; regression rate {detected:.0%} (target >= 95%)")
    print(f"identical:    {dict(same)}; flagged {flagged:.0%} (target <= 5%)")


if __name__ == "__main__":
    main()
