"""Launches are the unit: a job is measured in fresh launches, interleaved across a device's jobs, each sample
stored with its launch; a failed launch ends its job; an interrupted job is measured again, whole."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from orchestrator.devices.base import MemoryFigures, RunOutcome
from orchestrator.harness.contract import HarnessResult, Job
from orchestrator.runner.engine import Runner
from tests.runner.test_engine import ScriptedDevice, jetsam, result_doc, setup


def launch_ok(job_id: str, launch: int, peak: float = 80.0) -> RunOutcome:
    """A launch whose latencies say which launch it was (10, 11, 12 for launch 1; 20, 21, 22 for launch 2...)."""
    base = 10.0 * (launch + 1)
    doc = result_doc(job_id, [base, base + 1, base + 2])
    doc["load_ms"] = {"cold": 100.0 + launch, "warm": 50.0 + launch}
    return RunOutcome("ok", result=HarnessResult(job_id, "ok", doc), outputs={"y": np.ones(4, np.float32)},
                      memory=MemoryFigures(peak_mb=peak, raw_peak_mb=peak + 50, baseline_mb=50.0, limit_mb=2048.0))


class Launches(ScriptedDevice):
    """Answers each run with the launch it is (counted per job), unless a script entry says otherwise."""

    def __init__(self, key: str, overrides: dict[tuple[str, int], RunOutcome | BaseException] | None = None) -> None:
        super().__init__(key, [])
        self.overrides = overrides or {}
        self.jobs: list[Job] = []

    async def run(self, job: Job, *, model_ref: str) -> RunOutcome:
        launch = sum(1 for j in self.jobs if j.job_id == job.job_id)
        self.jobs.append(job)
        self.runs.append(job.job_id)
        step = self.overrides.get((job.job_id, launch))
        if isinstance(step, BaseException):
            raise step
        return step if step is not None else launch_ok(job.job_id, launch, peak=80.0 + launch)


def test_each_job_is_measured_in_launches_interleaved_across_jobs(tmp_path):
    store, run, items = setup(tmp_path, ["d"], 2)
    device = Launches("d")
    ref = {"y": np.ones(4, np.float32)}
    summary = asyncio.run(Runner(store, run, references=lambda c: ref, launches=3).run({"d": device}, items))
    a, b = (i.store_id for i in items)
    assert device.runs == [a, b, a, b, a, b]  # launch 1 of every job, then launch 2, ...
    assert summary.statuses == {a: "ok", b: "ok"}
    # outputs (for PSNR) are asked for once per job, in its first launch
    assert [j.return_outputs for j in device.jobs] == [True, True, False, False, False, False]
    for job_id in (a, b):
        assert store.launch_samples(job_id, "latency_ms") == [[10, 11, 12], [20, 21, 22], [30, 31, 32]]
        rows = store.measurements(job_id)
        assert sorted(m.idx for m in rows if m.metric == "latency_ms") == list(range(9))  # unique per job
        cold = sorted((m.launch, m.value) for m in rows if m.metric == "load_cold_ms")
        assert cold == [(0, 100.0), (1, 101.0), (2, 102.0)]
        assert [m.value for m in rows if m.metric == "peak_footprint_mb"] == [82.0]  # the highest launch
        assert [m.value for m in rows if m.metric == "psnr_db"] == [200.0]
        job = store.get_job(job_id)
        assert job.attempts == 1 and len(job.result["latencies_ms"]) == 9
        assert [e["status"] for e in job.result["launches"]] == ["ok", "ok", "ok"]


def test_a_jetsam_in_a_launch_ends_that_job_and_keeps_the_others(tmp_path):
    store, run, items = setup(tmp_path, ["d"], 2)
    a, b = (i.store_id for i in items)
    device = Launches("d", {(a, 1): jetsam()})
    summary = asyncio.run(Runner(store, run, references=lambda c: None, launches=3).run({"d": device}, items))
    assert summary.statuses == {a: "jetsam", b: "ok"}
    assert device.runs == [a, b, a, b, b]  # no launch of a after its jetsam
    assert [m.value for m in store.measurements(a) if m.metric == "peak_footprint_mb"] == [2100.0]  # at the kill
    assert store.launch_samples(a, "latency_ms") == [[10, 11, 12]]  # what launch 1 measured is kept
    assert [e["status"] for e in store.get_job(a).result["launches"]] == ["ok", "jetsam"]
    assert len(store.launch_samples(b, "latency_ms")) == 3


def test_a_timeout_in_a_launch_ends_that_job(tmp_path):
    store, run, items = setup(tmp_path, ["d"], 1)
    job_id = items[0].store_id
    timeout = RunOutcome("timeout", error="no result after 600 s: harness killed")
    device = Launches("d", {(job_id, 0): timeout})
    summary = asyncio.run(Runner(store, run, references=lambda c: None, launches=3).run({"d": device}, items))
    assert summary.statuses == {job_id: "timeout"} and device.runs == [job_id]
    assert store.launch_samples(job_id, "latency_ms") == []


class Killed(BaseException):
    """The orchestrator dying mid-launch (a BaseException, as a SIGKILL-ed process never gets to handle it)."""


def test_an_interrupted_job_is_measured_again_whole_on_resume(tmp_path):
    store, run, items = setup(tmp_path, ["d"], 2)
    a, b = (i.store_id for i in items)
    crash = Launches("d", {(b, 1): Killed()})  # the orchestrator dies in b's second launch
    with pytest.raises(Killed):
        asyncio.run(Runner(store, run, references=lambda c: None, launches=2).run({"d": crash}, items))
    assert store.get_job(a).status == "ok"  # a's last launch finished before the crash: stored whole
    assert store.get_job(b).status == "running" and store.measurements(b) == []  # nothing half-stored
    assert store.requeue_interrupted(run) == 1
    pending = [i for i in items if store.get_job(i.store_id).status == "pending"]
    again = Launches("d")
    summary = asyncio.run(Runner(store, run, references=lambda c: None, launches=2).run({"d": again}, pending))
    assert summary.statuses == {b: "ok"} and again.runs == [b, b]
    assert store.launch_samples(b, "latency_ms") == [[10, 11, 12], [20, 21, 22]]
    assert store.get_job(b).attempts == 2


def test_cooldown_is_slept_between_launches_not_before_the_first(tmp_path):
    store, run, items = setup(tmp_path, ["d"], 2)
    sleeps: list[float] = []

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    runner = Runner(store, run, references=lambda c: None, launches=2, cooldown_s=3.0, sleep=fake_sleep)
    asyncio.run(runner.run({"d": Launches("d")}, items))
    assert sleeps == [3.0, 3.0, 3.0]  # 4 launches, 3 gaps
