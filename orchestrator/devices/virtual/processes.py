"""Processes of an emulated device: a few system daemons and the apps DVT launches.

Launching the harness stand-in with ``--job <path of job.json relative to Documents>`` (the Swift app's
launch contract, harness_app/README.md) runs ``python -m orchestrator.harness`` through
``devices.watchdog.run_under_limit`` under the profile's memory limit (the increased-memory-limit figure when
the app carries the entitlement), exactly like the host backend. While it runs, its *device-equivalent*
footprint (above the harness's own baseline, plus a typical app's) is what sysmontap reports as
``physFootprint``; the Python process's real RSS is ``memResidentSize``.
The result.json it leaves is rewritten in those same device-equivalent terms, as the Swift app would report
them. When the watchdog kills it, a JetsamEvent report naming its pid goes into the crash-report folder.
Any other app (or the harness without a job) runs as an idle process until it is killed.

Pids are the device's own (counting up from 400), not the host's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.devices.jetsam import KilledProcess, format_jetsam_report, report_filename
from orchestrator.devices.virtual.apps import AppRecord
from orchestrator.devices.virtual.launch_env import harness_environment
from orchestrator.devices.watchdog import WatchdogReport, app_baseline_mb, harness_command, run_under_limit

if TYPE_CHECKING:
    from orchestrator.devices.virtual.device import VirtualDevice

logger = logging.getLogger(__name__)
MB = 1024 * 1024
EMULATOR_TIMEOUT_S = 6 * 3600.0  # the orchestrator kills hung jobs; this only bounds a forgotten one
SYSTEM_PROCESSES = (  # pid, name, phys_footprint MB: what a device shows besides our app
    (0, "kernel_task", 96), (1, "launchd", 6), (32, "lockdownd", 5), (58, "backboardd", 38),
    (61, "SpringBoard", 160), (77, "mediaserverd", 18), (83, "aned", 14), (91, "thermalmonitord", 4),
)


@dataclass
class VirtualProcess:
    pid: int
    name: str
    bundle_id: str | None
    footprint: int  # bytes, phys_footprint as the device reports it
    resident: int = 0  # bytes, RSS of the host process emulating it
    started: float = field(default_factory=time.time)
    host_pid: int | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    signalled: int | None = None  # the signal DVT sent, if any

    @property
    def is_app(self) -> bool:
        return self.bundle_id is not None


class ProcessTable:
    """The device's process list; owns the harness subprocesses it starts (``shutdown`` kills them)."""

    def __init__(self, device: VirtualDevice) -> None:
        self.device = device
        self._next_pid = 400
        self.system = [VirtualProcess(pid, name, None, mb * MB) for pid, name, mb in SYSTEM_PROCESSES]
        self.apps: dict[int, VirtualProcess] = {}
        self.on_exit: Callable[[VirtualProcess], None] | None = None

    def all(self) -> list[VirtualProcess]:
        return [*self.system, *self.apps.values()]

    def get(self, pid: int) -> VirtualProcess | None:
        return self.apps.get(pid) or next((p for p in self.system if p.pid == pid), None)

    def pid_for_bundle(self, bundle_id: str) -> int:
        return next((p.pid for p in self.apps.values() if p.bundle_id == bundle_id), 0)

    def launch(self, app: AppRecord, arguments: list[str], environment: dict[str, str], *,
               kill_existing: bool = True) -> int:
        if kill_existing:
            for pid in [p.pid for p in self.apps.values() if p.bundle_id == app.bundle_id]:
                self.signal(pid, signal.SIGKILL)
        pid = self._next_pid
        self._next_pid += 1
        proc = VirtualProcess(pid, app.executable, app.bundle_id, int(app_baseline_mb() * MB))
        self.apps[pid] = proc
        if app.is_harness_stand_in and "--job" in arguments:
            flag = arguments.index("--job")
            job = arguments[flag + 1] if flag + 1 < len(arguments) else ""
            proc.task = asyncio.create_task(self._run_harness(proc, app, job, environment))
        else:
            proc.task = asyncio.create_task(self._idle(proc))
        return pid

    def signal(self, pid: int, sig: int) -> bool:
        proc = self.apps.get(pid)
        if proc is None:
            return False
        proc.signalled = sig
        if proc.host_pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.host_pid, sig)
        elif proc.task is not None and sig in (signal.SIGKILL, signal.SIGTERM):
            proc.task.cancel()
        return True

    async def shutdown(self) -> None:
        for pid in list(self.apps):
            self.signal(pid, signal.SIGKILL)
        tasks = [p.task for p in self.apps.values() if p.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    def _exited(self, proc: VirtualProcess) -> None:
        self.apps.pop(proc.pid, None)
        if self.on_exit is not None:
            self.on_exit(proc)

    async def _idle(self, proc: VirtualProcess) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            self._exited(proc)

    async def _run_harness(self, proc: VirtualProcess, app: AppRecord, job: str, env: dict[str, str]) -> None:
        documents = app.documents
        parts = job.split("/")
        job_path = (documents / job).resolve()
        limit = float(self.device.identity.profile.limit_mb(increased=app.increased_memory_limit))
        baseline = app_baseline_mb()

        def sample(host_pid: int, rss_mb: float, adjusted_mb: float | None) -> None:
            proc.host_pid = host_pid
            proc.resident = int(rss_mb * MB)
            proc.footprint = int(max(adjusted_mb if adjusted_mb is not None else baseline, 0.0) * MB)
            if proc.signalled is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(host_pid, signal.SIGKILL)

        try:
            if not job or job.startswith("/") or "." in parts or ".." in parts or not job_path.is_file():
                return  # like the Swift app: nothing to run, so it exits at once
            child_env, dropped = harness_environment(env, os.environ, container=app.container,
                                                     udid=self.device.identity.udid)
            if dropped:
                logger.warning("launch of %s: dropped environment variables %s (not the harness's own)",
                               app.bundle_id, ", ".join(dropped))
            report = await run_under_limit(
                harness_command(job_path, documents, isolated=True), limit_mb=limit, timeout_s=EMULATOR_TIMEOUT_S,
                app_baseline=baseline, env=child_env, on_sample=sample, cwd=app.container)
            if report.killed:
                self._write_jetsam(proc, report)
            elif proc.signalled is None:
                ident = self.device.identity
                device = {"model": ident.product_type, "os": f"{ident.profile.os.name} {ident.os_version}",
                          "physical_memory_mb": float(ident.profile.ram_options[0] * 1024)}
                rewrite_result(job_path.parent / "result.json", report, baseline, limit, device)
                if self.device.take_fault("corrupt-result"):
                    corrupt_result(job_path.parent / "result.json")
            self._log(proc, job, report)
        finally:
            self._exited(proc)

    def _log(self, proc: VirtualProcess, job: str, report: WatchdogReport) -> None:
        """One line per harness run in ``<device folder>/harness-runs.jsonl``: what ran, how long, how it ended
        (for debugging, and for bench/virtual_overhead.py to separate the harness's time from ours)."""
        entry = {"pid": proc.pid, "job": job, "started": proc.started, "wall_s": round(report.wall_s, 4),
                 "exit_code": report.exit_code, "jetsam": report.killed, "signalled": proc.signalled}
        with (self.device.root / "harness-runs.jsonl").open("a") as log:
            log.write(json.dumps(entry) + "\n")

    def _write_jetsam(self, proc: VirtualProcess, report: WatchdogReport) -> None:
        ident = self.device.identity
        footprint = int((report.adjusted_at_kill_mb or 0.0) * MB)
        bystanders = [(p.pid, p.name, p.footprint) for p in self.all() if p.pid != proc.pid]
        when = datetime.now().astimezone()
        text = format_jetsam_report(KilledProcess(proc.pid, proc.name, footprint), product=ident.product_type,
                                    os_version=ident.os_version, build=ident.build_version, bystanders=bystanders,
                                    when=when, total_pages=int(ident.profile.ram_options[0]) * 65536)
        folder = self.device.crash_reports
        path = folder / report_filename(when)
        n = 1
        while path.exists():
            n += 1
            path = folder / report_filename(when).replace(".ips", f"-{n}.ips")
        path.write_text(text)


def _device_mb(raw: float, baseline_raw: float, app_baseline: float) -> float:
    return round(max(raw - baseline_raw + app_baseline, 0.0), 3)


def rewrite_result(path: Path, report: WatchdogReport, app_baseline: float, limit_mb: float,
                   device: dict[str, Any]) -> None:
    """Put the harness's figures in the device's terms: memory as a Swift app's phys_footprint would read,
    and the emulated model, OS and RAM in ``device`` (as the Swift app reports hw.machine and the OS).

    Only touches a result that parses and carries the expected memory block; anything else is left for the
    orchestrator's validation to reject.
    """
    try:
        data: Any = json.loads(path.read_text())
        memory = data["memory"]
        base = float(memory["baseline_phys_footprint_mb"])
        peak = max(float(memory["peak_phys_footprint_mb"]), report.raw_peak_mb)
    except (OSError, ValueError, KeyError, TypeError):
        return
    device_peak = _device_mb(peak, base, app_baseline)
    memory["peak_phys_footprint_mb"] = device_peak
    memory["baseline_phys_footprint_mb"] = round(app_baseline, 3)
    memory["min_available_mb"] = round(max(limit_mb - device_peak, 0.0), 3)
    memory["samples"] = [[t, _device_mb(mb, base, app_baseline)] for t, mb in memory.get("samples", [])]
    if isinstance(data.get("device"), dict):
        data["device"].update(device)
    path.write_text(json.dumps(data))


def corrupt_result(path: Path) -> None:
    """Fault injection: a result.json that parses but breaks the schema (a harness of another version)."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        data.pop("latencies_ms", None)
        data["status"] = "finished"
        path.write_text(json.dumps(data))
