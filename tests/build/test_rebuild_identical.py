"""Rebuilding from the same inputs gives the same blob: two `mlfarm build` processes into two empty stores
store byte-identical packages (coremltools' random Manifest.json UUIDs and its unordered protobuf map
serialization are both normalized, orchestrator/build/package.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.fixtures.build import TINY_SPEC_PATH

pytestmark = pytest.mark.slow


def build(store, env_seed: str) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "--artifacts", str(store), "build", str(TINY_SPEC_PATH),
         "--components", "text_encoder", "--variants", "fp16-none-original,fp16-palette4-original", "--json"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONHASHSEED": env_seed})
    assert result.returncode == 0, result.stderr[-2000:]
    return {a["variant"]: a["sha256"] for a in json.loads(result.stdout)["artifacts"]}


def test_two_builds_in_two_processes_store_the_same_blobs(tmp_path):
    first = build(tmp_path / "a", "1")
    second = build(tmp_path / "b", "2")
    assert first == second and len(first) == 2
