"""What the host harness holds while it measures: one loaded model at a time (as the Swift app), and the allocator
settings the watchdog gives it so freed activations go back to the kernel."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np

from orchestrator.devices.watchdog import ALLOCATOR_ENV, harness_env
from orchestrator.harness.contract import InputSpec, Job
from orchestrator.harness.host import run_benchmark


class Model:
    runtime = "test"

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": inputs["x"] * 2}


def test_the_cold_model_is_dropped_before_the_warm_load(tmp_path: Path):
    loaded: list[weakref.ref[Model]] = []
    alive_at_load: list[int] = []

    def load(path: Path, units: str) -> Model:
        gc.collect()  # only references, not a collector pass, may keep a model alive
        alive_at_load.append(sum(ref() is not None for ref in loaded))
        model = Model()
        loaded.append(weakref.ref(model))
        return model

    job = Job("t/1", "m", "all", (InputSpec("x", (2,), "float32", 1),), warmup=0, iterations=2, timeout_s=60,
              return_outputs=False)
    timings, _, runtime = run_benchmark(job, tmp_path, load, tmp_path, deadline=float("inf"), factor=1.0)
    assert alive_at_load == [0, 0]  # the warm load starts with no model loaded
    assert runtime == "test" and len(timings.latencies) == 2


def test_the_harness_gets_fixed_allocator_settings_unless_the_caller_set_its_own():
    env = harness_env({"PATH": "/bin", "MALLOC_ARENA_MAX": "8"})
    assert env["MALLOC_ARENA_MAX"] == "8"  # the caller's choice stands
    assert env["MALLOC_MMAP_THRESHOLD_"] == ALLOCATOR_ENV["MALLOC_MMAP_THRESHOLD_"]
    assert env["PATH"] == "/bin"
