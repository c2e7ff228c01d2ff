"""The Python host harness as a real subprocess on a real artifact: the contract, outputs, and the delay knob."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import orchestrator.mil as mil
from orchestrator.harness.contract import InputSpec, Job, load_outputs, read_result
from orchestrator.harness.host import BASELINE_MARKER, DELAY_ENV, JobTimeout, delay_factor, run_benchmark, run_job
from orchestrator.harness.inputs import make_input


def run_harness(tmp_path: Path, artifact: Path, *, iterations: int = 4, env: dict | None = None,
                job_id: str = "t/0001") -> tuple[subprocess.CompletedProcess, Path]:
    root = tmp_path / "root"
    (root / "models").mkdir(parents=True, exist_ok=True)
    link = root / "models" / "m.mlpackage"
    if not link.exists():
        link.symlink_to(artifact, target_is_directory=True)
    job_dir = root / "jobs" / job_id.replace("/", "_")
    job_dir.mkdir(parents=True, exist_ok=True)
    job = Job(job_id, "models/m.mlpackage", "all", (InputSpec("input_ids", (1, 77), "int32", 5, 1024),),
              warmup=1, iterations=iterations, sample_interval_ms=5, timeout_s=120)
    path = job.write(job_dir)
    proc = subprocess.run([sys.executable, "-m", "orchestrator.harness", str(path), "--root", str(root)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
    return proc, job_dir


@pytest.fixture(scope="module")
def encoder(tiny_artifacts) -> Path:
    return tiny_artifacts[("text_encoder", "fp16-none-split_einsum_v2")].path


def test_harness_writes_a_valid_result_with_the_first_outputs(tmp_path, encoder):
    proc, job_dir = run_harness(tmp_path, encoder)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(BASELINE_MARKER)
    result = read_result(job_dir, job_id="t/0001")
    raw = result.raw
    assert raw["status"] == "ok" and raw["harness"]["runtime"] == "mil-executor"
    assert len(raw["latencies_ms"]) == 4 and raw["load_ms"]["cold"] > 0 and raw["first_predict_ms"] > 0
    mem = raw["memory"]
    assert mem["peak_phys_footprint_mb"] >= mem["baseline_phys_footprint_mb"] > 0 and mem["samples"]
    outputs = load_outputs(job_dir, result)
    expected = mil.execute(encoder, {"input_ids": make_input((1, 77), "int32", 5, 1024)})
    assert set(outputs) == set(expected)
    for name in expected:
        np.testing.assert_array_equal(outputs[name], expected[name])  # same inputs, same executor, same bits


class FakeClock:
    """A clock that moves only when told (plus a microsecond per read, so the knob's spin loop advances)."""

    TICK = 1e-6

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += self.TICK
        return self.now


class SteppingPredictor:
    """Each prediction takes ``step_s`` on the fake clock."""

    runtime = "fake"

    def __init__(self, clock: FakeClock, step_s: float) -> None:
        self.clock, self.step_s = clock, step_s

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.clock.now += self.step_s
        return {"y": np.zeros(1, np.float32)}


@pytest.mark.parametrize("factor", [1.0, 1.1, 3.0])
def test_delay_knob_stretches_every_timed_prediction(tmp_path, factor):
    clock = FakeClock()
    job = Job("t/knob", "m.mlpackage", "all", (InputSpec("x", (1, 4)),), warmup=2, iterations=6,
              return_outputs=False)
    timings, _, runtime = run_benchmark(job, tmp_path / "m.mlpackage",
                                        lambda _p, _u: SteppingPredictor(clock, 0.010), tmp_path,
                                        deadline=clock.now + 60, factor=factor, clock=clock)
    assert runtime == "fake" and len(timings.latencies) == 6  # the warm-up predictions are not timed
    # 10 ms predictions stretched by the factor (to within the fake clock's reads, a microsecond each)
    assert timings.latencies == pytest.approx([10.0 * factor] * 6, abs=0.01)
    assert timings.first_ms == pytest.approx(10.0 * factor, abs=0.01)


def test_delay_factor_reads_the_environment_and_never_speeds_up():
    assert delay_factor({DELAY_ENV: "3.0"}) == 3.0
    assert delay_factor({}) == delay_factor({DELAY_ENV: "0.5"}) == delay_factor({DELAY_ENV: "x"}) == 1.0


def test_a_job_past_its_deadline_times_out_on_the_injected_clock(tmp_path):
    clock = FakeClock()
    job = Job("t/late", "m.mlpackage", "all", (InputSpec("x", (1, 4)),), warmup=0, iterations=10,
              return_outputs=False)
    # each prediction takes 1 s of fake time; the deadline falls after the third timed one
    with pytest.raises(JobTimeout, match="timeout after 3 of 10"):
        run_benchmark(job, tmp_path / "m.mlpackage", lambda _p, _u: SteppingPredictor(clock, 1.0), tmp_path,
                      deadline=clock.now + 3.5, factor=1.0, clock=clock)


class SleepingPredictor:
    """Sleeps a few ms per prediction and records how long each prediction itself took."""

    runtime = "mil-executor"  # what the result contract accepts

    def __init__(self) -> None:
        self.durations_ms: list[float] = []

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        time.sleep(0.003)
        self.durations_ms.append((time.perf_counter() - start) * 1000)
        return {"y": np.zeros(1, np.float32)}


def test_run_job_applies_the_knob_from_its_environment(tmp_path, monkeypatch):
    # The knob only adds time: a stretched latency is at least factor x the prediction inside it, whatever the
    # machine's load (a busy machine only makes it longer), so this bound cannot fail on a sound harness.
    monkeypatch.setenv(DELAY_ENV, "3.0")
    predictor = SleepingPredictor()
    job = Job("t/env", "m.mlpackage", "all", (InputSpec("x", (1, 4)),), warmup=0, iterations=5,
              sample_interval_ms=5, timeout_s=60, return_outputs=False)
    (tmp_path / "job").mkdir()
    code = run_job(job.write(tmp_path / "job"), tmp_path, lambda _p, _u: predictor, runtime_name="mil-executor",
                   out=io.StringIO())
    assert code == 0
    result = read_result(tmp_path / "job", job_id="t/env")
    timed = predictor.durations_ms[-5:]  # the first prediction (outputs) is untimed in latencies_ms
    assert len(result.latencies_ms) == 5
    for latency, inner in zip(result.latencies_ms, timed, strict=True):
        assert latency >= 3.0 * inner - 0.001, (result.latencies_ms, timed)


def test_a_broken_model_is_an_error_result_not_a_crash(tmp_path):
    broken = tmp_path / "broken.mlpackage"
    broken.mkdir()
    (broken / "Manifest.json").write_text("{}")
    proc, job_dir = run_harness(tmp_path, broken)
    assert proc.returncode == 1
    doc = json.loads((job_dir / "result.json").read_text())
    assert doc["status"] == "error" and "ArtifactError" in doc["error"]
    read_result(job_dir, job_id="t/0001")  # still a valid result document
