"""The runner: one asyncio worker per device, each draining its own job queue; devices run in parallel.

Per job: health check, cooldown (not before a device's first job), push (cached by the device), run with a
timeout, collect, store. Transport faults (``TransportError``) are retried with exponential backoff, at most
``retries`` times; a jetsam, a timeout or an invalid result is an outcome, stored as such and never retried.
Each job's outcome, figures and events are committed in one transaction before the device takes its next job,
so a killed orchestrator loses at most the job in flight, which ``--resume`` redoes.

The runner owns nothing but its loop: the store, the devices, the clock and the progress sink are passed in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from orchestrator.devices.base import Device, RunOutcome
from orchestrator.errors import MlfarmError, TransportError
from orchestrator.harness.contract import Job
from orchestrator.plan.predictions import Predictions
from orchestrator.results.store import Event, ResultsStore
from orchestrator.runner.figures import measurements

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
            for n, item in enumerate(items):
                if n and self.cooldown_s > 0:
                    await self.sleep(self.cooldown_s)
                await self._one(device, item, summary)
        finally:
            try:
                await device.cleanup()
            except MlfarmError as exc:
                self.store.add_event(self.run_id, Event("error", f"cleanup failed: {exc.message}"), device_key=key)

    def _fail(self, item: WorkItem, summary: RunSummary, status: str, message: str, events: list[Event]) -> None:
        self.store.finish_job(item.store_id, status, error=message, events=events)
        summary.statuses[item.store_id] = status
        self.progress.job_finished(item, status, message)

    async def _one(self, device: Device, item: WorkItem, summary: RunSummary) -> None:
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
                outcome = await asyncio.wait_for(device.run(item.job, model_ref=ref), item.job.timeout_s + 120.0)
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
        self._store(item, outcome, events, summary)

    def _store(self, item: WorkItem, outcome: RunOutcome, events: list[Event], summary: RunSummary) -> None:
        reference = self.references(item.component) if outcome.outputs else None
        rows, psnr = measurements(outcome, predicted_mb=item.predicted_mb, limit_mb=item.limit_mb,
                                  reference=reference)
        result = outcome.result.raw if outcome.result is not None else None
        self.store.finish_job(item.store_id, outcome.status, result=result, error=outcome.error,
                              measurements=rows, events=[*events, *outcome.events])
        summary.statuses[item.store_id] = outcome.status
        detail = outcome.error or ""
        if outcome.status == "ok" and result is not None:
            lat = sorted(result["latencies_ms"])
            p50 = lat[len(lat) // 2] if lat else float("nan")
            peak = outcome.memory.peak_mb if outcome.memory else float("nan")
            detail = f"p50 {p50:.1f} ms, peak {peak:.0f} MB" + (f", PSNR {psnr:.1f} dB" if psnr is not None else "")
        self.progress.job_finished(item, outcome.status, detail)
