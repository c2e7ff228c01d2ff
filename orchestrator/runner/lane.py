"""The host-CPU lane: devices whose harness runs on this machine's CPU measure one launch at a time.

``host``, ``host:ID`` and ``virtual:ID`` devices all time predictions on the same cores, so two of them
measuring at once each measure the other (on 2 cores: bimodal samples, CVs of 40-90%). Such devices
(``DeviceInfo.shares_host_cpu``) take the lane for each launch; real devices never wait for it and keep
running in parallel. The lane is a FIFO ``asyncio.Lock``, so devices waiting for it take turns launch by launch.

Every launch, in the lane or not, is recorded: the machine's load average before and after, the other jobs
measuring while it ran (any device), and whether the lane was shared anyway. Inside one process the lane is
never shared; another mlfarm process measuring on the same machine at the same time is what ``outer`` (a
cross-process lock, entered while this process holds its lane) reports by yielding True: it went ahead without
the machine to itself. ``outer`` must wait without blocking the event loop (real devices go on meanwhile).

    lane = HostCpuLane()
    async with lane.measuring(job_id, shares_host_cpu=True) as record:
        outcome = await device.run(job, model_ref=ref)
    record.as_json()   # {"lane": "host-cpu", "loadavg_before": [...], "concurrent_jobs": [...], "shared": False}
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

LoadAvg = Callable[[], tuple[float, float, float] | None]
Outer = Callable[[], AbstractAsyncContextManager[bool]]


def host_loadavg() -> tuple[float, float, float] | None:
    """1, 5 and 15-minute load averages; None where the OS has none (Windows)."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return None
    return (round(one, 2), round(five, 2), round(fifteen, 2))


@contextlib.asynccontextmanager
async def _alone() -> AsyncIterator[bool]:
    yield False


@dataclass
class LaunchRecord:
    """What one launch of one job shared the machine with."""

    job_id: str
    in_lane: bool
    started: float
    finished: float | None = None
    waited_s: float = 0.0
    loadavg_before: tuple[float, float, float] | None = None
    loadavg_after: tuple[float, float, float] | None = None
    concurrent: set[str] = field(default_factory=set)  # other jobs measuring at some point during this one
    # Another process measured on this CPU at the same time (the lane's ``outer`` said so). Inside one process the
    # lane is a lock, so only another process can share it.
    shared: bool = False

    def as_json(self, t0: float = 0.0) -> dict[str, Any]:
        """As stored with the job; ``start_s``/``end_s`` count from ``t0`` (the lane's creation: one clock per run)."""
        end = self.finished if self.finished is not None else self.started
        return {"lane": "host-cpu" if self.in_lane else "own", "waited_s": round(self.waited_s, 3),
                "start_s": round(self.started - t0, 4), "end_s": round(end - t0, 4),
                "loadavg_before": list(self.loadavg_before) if self.loadavg_before else None,
                "loadavg_after": list(self.loadavg_after) if self.loadavg_after else None,
                "concurrent_jobs": sorted(self.concurrent), "shared": self.shared}


class HostCpuLane:
    """One per run (per runner). ``clock`` and ``loadavg`` are injectable so tests can record intervals."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, loadavg: LoadAvg = host_loadavg,
                 outer: Outer = _alone) -> None:
        self.clock = clock
        self.loadavg = loadavg
        self.outer = outer
        self.t0 = clock()
        self._lock = asyncio.Lock()
        self._active: dict[str, LaunchRecord] = {}

    @contextlib.asynccontextmanager
    async def measuring(self, job_id: str, *, shares_host_cpu: bool) -> AsyncIterator[LaunchRecord]:
        asked = self.clock()
        async with contextlib.AsyncExitStack() as stack:
            outside = False
            if shares_host_cpu:
                await stack.enter_async_context(self._lock)
                outside = await stack.enter_async_context(self.outer())
            record = LaunchRecord(job_id, shares_host_cpu, self.clock(), waited_s=self.clock() - asked,
                                  loadavg_before=self.loadavg(), shared=shares_host_cpu and outside)
            self._enter(record)
            try:
                yield record
            finally:
                self._active.pop(job_id, None)
                record.finished = self.clock()
                record.loadavg_after = self.loadavg()

    def _enter(self, record: LaunchRecord) -> None:
        for other in self._active.values():
            other.concurrent.add(record.job_id)
            record.concurrent.add(other.job_id)
        self._active[record.job_id] = record
