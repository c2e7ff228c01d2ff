"""A small release spec over the session's tiny-sd artifacts, analysed once per module, for end-to-end runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.fixtures.build import TINY_SPEC_PATH

RUN_SPEC = {
    "name": "tiny-run",
    "variants": {"precision": ["fp16"], "weights": ["none", "palette6"], "attention": ["split_einsum_v2"],
                 "compute_units": ["all"]},
    "devices": ["host"],
    # One launch per job keeps these end-to-end runs short; tests/runner/test_launches.py covers several.
    "measure": {"warmup": 1, "iterations": 5, "launches": 1, "timeout_s": 120, "sample_interval_ms": 10,
                "retries": 1},
    "gates": {"min_psnr_db": 30, "memory_headroom": 0.15, "max_cv": 0.5},
}

TINY_PHONE = """
id: tiny-phone
name: Tiny test phone (a limit no model here fits)
family: iphone
product_types: ["iPhone99,9"]
chip: A14 Bionic
ram_gb: 1
memory: {app_limit_mb: 30, source: "test profile", basis: jetsam-policy}
os: {name: iOS, max: 18}
sources: [tests/runner/conftest.py]
"""


@pytest.fixture(scope="module")
def run_env(tmp_path_factory, tiny_store, tiny_artifacts):
    """(spec path, artifacts folder, profiles folder): a copy of the session store, plus a test profile."""
    root = tmp_path_factory.mktemp("run-env")
    artifacts = root / "artifacts"
    shutil.copytree(tiny_store.root, artifacts)
    base = yaml.safe_load(TINY_SPEC_PATH.read_text())
    spec = root / "tiny-run.yaml"
    spec.write_text(yaml.safe_dump({**base, **RUN_SPEC}))
    profiles = root / "profiles" / "iphone"
    profiles.mkdir(parents=True)
    (profiles / "tiny-phone.yaml").write_text(TINY_PHONE)
    return spec, artifacts, profiles.parent


@pytest.fixture
def run_settings(run_env, monkeypatch, tmp_path) -> tuple[Path, Path]:
    """Point the CLI at the module's artifact copy and a fresh results DB; returns (spec, profiles folder)."""
    spec, artifacts, profiles = run_env
    monkeypatch.setenv("MLFARM_ARTIFACTS", str(artifacts))
    monkeypatch.chdir(tmp_path)
    return spec, profiles
