"""The runner's policies with a real SQLite store: retries, jetsam as a result, one commit per job.

Transport faults cannot happen on the host backend, so a small in-process device double stands in here;
the virtual-device tests exercise the same paths over the real wire protocols.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from orchestrator.devices.base import DeviceInfo, Health, MemoryFigures, RunOutcome
from orchestrator.errors import InstallError, TransportError
from orchestrator.harness.contract import HarnessResult, InputSpec, Job
from orchestrator.profiles import host_profile
from orchestrator.results import Event, NewJob, ResultsStore
from orchestrator.runner.engine import Runner, WorkItem


def result_doc(job_id: str, latencies: list[float]) -> dict:
    return {"schema_version": 1, "job_id": job_id, "status": "ok",
            "harness": {"name": "double", "version": "0", "runtime": "mil-executor"},
            "device": {"model": "m", "os": "o", "thermal_state_before": "nominal", "thermal_state_after": "nominal",
                       "low_power_mode": False},
            "load_ms": {"cold": 10.0, "warm": 5.0}, "first_predict_ms": 3.0, "latencies_ms": latencies,
            "memory": {"peak_phys_footprint_mb": 100.0, "baseline_phys_footprint_mb": 50.0, "min_available_mb": None,
                       "samples": []}, "outputs": {"y": "out_y.npy"}, "error": None}


class ScriptedDevice:
    """Plays back a script of outcomes/exceptions, one per run() call."""

    def __init__(self, key: str, script: list[object]) -> None:
        self.info = DeviceInfo(key=key, backend="host", profile=host_profile(), name=key, os_version="test")
        self.script = list(script)
        self.runs: list[str] = []
        self.pushed: list[str] = []
        self.prepared = self.cleaned = False

    async def prepare(self) -> None:
        self.prepared = True

    async def health(self) -> Health:
        return Health(ok=True)

    async def push(self, artifact: Path, sha256: str) -> str:
        self.pushed.append(sha256)
        return f"models/{sha256}.mlpackage"

    async def run(self, job: Job, *, model_ref: str) -> RunOutcome:
        self.runs.append(job.job_id)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        assert isinstance(step, RunOutcome)
        return step

    async def cleanup(self) -> None:
        self.cleaned = True


def ok(job_id: str, value: float = 1.0) -> RunOutcome:
    return RunOutcome("ok", result=HarnessResult(job_id, "ok", result_doc(job_id, [1.0, 2.0, 3.0])),
                      outputs={"y": np.full(4, value, dtype=np.float32)},
                      memory=MemoryFigures(peak_mb=80.0, raw_peak_mb=130.0, baseline_mb=50.0, limit_mb=2048.0))


def jetsam() -> RunOutcome:
    return RunOutcome("jetsam", memory=MemoryFigures(2100.0, 2500.0, 400.0, 2048.0),
                      events=[Event("jetsam", "killed", {"reason": "per-process-limit", "emulated": True})],
                      error="killed")


def setup(tmp_path: Path, keys: list[str], per_device: int):
    store = ResultsStore(tmp_path / "r.db")
    run = store.create_run(spec_name="s", spec_digest="d")
    new = [NewJob(k, "unet", f"v{i}", "all") for k in keys for i in range(per_device)]
    ids = store.add_jobs(run, new)
    items = [WorkItem(jid, nj.device_key, "unet", nj.variant, tmp_path, "sha", Job(jid, "x", "all",
                      (InputSpec("x", (1,)),)), 90.0, 2048.0) for jid, nj in zip(ids, new, strict=True)]
    return store, run, items


def test_transport_faults_are_retried_with_backoff_then_succeed(tmp_path):
    store, run, items = setup(tmp_path, ["d"], 1)
    faults = [TransportError("usb reset", udid="u1"), TransportError("again")]
    device = ScriptedDevice("d", [*faults, ok(items[0].store_id)])
    sleeps: list[float] = []

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    runner = Runner(store, run, references=lambda c: {"y": np.ones(4, np.float32)}, retries=2, backoff_s=0.5,
                    sleep=fake_sleep)
    summary = asyncio.run(runner.run({"d": device}, items))
    assert summary.statuses == {items[0].store_id: "ok"}
    assert sleeps == [0.5, 1.0]
    job = store.get_job(items[0].store_id)
    assert job.status == "ok" and job.attempts == 1
    assert [e.kind for e in store.events(run)] == ["transport-retry", "transport-retry"]
    metrics = {m.metric for m in store.measurements(job.id)}
    assert {"latency_ms", "peak_footprint_mb", "predicted_peak_mb", "psnr_db", "load_cold_ms"} <= metrics
    assert [m.value for m in store.measurements(job.id) if m.metric == "psnr_db"] == [200.0]
    assert device.prepared and device.cleaned


def test_retries_are_bounded(tmp_path):
    store, run, items = setup(tmp_path, ["d"], 2)
    device = ScriptedDevice("d", [TransportError("x")] * 3 + [ok(items[1].store_id)])
    runner = Runner(store, run, references=lambda c: None, retries=2, backoff_s=0, sleep=lambda s: asyncio.sleep(0))
    summary = asyncio.run(runner.run({"d": device}, items))
    assert summary.statuses[items[0].store_id] == "error"
    assert "transport failed 3 times" in store.get_job(items[0].store_id).error
    assert summary.statuses[items[1].store_id] == "ok"  # the run goes on


def test_jetsam_is_a_result_not_retried_and_the_run_continues(tmp_path):
    store, run, items = setup(tmp_path, ["d"], 3)
    device = ScriptedDevice("d", [ok(items[0].store_id), jetsam(), ok(items[2].store_id)])
    runner = Runner(store, run, references=lambda c: None, retries=2)
    summary = asyncio.run(runner.run({"d": device}, items))
    assert [summary.statuses[i.store_id] for i in items] == ["ok", "jetsam", "ok"]
    assert len(device.runs) == 3
    jet = store.get_job(items[1].store_id)
    peaks = [m.value for m in store.measurements(jet.id) if m.metric == "peak_footprint_mb"]
    assert peaks == [2100.0]
    assert store.events(run, kind="jetsam")[0].data["emulated"] is True


def test_devices_run_in_parallel(tmp_path):
    """Jobs on two devices overlap in time (checked by counting jobs in flight, not by a wall-clock budget)."""
    store, run, items = setup(tmp_path, ["a", "b"], 2)
    in_flight: list[str] = []
    most: dict[str, int] = {"jobs": 0}

    class Slow(ScriptedDevice):
        async def run(self, job: Job, *, model_ref: str) -> RunOutcome:
            in_flight.append(self.info.key)
            most["jobs"] = max(most["jobs"], len(in_flight))
            assert in_flight.count(self.info.key) == 1  # one job at a time per device
            await asyncio.sleep(0.05)
            in_flight.remove(self.info.key)
            return await super().run(job, model_ref=model_ref)

    a = Slow("a", [ok(i.store_id) for i in items if i.device_key == "a"])
    b = Slow("b", [ok(i.store_id) for i in items if i.device_key == "b"])
    summary = asyncio.run(Runner(store, run, references=lambda c: None).run({"a": a, "b": b}, items))
    assert summary.count("ok") == 4
    assert most["jobs"] == 2  # both devices were busy at once


def test_backend_errors_become_error_outcomes(tmp_path):
    store, run, items = setup(tmp_path, ["d"], 1)
    device = ScriptedDevice("d", [InstallError("install refused", udid="u", fix="check signing")])
    summary = asyncio.run(Runner(store, run, references=lambda c: None).run({"d": device}, items))
    assert summary.statuses[items[0].store_id] == "error"
    assert store.events(run, kind="error")[0].data == {"fix": "check signing"}
