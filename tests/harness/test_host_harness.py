"""The Python host harness as a real subprocess on a real artifact: the contract, outputs, and the delay knob."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import orchestrator.mil as mil
from orchestrator.harness.contract import InputSpec, Job, load_outputs, read_result
from orchestrator.harness.host import BASELINE_MARKER
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


def test_delay_knob_stretches_every_timed_prediction(tmp_path, encoder):
    base, base_dir = run_harness(tmp_path, encoder, iterations=8, job_id="t/base")
    slow, slow_dir = run_harness(tmp_path, encoder, iterations=8, job_id="t/slow",
                                 env={"MLFARM_HARNESS_DELAY_FACTOR": "3.0"})
    assert base.returncode == slow.returncode == 0
    fast = statistics.median(read_result(base_dir, job_id="t/base").latencies_ms)
    stretched = statistics.median(read_result(slow_dir, job_id="t/slow").latencies_ms)
    assert stretched > 1.8 * fast  # 3x by construction; generous for a busy machine


def test_a_broken_model_is_an_error_result_not_a_crash(tmp_path):
    broken = tmp_path / "broken.mlpackage"
    broken.mkdir()
    (broken / "Manifest.json").write_text("{}")
    proc, job_dir = run_harness(tmp_path, broken)
    assert proc.returncode == 1
    doc = json.loads((job_dir / "result.json").read_text())
    assert doc["status"] == "error" and "ArtifactError" in doc["error"]
    read_result(job_dir, job_id="t/0001")  # still a valid result document
