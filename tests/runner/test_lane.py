"""The host-CPU lane: devices that share this machine's CPU never measure at the same time; real devices do.

Stand-in devices record the interval of every launch on an injected counter clock (no wall-clock timing) and
hand control back to the event loop in the middle of each launch, so two launches that were allowed to overlap
would interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

from orchestrator.devices.base import DeviceInfo, RunOutcome
from orchestrator.devices.host import host_device_info
from orchestrator.harness.contract import Job
from orchestrator.profiles import host_profile
from orchestrator.runner.engine import Runner
from orchestrator.runner.lane import HostCpuLane
from tests.runner.test_engine import ScriptedDevice, ok, setup


class Ticks:
    """A clock that advances one tick per reading: intervals are ordered events, not durations."""

    def __init__(self) -> None:
        self._n = itertools.count()

    def __call__(self) -> float:
        return float(next(self._n))


class Recording(ScriptedDevice):
    """Plays ``ok`` for every launch; records (start, end) on the shared clock and who else was in flight."""

    def __init__(self, key: str, launches: int, *, shares_host_cpu: bool, clock: Ticks,
                 in_flight: list[str], log: list[tuple[str, float, float]]) -> None:
        super().__init__(key, [])
        self.info = DeviceInfo(key=key, backend="host", profile=host_profile(), name=key, os_version="test",
                               shares_host_cpu=shares_host_cpu)
        self.clock, self.in_flight, self.log = clock, in_flight, log
        self.launches = launches
        self.most = 0

    async def run(self, job: Job, *, model_ref: str) -> RunOutcome:
        start = self.clock()
        self.in_flight.append(job.job_id)
        self.most = max(self.most, len(self.in_flight))
        for _ in range(5):  # let every other worker run: an overlap allowed by the runner would happen here
            await asyncio.sleep(0)
        self.in_flight.remove(job.job_id)
        self.log.append((job.job_id, start, self.clock()))
        self.runs.append(job.job_id)
        return ok(job.job_id)


def _run(tmp_path: Path, shares: dict[str, bool], *, per_device: int = 2, launches: int = 2,
         lane: HostCpuLane | None = None):
    store, run, items = setup(tmp_path, list(shares), per_device)
    clock, in_flight, log = Ticks(), [], []
    devices = {k: Recording(k, launches, shares_host_cpu=s, clock=clock, in_flight=in_flight, log=log)
               for k, s in shares.items()}
    runner = Runner(store, run, references=lambda c: None, launches=launches,
                    lane=lane or HostCpuLane(clock=clock, loadavg=lambda: (0.5, 0.4, 0.3)))
    summary = asyncio.run(runner.run(devices, items))
    return store, items, devices, log, summary


def _overlaps(log: list[tuple[str, float, float]]) -> list[tuple[str, str]]:
    spans = sorted(log, key=lambda x: x[1])
    return [(a[0], b[0]) for a, b in itertools.pairwise(spans) if b[1] < a[2]]


def test_devices_sharing_the_host_cpu_never_measure_at_the_same_time(tmp_path):
    store, items, devices, log, summary = _run(tmp_path, {"host": True, "virtual:iphone-12": True})
    assert summary.count("ok") == 4
    assert len(log) == 8  # 2 devices x 2 jobs x 2 launches
    assert _overlaps(log) == []
    assert max(d.most for d in devices.values()) == 1
    for item in items:
        launches = store.get_job(item.store_id).result["launches"]
        assert [entry["lane"] for entry in launches] == ["host-cpu", "host-cpu"]
        assert all(entry["concurrent_jobs"] == [] and entry["shared"] is False for entry in launches)
        assert all(entry["loadavg_before"] == [0.5, 0.4, 0.3] for entry in launches)


def test_the_lane_interleaves_devices_launch_by_launch(tmp_path):
    """A FIFO lane: a device waiting for it is served before the device that just measured goes again."""
    _, items, _, log, _ = _run(tmp_path, {"a": True, "b": True}, per_device=1, launches=3)
    owners = [next(i.device_key for i in items if i.store_id == job) for job, _, _ in sorted(log, key=lambda x: x[1])]
    assert owners == ["a", "b", "a", "b", "a", "b"]


def test_real_devices_keep_measuring_in_parallel(tmp_path):
    store, items, devices, log, summary = _run(tmp_path, {"usb:1": False, "usb:2": False})
    assert summary.count("ok") == 4
    assert max(d.most for d in devices.values()) == 2  # both were measuring at once
    assert _overlaps(log) != []
    first = store.get_job(items[0].store_id).result["launches"][0]
    assert first["lane"] == "own" and first["concurrent_jobs"]  # it records who ran beside it
    assert first["shared"] is False  # running beside a real device is not sharing this CPU


def test_a_real_device_runs_beside_the_lane(tmp_path):
    _, items, devices, log, _ = _run(tmp_path, {"host": True, "usb:1": False})
    host_jobs = {i.store_id for i in items if i.device_key == "host"}
    assert _overlaps([x for x in log if x[0] in host_jobs]) == []
    assert max(d.most for d in devices.values()) == 2  # the usb device did not wait for the lane


def test_a_lane_shared_with_another_process_is_flagged(tmp_path):
    """``outer`` stands for the cross-process lock: yielding True says another process measured meanwhile."""

    @contextlib.asynccontextmanager
    async def busy_machine() -> AsyncIterator[bool]:
        yield True

    clock = Ticks()
    lane = HostCpuLane(clock=clock, loadavg=lambda: None, outer=busy_machine)
    store, items, _, _, _ = _run(tmp_path, {"host": True}, per_device=1, launches=1, lane=lane)
    entry = store.get_job(items[0].store_id).result["launches"][0]
    assert entry["shared"] is True and entry["loadavg_before"] is None


def test_backends_say_whether_they_share_the_host_cpu():
    profile = host_profile()
    assert host_device_info(profile, "host").shares_host_cpu
    assert DeviceInfo(key="usb:x", backend="usbmux", profile=profile, name="x", os_version="17").shares_host_cpu \
        is False


def test_store_has_lane_records_for_every_launch(tmp_path):
    store, items, _, _, _ = _run(tmp_path, {"host": True}, per_device=1, launches=3)
    job = store.get_job(items[0].store_id)
    assert [e["launch"] for e in job.result["launches"]] == [0, 1, 2]
    starts = [e["start_s"] for e in job.result["launches"]]
    assert starts == sorted(starts) and all(e["end_s"] > e["start_s"] for e in job.result["launches"])
