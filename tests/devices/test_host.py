"""The host backend turns what the watchdog saw and what the harness wrote into outcomes; bad results are
recorded as invalid-result errors, never crashes (the runner then goes on with the next job)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from orchestrator.devices.host import outcome_from_report
from orchestrator.devices.watchdog import WatchdogReport
from tests.harness.test_contract import good_result


def report(**changes) -> WatchdogReport:
    base = dict(pid=42, exit_code=0, killed=False, timed_out=False, baseline_mb=300.0, raw_peak_mb=420.0,
                raw_at_kill_mb=None, adjusted_at_kill_mb=None, wall_s=1.0, stderr_tail="")
    return WatchdogReport(**{**base, **changes})


def job_dir(tmp_path: Path, doc: object) -> Path:
    (tmp_path / "result.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    np.save(tmp_path / "out_y.npy", np.arange(3, dtype=np.float32))
    return tmp_path


def test_ok_result_gives_figures_above_the_baseline(tmp_path):
    doc = good_result()
    doc["memory"].update(peak_phys_footprint_mb=450.0, baseline_phys_footprint_mb=300.0)
    out = outcome_from_report(report(), job_dir(tmp_path, doc), "run/0001", 2048.0, 25.0)
    assert out.status == "ok" and out.outputs["y"].tolist() == [0, 1, 2]
    assert out.memory.peak_mb == 175.0 and out.memory.raw_peak_mb == 450.0 and out.memory.baseline_mb == 300.0


def test_watchdog_kill_is_an_emulated_jetsam(tmp_path):
    out = outcome_from_report(report(killed=True, exit_code=-9, raw_at_kill_mb=2400.0, adjusted_at_kill_mb=2125.0),
                              tmp_path, "run/0001", 2048.0, 25.0)
    assert out.status == "jetsam" and out.result is None
    (event,) = out.events
    assert event.kind == "jetsam" and event.data["reason"] == "per-process-limit"
    assert event.data["emulated"] is True and event.data["footprint_mb"] == 2125.0 > event.data["limit_mb"]


def test_a_kill_just_above_the_limit_is_never_stored_at_the_limit(tmp_path):
    """The watchdog kills at footprint > limit; rounding the figure for storage must not make it read == limit
    (a CI run saw 30.0002 MB stored as 30.0 against a 30 MB limit)."""
    out = outcome_from_report(report(killed=True, exit_code=-9, raw_at_kill_mb=330.00004, adjusted_at_kill_mb=30.00004),
                              tmp_path, "run/0001", 30.0, 25.0)
    (event,) = out.events
    assert event.data["footprint_mb"] > event.data["limit_mb"] == 30.0
    assert out.memory.peak_mb > 30.0 and out.memory.raw_peak_mb > 330.0
    assert "killed at 30.0 MB > 30 MB limit" in out.error


@pytest.mark.parametrize("doc", [
    "{broken",
    {**good_result(), "job_id": "someone-else"},
    {**good_result(), "outputs": {"y": "../../../etc/shadow.npy"}},
    {**good_result(), "latencies_ms": "fast"},
])
def test_bad_results_are_invalid_result_errors(tmp_path, doc):
    out = outcome_from_report(report(), job_dir(tmp_path, doc), "run/0001", 2048.0, 25.0)
    assert out.status == "error" and out.result is None
    (event,) = out.events
    assert event.kind == "invalid-result" and event.data["problems"]


def test_huge_result_is_refused(tmp_path):
    doc = good_result()
    doc["error"] = None
    doc["memory"]["samples"] = [[float(i), 1.0] for i in range(200_000)]
    big = json.dumps(doc) + " " * (33 << 20)
    out = outcome_from_report(report(), job_dir(tmp_path, big), "run/0001", 2048.0, 25.0)
    assert out.status == "error" and "bytes, more than" in out.error
