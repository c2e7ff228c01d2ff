"""Specs and profiles that used to pass `check` and fail later (issue 13), files that are not regular, names
that are not UTF-8, merge keys: each is exit 2 with file, key and fix, or accepted as YAML says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.spec import load_spec
from tests.profiles.test_bad_profiles import with_
from tests.profiles.test_bad_profiles import write as write_profile
from tests.spec.test_spec import TINY, modified, write_spec

MLFARM = Path(sys.executable).with_name("mlfarm")


@pytest.mark.parametrize("data, key, words", [
    (modified("measure.seed", 4294967296), "measure.seed", "<= 4294967295"),
    (modified("model.components.unet.inputs.sample.shape", [2, 4, 2000000]),
     "model.components.unet.inputs.sample.shape[2]", "<= 1048576"),
    (modified("baseline", "window:0"), "baseline", "does not match"),
    (modified("gates.latency_budget_ms.unte", {"*": 100}), "gates.latency_budget_ms.unte", "does not have"),
    (modified("gates.latency_budget_ms.unet", {"iphnoe": 100}), "gates.latency_budget_ms.unet.iphnoe",
     "unknown device family"),
    (modified("gates.min_psnr_db", float("inf")), "gates.min_psnr_db", "got inf"),
    (modified("gates.max_cv", float("nan")), "gates.max_cv", "got nan"),
    (modified("gates.latency_budget_ms.unet", {"*": float("inf")}), "gates.latency_budget_ms.unet.*", "got inf"),
])
def test_values_the_job_schema_or_gates_cannot_take_are_refused_with_a_fix(tmp_path, mlfarm, data, key, words):
    result = mlfarm("spec", "check", write_spec(tmp_path, data), "--json")
    assert result.exit_code == 2, result.out
    problems = result.json()["error"]["problems"]
    assert any(p["key"] == key and words in p["message"] for p in problems), problems
    assert all(p["fix"] for p in problems), problems


def test_yaml_merge_keys_are_supported_and_explicit_keys_override(tmp_path):
    data = {k: v for k, v in TINY.items() if k != "measure"}
    text = yaml.safe_dump(data) + "measure:\n  <<: {warmup: 3, iterations: 7}\n  iterations: 9\n"
    spec = load_spec(write_spec(tmp_path, text), run_checks=False)
    assert spec.measure.warmup == 3 and spec.measure.iterations == 9


def test_a_duplicate_key_beside_a_merge_is_still_refused(tmp_path, mlfarm):
    path = write_spec(tmp_path, yaml.safe_dump(TINY) + "measure:\n  <<: {warmup: 3}\n  warmup: 1\n  warmup: 2\n")
    result = mlfarm("spec", "check", path, "--json")
    assert result.exit_code == 2 and "duplicate key" in result.out


def test_a_fifo_spec_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)  # nobody writes: reading it would block forever
    result = subprocess.run([str(MLFARM), "spec", "check", str(fifo)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "regular file" in result.stderr + result.stdout
    assert "fix:" in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_dev_zero_is_refused_not_read(mlfarm):
    result = mlfarm("spec", "check", "/dev/zero", "--json")
    assert result.exit_code == 2 and "regular file" in result.out


def test_a_non_utf8_file_name_is_printed_safely_with_exit_2(tmp_path):
    folder = os.fsencode(tmp_path)
    name = folder + b"/sp\xe9c.yaml"
    with open(name, "wb") as f:
        f.write(b"name: [unclosed\n")
    result = subprocess.run([os.fsencode(MLFARM), b"spec", b"check", name], capture_output=True, timeout=120)
    err = (result.stdout + result.stderr).decode("utf-8")
    assert result.returncode == 2 and "sp\\xe9c.yaml" in err and "Traceback" not in err


@pytest.mark.parametrize("data, key, words", [
    (with_(product_types=[]), "product_types", "at least 1"),
    (with_(ram_gb=[]), "ram_gb", "at least 1"),
    (with_(memory={"app_limit_mb": 2048, "app_limit_increased_mb": 1024, "source": "x", "basis": "jetsam-observed"}),
     "memory.app_limit_increased_mb", "below app_limit_mb"),
])
def test_profiles_that_break_the_planner_later_are_refused(tmp_path, mlfarm, data, key, words):
    write_profile(tmp_path, data)
    result = mlfarm("profiles", "check", tmp_path, "--json")
    assert result.exit_code == 2, result.out
    problems = result.json()["error"]["problems"]
    assert any(p["key"] == key and words in p["message"] for p in problems), problems
    assert all(p["fix"] for p in problems) and "min() arg" not in result.out
