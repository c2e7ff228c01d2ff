"""The Device protocol every backend implements (host, usbmux, virtual), and what a job run returns.

A backend owns one device for the length of a run. The runner calls, per device:

    await device.prepare()                         # once: install/refresh the harness if needed
    for job in queue:
        health = await device.health()            # battery, thermal, reachable
        ref = await device.push(artifact_dir, sha)  # no-op when the device already holds that artifact
        outcome = await device.run(job, model_ref=ref)
    await device.cleanup()

Faults of the connection raise ``TransportError`` (the runner retries with backoff). A model killed for
memory is *not* an exception: ``run`` returns ``RunOutcome(status="jetsam")`` with the evidence in
``events``. An invalid result file is ``status="error"`` with a ``invalid-result`` event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from orchestrator.harness.contract import HarnessResult, Job
from orchestrator.profiles.model import DeviceProfile
from orchestrator.results.store import Event

Backend = Literal["host", "usbmux", "virtual"]
Status = Literal["ok", "jetsam", "error", "timeout"]


@dataclass(frozen=True)
class DeviceInfo:
    """Who a device is. ``key`` is unique within a run (``host``, ``host:iphone-12``, ``virtual:iphone-12``,
    ``usb:<udid>``); ``profile`` is resolved to one RAM size."""

    key: str
    backend: Backend
    profile: DeviceProfile
    name: str
    os_version: str
    udid: str | None = None
    product_type: str | None = None
    emulated: bool = False  # limits enforced by mlfarm, not by iOS: never a device latency
    # Its harness runs on this machine's CPU (host, host:ID, virtual:ID): the runner measures such devices one
    # launch at a time (the host-CPU lane), since two of them measuring at once measure each other.
    shares_host_cpu: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str = ""
    battery_percent: float | None = None
    charging: bool | None = None
    thermal_state: str | None = None


@dataclass(frozen=True)
class MemoryFigures:
    """Memory of one job, in MB.

    ``peak_mb`` is the figure compared with the limit: the app's phys_footprint peak on a device; on the host
    the harness's footprint above its own pre-load baseline plus a typical app baseline (see devices/host.py).
    ``raw_peak_mb`` is the footprint as measured, ``system_delta_mb`` the system-wide growth (Neural Engine
    daemons such as aned are charged there, not to the app; apple/ml-stable-diffusion #291).
    """

    peak_mb: float
    raw_peak_mb: float
    baseline_mb: float
    limit_mb: float
    system_delta_mb: float | None = None
    min_available_mb: float | None = None


@dataclass(frozen=True)
class RunOutcome:
    status: Status
    result: HarnessResult | None = None
    outputs: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    memory: MemoryFigures | None = None
    events: list[Event] = field(default_factory=list)
    error: str | None = None
    wall_s: float = 0.0


@runtime_checkable
class Device(Protocol):
    info: DeviceInfo

    async def prepare(self) -> None: ...

    async def health(self) -> Health: ...

    async def push(self, artifact: Path, sha256: str) -> str: ...

    async def run(self, job: Job, *, model_ref: str) -> RunOutcome: ...

    async def cleanup(self) -> None: ...
