"""Shared fixtures. Every test gets its own results DB and artifact store under tmp_path (never the repo's)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does: no spinning OpenMP threads between processes

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.cli import main

pytest_plugins = ["tests.fixtures.build"]

REPO = Path(__file__).resolve().parents[1]
FACTS_DIR = REPO / "tests" / "data"  # apple-devices.yaml: a copy of the shared device facts


@dataclass
class CliResult:
    exit_code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MLFARM_DB", str(tmp_path / "results.db"))
    monkeypatch.setenv("MLFARM_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.delenv("MLFARM_PROFILE_PATH", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    yield tmp_path


@pytest.fixture
def mlfarm(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run the CLI in-process: ``mlfarm("profiles", "--json")`` -> CliResult."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def repo() -> Path:
    return REPO


def pytest_report_header() -> list[str]:
    return [f"mlfarm repo: {REPO}", f"cpus: {os.cpu_count()}"]
