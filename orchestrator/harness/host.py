"""The Python host harness: the same contract as the Swift app, run as ``python -m orchestrator.harness JOB``.

Sequence (mirrors harness_app/Sources/HarnessKit/Benchmark.swift):
  1. read and validate job.json; measure the baseline footprint (before any model is loaded) and print
     ``MLFARM_BASELINE_MB=<mb>`` on stdout, so a watchdog can judge the footprint above it;
  2. cold load (timed), then a warm reload (timed; the second load is the one used);
  3. first prediction (timed), its outputs saved as ``out_<name>.npy`` when asked;
  4. ``warmup`` untimed predictions, then ``iterations`` timed ones;
  5. write result.json atomically next to job.json; exit 0 (status ok), 1 (error) or 124 (timeout).

``MLFARM_HARNESS_DELAY_FACTOR`` (tests only, off by default) stretches every timed prediction by that factor
with a sleep, so statistics can be tested against a known slowdown.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator import __version__
from orchestrator.harness.contract import SCHEMA_VERSION, Job
from orchestrator.harness.inputs import make_input
from orchestrator.harness.memory import MemorySampler, footprint_mb
from orchestrator.harness.runtime import Predictor, import_runtime

BASELINE_MARKER = "MLFARM_BASELINE_MB="
DELAY_ENV = "MLFARM_HARNESS_DELAY_FACTOR"
EXIT_TIMEOUT = 124


class JobTimeout(Exception):
    pass


@dataclass
class Timings:
    cold_ms: float = 0.0
    warm_ms: float = 0.0
    first_ms: float = 0.0
    latencies: list[float] = field(default_factory=list)


def delay_factor(env: dict[str, str] | os._Environ[str] = os.environ) -> float:
    try:
        factor = float(env.get(DELAY_ENV, "1") or 1)
    except ValueError:
        return 1.0
    return factor if factor > 1.0 else 1.0


def job_inputs(job: Job) -> dict[str, np.ndarray]:
    return {i.name: make_input(i.shape, i.dtype, i.seed, i.high) for i in job.inputs}


Clock = Callable[[], float]


def _timed(fn: Callable[[], Any], factor: float = 1.0, clock: Clock = time.perf_counter) -> tuple[Any, float]:
    start = clock()
    value = fn()
    elapsed = clock() - start
    if factor > 1.0:
        # Spin, not sleep: a sleep of a fraction of a millisecond overshoots by tens of microseconds, which
        # would turn a 10% knob into 15-50% on a fast prediction.
        target = start + elapsed * factor
        while clock() < target:
            pass
        elapsed = clock() - start
    return value, elapsed * 1000.0


def save_outputs(job_dir: Path, outputs: dict[str, np.ndarray]) -> dict[str, str]:
    names = {}
    for name, value in outputs.items():
        filename = f"out_{name}.npy"
        np.save(job_dir / filename, np.asarray(value), allow_pickle=False)
        names[name] = filename
    return names


def run_benchmark(job: Job, model_path: Path, load: Callable[[Path, str], Predictor], job_dir: Path,
                  *, deadline: float, factor: float, clock: Clock = time.perf_counter,
                  ) -> tuple[Timings, dict[str, str], str]:
    """Load, predict and time; raises JobTimeout past ``deadline`` (on ``clock``; tests inject their own)."""
    t = Timings()
    cold, t.cold_ms = _timed(lambda: load(model_path, job.compute_units), clock=clock)
    del cold  # dropped before the warm load, as the Swift app does: two loaded copies would double the peak
    predictor, t.warm_ms = _timed(lambda: load(model_path, job.compute_units), clock=clock)
    inputs = job_inputs(job)
    first, t.first_ms = _timed(lambda: predictor.predict(inputs), factor, clock)
    outputs = save_outputs(job_dir, first) if job.return_outputs else {}
    for i in range(job.warmup + job.iterations):
        if clock() > deadline:
            raise JobTimeout(f"timeout after {i} of {job.warmup + job.iterations} predictions")
        _, ms = _timed(lambda: predictor.predict(inputs), factor, clock)
        if i >= job.warmup:
            t.latencies.append(round(ms, 4))
    return t, outputs, predictor.runtime


def device_section() -> dict[str, Any]:
    import psutil

    return {
        "model": f"{platform.node() or 'host'} ({platform.machine()})",
        "os": platform.platform(),
        "physical_memory_mb": round(psutil.virtual_memory().total / 2**20, 1),
        "thermal_state_before": "unknown",
        "thermal_state_after": "unknown",
        "low_power_mode": False,
    }


def write_result(job_dir: Path, doc: dict[str, Any]) -> Path:
    tmp = job_dir / "result.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1))
    final = job_dir / "result.json"
    os.replace(tmp, final)
    return final


def run_job(job_path: Path, root: Path, load: Callable[[Path, str], Predictor], *,
            runtime_name: str, out: Any = sys.stdout) -> int:
    """Run one job; always writes result.json (except when killed). Returns the process exit code."""
    t0 = time.perf_counter()
    job_dir = job_path.parent
    job = Job.from_json(json.loads(job_path.read_text()), display=str(job_path))
    import_runtime(runtime_name)
    baseline = footprint_mb()
    print(f"{BASELINE_MARKER}{baseline:.3f}", file=out, flush=True)
    sampler = MemorySampler(job.sample_interval_ms, t0=t0).start()
    status, error, code = "ok", None, 0
    timings, outputs, runtime = Timings(), dict[str, str](), runtime_name
    try:
        timings, outputs, runtime = run_benchmark(job, root / job.model, load, job_dir,
                                                  deadline=t0 + job.timeout_s, factor=delay_factor())
    except JobTimeout as exc:
        status, error, code = "timeout", str(exc), EXIT_TIMEOUT
    except Exception as exc:  # any failure of the model becomes an error result
        status, error, code = "error", f"{type(exc).__name__}: {exc}"[:8000], 1
    peak, samples = sampler.stop()
    doc = {
        "schema_version": SCHEMA_VERSION, "job_id": job.job_id, "status": status,
        "harness": {"name": "mlfarm-host-harness", "version": __version__, "runtime": runtime},
        "device": device_section(),
        "load_ms": {"cold": round(timings.cold_ms, 3), "warm": round(timings.warm_ms, 3)},
        "first_predict_ms": round(timings.first_ms, 3),
        "latencies_ms": timings.latencies,
        "memory": {"peak_phys_footprint_mb": round(peak, 3), "baseline_phys_footprint_mb": round(baseline, 3),
                   "min_available_mb": None, "samples": samples},
        "outputs": outputs, "error": error,
    }
    write_result(job_dir, doc)
    return code
