"""Results coming back from a harness are untrusted: every malformed case is a ContractError, never a crash."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from orchestrator.errors import ContractError
from orchestrator.harness.contract import InputSpec, Job, load_job, load_outputs, read_result
from orchestrator.harness.inputs import GOLDEN, make_input, splitmix64


def good_result(job_id: str = "run/0001") -> dict:
    return {"schema_version": 1, "job_id": job_id, "status": "ok",
            "harness": {"name": "t", "version": "1", "runtime": "mil-executor"},
            "device": {"model": "m", "os": "o", "thermal_state_before": "nominal", "thermal_state_after": "fair",
                       "low_power_mode": False},
            "load_ms": {"cold": 1.0, "warm": 0.5}, "first_predict_ms": 2.0, "latencies_ms": [1.0, 1.1],
            "memory": {"peak_phys_footprint_mb": 10.0, "baseline_phys_footprint_mb": 5.0, "min_available_mb": None,
                       "samples": [[0.0, 5.0], [1.0, 10.0]]},
            "outputs": {"y": "out_y.npy"}, "error": None}


def write(job_dir: Path, doc: object, npy: bool = True) -> None:
    (job_dir / "result.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    if npy:
        np.save(job_dir / "out_y.npy", np.arange(4, dtype=np.float32))


def test_a_good_result_and_its_outputs(tmp_path):
    write(tmp_path, good_result())
    result = read_result(tmp_path, job_id="run/0001")
    assert result.status == "ok" and result.latencies_ms == [1.0, 1.1]
    assert load_outputs(tmp_path, result)["y"].tolist() == [0, 1, 2, 3]


def mutate(**changes):
    doc = good_result()
    for path, value in changes.items():
        node = doc
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return doc


@pytest.mark.parametrize("doc, key, words", [
    ("{not json", "", "not valid JSON"),
    (json.dumps([1, 2]), "(top level)", "is not of type 'object'"),
    (mutate(status="fine"), "status", "is not one of"),
    (mutate(latencies_ms=[-1.0]), "latencies_ms.0", "less than the minimum"),
    (mutate(job_id="run/9999"), "job_id", "expected 'run/0001'"),
    (mutate(outputs={"y": "../../etc/passwd.npy"}), "outputs.y", "does not match"),
    (mutate(outputs={"y": "/abs.npy"}), "outputs.y", "does not match"),
    (mutate(outputs={"y": "missing.npy"}), "outputs.y", "is missing"),
    (mutate(memory__extra=1), "memory", "Additional properties are not allowed"),
])
def test_malformed_results_are_contract_errors(tmp_path, doc, key, words):
    write(tmp_path, doc)
    with pytest.raises(ContractError) as info:
        read_result(tmp_path, job_id="run/0001")
    assert any(p.key == key and words in p.message for p in info.value.problems), info.value.problems
    assert info.value.exit_code == 2


def test_huge_result_is_refused_before_parsing(tmp_path):
    write(tmp_path, good_result())
    with open(tmp_path / "result.json", "a") as f:
        f.write(" " * 2048)
    with pytest.raises(ContractError, match="more than the 1024 allowed"):
        read_result(tmp_path, job_id="run/0001", max_bytes=1024)


def test_symlinked_output_escaping_the_folder_is_refused(tmp_path):
    secret = tmp_path / "secret.npy"
    np.save(secret, np.zeros(2))
    job = tmp_path / "job"
    job.mkdir()
    write(job, good_result(), npy=False)
    os.symlink(secret, job / "out_y.npy")
    with pytest.raises(ContractError, match="outside the job folder"):
        read_result(job, job_id="run/0001")


def test_no_result_file(tmp_path):
    with pytest.raises(ContractError, match=r"no result\.json"):
        read_result(tmp_path, job_id="x")


def test_jobs_round_trip_and_refuse_paths_that_leave_the_root(tmp_path):
    job = Job("run/0001", "models/abc.mlpackage", "cpu_and_ne", (InputSpec("x", (2, 3), "float16", 7),))
    loaded = load_job(job.write(tmp_path))
    assert loaded == job
    for bad in ("../x.mlpackage", "/etc/x", "a/./b"):
        with pytest.raises(ContractError):
            Job.from_json({**job.to_json(), "model": bad})


def test_seeded_inputs_follow_the_published_splitmix64_vector():
    for seed, values in GOLDEN.items():
        assert [int(v) for v in splitmix64(seed, len(values))] == values
    ids = make_input((1, 77), "int32", 3, high=1000)
    assert ids.dtype == np.int32 and ids.min() >= 0 and ids.max() < 1000
    x = make_input((4, 1000), "float32", 1)
    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1.0) < 0.05
    assert np.array_equal(x, make_input((4, 1000), "float32", 1))
    assert not np.array_equal(x, make_input((4, 1000), "float32", 2))
