"""Fixtures for report tests: a RunWriter on the test's own results DB (the one the CLI sees) and the catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.config import builtin_profiles_dir
from orchestrator.profiles import Catalog, host_profile, load_catalog
from tests.report.runs import RunWriter


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog([builtin_profiles_dir()]).with_profile(host_profile(), origin="this machine")


@pytest.fixture
def writer(isolated_env: Path) -> Iterator[RunWriter]:
    w = RunWriter(isolated_env / "results.db")  # MLFARM_DB points here, so `mlfarm report` reads these runs
    yield w
    w.close()
