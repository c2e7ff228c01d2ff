"""The runner: one asyncio worker per device, each draining its own job queue; devices run in parallel.

A job is measured in ``launches`` fresh launches (a new harness process that loads the model again), and a
device's jobs are interleaved launch by launch: launch 1 of every job, then launch 2 of every job, ... so a
drift of the machine over the run (thermal, background load) spreads over every job instead of landing on one.
Devices whose harness runs on this machine's CPU (``DeviceInfo.shares_host_cpu``: host, host:ID, virtual:ID)
measure one launch at a time across the run (the host-CPU lane, ``runner/lane.py``); real devices do not wait.

Per launch: health check, cooldown (not before a device's first launch), push (cached by the device), run with
a timeout inside the lane, collect. Transport faults (``TransportError``) are retried with exponential
backoff, at most ``retries`` times; a jetsam, a timeout or an invalid result is an outcome that ends the job
(no further launch), stored as such and never retried. Any other exception in a job (a result the store
refuses, a backend bug) becomes that job's error event with the traceback in its data, and the device goes on
with its next job. A job's outcome, figures (every launch's, each sample tagged with its launch) and events
are committed in one transaction after its last launch, so a killed orchestrator leaves a partly measured job
``running``, and ``--resume`` measures it again, whole.

The runner owns nothing but its loop: the store, the devices, the clock and the progress sink are passed in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from orchestrator.devices.base import Device, RunOutcome
from orchestrator.errors import MlfarmError, TransportError
from orchestrator.harness.contract import Job
from orchestrator.plan.predictions import Predictions
from orchestrator.quantiles import percentile
from orchestrator.results.store import Event, ResultsStore
from orchestrator.runner.figures import job_measurements, job_memory
from orchestrator.runner.host_lock import machine_lane
from orchestrator.runner.lane import HostCpuLane, LaunchRecord

Sleep = Callable[[float], Awaitable[None]]
References = Callable[[str], Mapping[str, np.ndarray] | None]


@dataclass(frozen=True)
class WorkItem:
    """A stored job plus what it needs to run: the artifact and the harness job (model filled in at push)."""

    store_id: str
    device_key: str
    component: str
    variant: str
    artifact_path: Path
    artifact_sha256: str
    job: Job
    predicted_mb: float | None
    limit_mb: float
    predictions: Predictions | None = None  # both labelled predictions, for the job's line (plan/predictions.py)


class ProgressSink(Protocol):
    def device_started(self, device_key: str, total: int) -> None: ...

    def job_started(self, item: WorkItem) -> None: ...

    def job_finished(self, item: WorkItem, status: str, detail: str) -> None: ...


class NullProgress:
    def device_started(self, device_key: str, total: int) -> None:
        pass

    def job_started(self, item: WorkItem) -> None:
        pass

    def job_finished(self, item: WorkItem, status: str, detail: str) -> None:
        pass


@dataclass
class RunSummary:
    statuses: dict[str, str] = field(default_factory=dict)  # store job id -> final status
    wall_s: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for s in self.statuses.values() if s == status)


@dataclass
class Runner:
    store: ResultsStore
    run_id: str
    references: References
    retries: int = 2
    cooldown_s: float = 0.0
    backoff_s: float = 1.0
    progress: ProgressSink = field(default_factory=NullProgress)
    sleep: Sleep = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    launches: int = 1
    # Host-CPU launches take this process's lane, then the machine-wide lock (other mlfarm processes wait too).
    lane: HostCpuLane = field(default_factory=lambda: HostCpuLane(outer=machine_lane))
    # Per job still being measured: its finished launches (outcome, what the launch shared the machine with),
    # the runner's own events (transport retries) and the record of the launch in flight.
    _launched: dict[str, list[tuple[RunOutcome, dict[str, Any]]]] = field(default_factory=dict, init=False)
    _events: dict[str, list[Event]] = field(default_factory=dict, init=False)
    _records: dict[str, LaunchRecord] = field(default_factory=dict, init=False)

    async def run(self, devices: Mapping[str, Device], work: Sequence[WorkItem]) -> RunSummary:
        summary = RunSummary()
        start = self.clock()
        queues: dict[str, list[WorkItem]] = {key: [] for key in devices}
        for item in work:
            queues[item.device_key].append(item)
        await asyncio.gather(*(self._worker(devices[key], items, summary) for key, items in queues.items() if items))
        summary.wall_s = self.clock() - start
        return summary

    async def _worker(self, device: Device, items: list[WorkItem], summary: RunSummary) -> None:
        key = device.info.key
        self.progress.device_started(key, len(items))
        try:
            await device.prepare()
        except MlfarmError as exc:
            for item in items:
                self._fail(item, summary, "error", f"device {key} could not be prepared: {exc.message}",
                           [Event("error", exc.message, {"stage": "prepare", "fix": exc.fix})])
            return
        try:
            first = True
            for launch in range(self.launches):
                for item in items:
                    if item.store_id in summary.statuses:  # ended in an earlier launch (jetsam, timeout, error)
                        continue
                    if not first and self.cooldown_s > 0:
                        await self.sleep(self.cooldown_s)
                    first = False
                    try:
                        await self._one(device, item, summary, launch)
                    except Exception as exc:
                        self._crashed(item, summary, exc)
        finally:
            try:
                await device.cleanup()
            except MlfarmError as exc:
                self.store.add_event(self.run_id, Event("error", f"cleanup failed: {exc.message}"), device_key=key)

    def _fail(self, item: WorkItem, summary: RunSummary, status: str, message: str, events: list[Event]) -> None:
        self._launched.pop(item.store_id, None)
        self._events.pop(item.store_id, None)
        self._records.pop(item.store_id, None)
        self.store.finish_job(item.store_id, status, error=message, events=events)
        summary.statuses[item.store_id] = status
        self.progress.job_finished(item, status, message)

    def _crashed(self, item: WorkItem, summary: RunSummary, exc: Exception) -> None:
        """Any unexpected exception in one job becomes that job's error, traceback in the event (not on the
        console); the worker goes on with its next job."""
        trace = "".join(traceback.format_exception(exc))[-8000:]
        message = f"internal error in this job: {type(exc).__name__}: {str(exc)[:300]}"
        self._fail(item, summary, "error", message.encode("utf-8", "replace").decode("utf-8"),
                   [Event("error", "unexpected exception", {"stage": "job", "traceback": trace.encode(
                       "utf-8", "replace").decode("utf-8")})])

    async def _one(self, device: Device, item: WorkItem, summary: RunSummary, launch: int = 0) -> None:
        if launch == 0:
            self.store.start_job(item.store_id)
            self.progress.job_started(item)
        health = await device.health()
        if not health.ok:
            self._fail(item, summary, "error", f"device not healthy: {health.reason}",
                       [Event("health", health.reason, {"battery": health.battery_percent,
                                                        "thermal": health.thermal_state})])
            return
        events: list[Event] = []
        outcome: RunOutcome | None = None
        for attempt in range(self.retries + 1):
            try:
                ref = await device.push(item.artifact_path, item.artifact_sha256)
                outcome = await self._measure(device, item, ref, launch)
                break
            except TransportError as exc:
                events.append(Event("transport-retry", exc.message, {"attempt": attempt + 1, "udid": exc.udid}))
                if attempt < self.retries:
                    await self.sleep(self.backoff_s * 2**attempt)
            except TimeoutError:
                outcome = RunOutcome("timeout", events=[Event("timeout", "the device did not answer in time")],
                                     error="timed out waiting for the device")
                break
            except MlfarmError as exc:  # install failure, contract error raised by a backend, ...
                outcome = RunOutcome("error", events=[Event("error", exc.message, {"fix": exc.fix})],
                                     error=exc.message)
                break
        if outcome is None:
            self._fail(item, summary, "error", f"transport failed {self.retries + 1} times; giving up on this job",
                       events)
            return
        self._launch_done(item, launch, outcome, events, summary)

    async def _measure(self, device: Device, item: WorkItem, ref: str, launch: int) -> RunOutcome:
        """One launch, inside the host-CPU lane when the device shares this machine's CPU; the timeout counts
        from the launch, not from the wait for the lane."""
        job = item.job if launch == 0 else dataclasses.replace(item.job, return_outputs=False)  # PSNR: launch 0
        async with self.lane.measuring(item.store_id, shares_host_cpu=device.info.shares_host_cpu) as record:
            self._records[item.store_id] = record
            return await asyncio.wait_for(device.run(job, model_ref=ref), item.job.timeout_s + 120.0)

    def _launch_done(self, item: WorkItem, launch: int, outcome: RunOutcome, events: list[Event],
                     summary: RunSummary) -> None:
        """Keep a launch's outcome; store the job after its last launch, or after a launch that did not end ok."""
        record = self._records.pop(item.store_id, None)
        done = self._launched.setdefault(item.store_id, [])
        done.append((outcome, {"launch": launch, **(record.as_json(self.lane.t0) if record is not None else {})}))
        self._events.setdefault(item.store_id, []).extend(events)
        if outcome.status == "ok" and launch + 1 < self.launches:
            return
        self._store(item, self._launched.pop(item.store_id), self._events.pop(item.store_id, []), summary)

    def _store(self, item: WorkItem, launches: list[tuple[RunOutcome, dict[str, Any]]], events: list[Event],
               summary: RunSummary) -> None:
        outcomes = [o for o, _ in launches]
        last = outcomes[-1]
        reference = self.references(item.component) if any(o.outputs for o in outcomes) else None
        rows, psnr = job_measurements(outcomes, predicted_mb=item.predicted_mb, limit_mb=item.limit_mb,
                                      reference=reference)
        result = job_result(launches)
        self.store.finish_job(item.store_id, last.status, result=result, error=last.error,
                              measurements=rows, events=[*events, *(e for o in outcomes for e in o.events)])
        summary.statuses[item.store_id] = last.status
        detail = last.error or ""
        if last.status == "ok" and result is not None:
            lat = [r.value for r in rows if r.metric == "latency_ms"]
            mem = job_memory(outcomes)
            peak = mem.peak_mb if mem else float("nan")
            detail = (f"p50 {percentile(lat, 50):.2f} ms, p90 {percentile(lat, 90):.2f} ms over "
                      f"{len(outcomes)} launch(es), peak {peak:.0f} MB"
                      + (f", PSNR {psnr:.1f} dB" if psnr is not None else ""))
        if any(env.get("shared") for _, env in launches):
            detail += " (measured while the host CPU was shared)"
        self.progress.job_finished(item, last.status, detail)


def job_result(launches: list[tuple[RunOutcome, dict[str, Any]]]) -> dict[str, Any]:
    """The job's stored result: the last harness result (contract fields), every launch's latencies in order,
    and per launch what it saw (``launches``: status, load and first-predict times, load average, concurrency)."""
    raws = [o.result.raw for o, _ in launches if o.result is not None]
    summaries = []
    for outcome, env in launches:
        raw = outcome.result.raw if outcome.result is not None else None
        summaries.append({**env, "status": outcome.status, "wall_s": round(outcome.wall_s, 3),
                          "load_ms": raw["load_ms"] if raw else None,
                          "first_predict_ms": raw["first_predict_ms"] if raw else None,
                          "latencies": len(raw["latencies_ms"]) if raw else 0,
                          "peak_mb": outcome.memory.peak_mb if outcome.memory else None})
    base: dict[str, Any] = dict(raws[-1]) if raws else {}
    if raws:
        base["latencies_ms"] = [ms for raw in raws for ms in raw["latencies_ms"]]
    base["launches"] = summaries
    return base
