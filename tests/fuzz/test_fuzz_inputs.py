"""Hypothesis over specs, profiles, CLI arguments and result folders (tests/fuzz/cases.py): never a traceback,
and every rejection names its file and carries a fix. Bounded: 60 examples per kind, no deadline per example
(the first spec case imports torch)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.cases import KINDS, run_case


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2**31))
def test_generated_inputs_never_crash_and_rejections_carry_file_and_fix(kind, seed):
    with tempfile.TemporaryDirectory() as folder:
        verdict = run_case(kind, seed, Path(folder) / "case")
    assert verdict.kind != "traceback", verdict.detail
    if verdict.kind == "rejected":
        assert verdict.with_file == verdict.problems and verdict.with_fix == verdict.problems, verdict.detail
