"""One hostile outcome or backend bug ends one job, never the run: the engine turns any exception in a job into
that job's error event (traceback in the event data, nothing on the console) and goes on."""

from __future__ import annotations

import asyncio

import numpy as np

from orchestrator.devices.base import MemoryFigures, RunOutcome
from orchestrator.harness.contract import HarnessResult
from orchestrator.runner.engine import Runner
from tests.runner.test_engine import ScriptedDevice, ok, result_doc, setup


def nan_outcome(job_id: str) -> RunOutcome:
    """A result whose figures are NaN (as a harness that skipped validation would hand over)."""
    doc = result_doc(job_id, [float("nan"), 1.0])
    doc["first_predict_ms"] = float("inf")
    return RunOutcome("ok", result=HarnessResult(job_id, "ok", doc),
                      memory=MemoryFigures(peak_mb=float("nan"), raw_peak_mb=1.0, baseline_mb=1.0, limit_mb=2048.0))


def test_a_nan_result_and_a_backend_bug_are_two_job_errors_and_the_run_finishes(tmp_path, capsys):
    store, run, items = setup(tmp_path, ["d"], 4)
    ids = [i.store_id for i in items]
    device = ScriptedDevice("d", [ok(ids[0]), nan_outcome(ids[1]), KeyError("backend bug"), ok(ids[3])])
    runner = Runner(store, run, references=lambda c: {"y": np.ones(4, np.float32)}, retries=0)
    summary = asyncio.run(runner.run({"d": device}, items))
    assert [summary.statuses[i] for i in ids] == ["ok", "error", "error", "ok"]
    assert [store.get_job(i).status for i in ids] == ["ok", "error", "error", "ok"]
    assert device.runs == ids and device.cleaned
    bug = store.events(run, job_id=ids[2])
    assert [e.kind for e in bug] == ["error"] and "KeyError: 'backend bug'" in bug[0].data["traceback"]
    assert "KeyError" in store.get_job(ids[2]).error
    nan = store.events(run, job_id=ids[1])
    assert [e.kind for e in nan] == ["error"] and "Traceback" in nan[0].data["traceback"]
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
