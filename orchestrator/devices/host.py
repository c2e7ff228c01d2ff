"""The host backend: this machine runs the Python host harness, optionally under a device's memory limit.

``host`` uses this machine's own ceiling (RAM or cgroup limit); ``host:PROFILE`` applies PROFILE's limit. Both
judge the footprint above the harness's baseline plus a typical app baseline (see devices/watchdog.py), so an
emulated iPhone 12 is judged on what the model adds, not on the size of the Python interpreter, and figures
from both are comparable with the memory model's predictions. The raw footprint is kept alongside. A kill by the
watchdog is an emulated jetsam: ``RunOutcome(status="jetsam")`` with a ``jetsam`` event marked
``emulated: true``. Latencies are of this machine (and, on Linux, of the MIL executor), never a device's.

Work folder layout (``root``): ``models/<sha256>.mlpackage`` (symlinks to the artifact store) and
``jobs/<job>/`` (job.json, result.json, outputs), removed by ``cleanup``.
"""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from orchestrator.devices.base import DeviceInfo, Health, MemoryFigures, RunOutcome
from orchestrator.devices.watchdog import WatchdogReport, app_baseline_mb, harness_command, run_under_limit
from orchestrator.errors import ContractError
from orchestrator.harness.contract import HarnessResult, Job, load_outputs, read_result
from orchestrator.profiles.model import DeviceProfile
from orchestrator.results.store import Event


def job_folder_name(job_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", job_id)


def host_device_info(profile: DeviceProfile, key: str) -> DeviceInfo:
    emulated = profile.family != "host"
    return DeviceInfo(key=key, backend="host", profile=profile, name=platform.node() or "host",
                      os_version=platform.platform(), emulated=emulated, shares_host_cpu=True,
                      extra={"limit_applies_to": "footprint above the harness baseline + app baseline"})


class HostDevice:
    """One ``host`` or ``host:PROFILE`` device; owns ``root`` for the length of a run."""

    def __init__(self, info: DeviceInfo, root: Path, *, limit_mb: float, app_footprint_mb: float | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.info = info
        self.root = root
        self.limit_mb = limit_mb
        self.env = dict(os.environ if env is None else env)
        # The footprint an app has before it loads a model (spec app.footprint_mb), stood in for the
        # interpreter's own baseline; MLFARM_APP_BASELINE_MB when the caller does not say.
        self.app_baseline = app_footprint_mb if app_footprint_mb is not None else app_baseline_mb(self.env)

    async def prepare(self) -> None:
        (self.root / "models").mkdir(parents=True, exist_ok=True)
        (self.root / "jobs").mkdir(parents=True, exist_ok=True)

    async def health(self) -> Health:
        free = shutil.disk_usage(self.root if self.root.exists() else Path.cwd()).free
        if free < 256 * 2**20:
            return Health(ok=False, reason=f"only {free // 2**20} MB of disk left under {self.root}")
        return Health(ok=True)

    async def push(self, artifact: Path, sha256: str) -> str:
        ref = f"models/{sha256}.mlpackage"
        link = self.root / ref
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            tmp = link.with_name(link.name + ".tmp")
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            tmp.symlink_to(artifact.resolve(), target_is_directory=True)
            os.replace(tmp, link)
        return ref

    async def run(self, job: Job, *, model_ref: str) -> RunOutcome:
        job_dir = self.root / "jobs" / job_folder_name(job.job_id)
        if job_dir.exists():
            shutil.rmtree(job_dir)
        job_dir.mkdir(parents=True)
        job = Job(**{**job.__dict__, "model": model_ref})
        job_path = job.write(job_dir)
        report = await run_under_limit(
            harness_command(job_path, self.root), limit_mb=self.limit_mb, timeout_s=job.timeout_s + 30.0,
            app_baseline=self.app_baseline, env=self.env)
        return outcome_from_report(report, job_dir, job.job_id, self.limit_mb, self.app_baseline)

    async def cleanup(self) -> None:
        shutil.rmtree(self.root / "jobs", ignore_errors=True)


def _memory(report: WatchdogReport, result: HarnessResult | None, limit_mb: float,
            app_baseline: float) -> MemoryFigures | None:
    baseline = report.baseline_mb
    raw_peak = report.raw_peak_mb
    if result is not None:
        baseline = float(result.memory["baseline_phys_footprint_mb"])
        raw_peak = max(raw_peak, float(result.memory["peak_phys_footprint_mb"]))
    if baseline is None:
        return None
    peak = raw_peak - baseline + app_baseline
    return MemoryFigures(peak_mb=round(peak, 3), raw_peak_mb=round(raw_peak, 3), baseline_mb=round(baseline, 3),
                         limit_mb=limit_mb)


def _kb_up(mb: float) -> float:
    """A footprint at kill, to the kB above: the watchdog kills only when the footprint is strictly above the
    limit, and rounding to the nearest kB could store a kill at 30.0002 MB as exactly the 30 MB limit."""
    return math.ceil(mb * 1000.0) / 1000.0


def outcome_from_report(report: WatchdogReport, job_dir: Path, job_id: str, limit_mb: float,
                        app_baseline: float) -> RunOutcome:
    """Turn what the watchdog saw and what the harness wrote into a RunOutcome (jetsam, timeout, ok, error)."""
    if report.killed:
        at_kill = _kb_up(report.adjusted_at_kill_mb or 0.0)
        raw_at_kill = _kb_up(report.raw_at_kill_mb or 0.0)
        data = {"reason": "per-process-limit", "footprint_mb": at_kill, "raw_footprint_mb": raw_at_kill,
                "limit_mb": limit_mb, "baseline_mb": report.baseline_mb, "app_baseline_mb": app_baseline,
                "pid": report.pid, "emulated": True}
        memory: MemoryFigures | None = MemoryFigures(peak_mb=at_kill, raw_peak_mb=raw_at_kill,
                                                     baseline_mb=report.baseline_mb or 0.0, limit_mb=limit_mb)
        message = f"killed at {at_kill:,.1f} MB > {limit_mb:,.0f} MB limit (emulated jetsam)"
        return RunOutcome("jetsam", memory=memory, events=[Event("jetsam", message, data)], error=message,
                          wall_s=report.wall_s)
    if report.timed_out:
        message = f"no result after {report.wall_s:.0f} s: harness killed"
        return RunOutcome("timeout", events=[Event("timeout", message, {"pid": report.pid})], error=message,
                          wall_s=report.wall_s)
    try:
        result = read_result(job_dir, job_id=job_id)
        outputs = load_outputs(job_dir, result)
    except ContractError as exc:
        detail = exc.message + (f"; harness stderr: {report.stderr_tail[-500:]}" if report.stderr_tail else "")
        return RunOutcome("error", events=[Event("invalid-result", exc.message,
                                                 {"problems": [str(p) for p in exc.problems]})],
                          error=detail, wall_s=report.wall_s)
    memory = _memory(report, result, limit_mb, app_baseline)
    status = result.status if result.status in ("ok", "timeout") else "error"
    events = [] if status == "ok" else [Event(status, result.error or "", {})]
    return RunOutcome(status, result=result, outputs=outputs, memory=memory, events=events,  # type: ignore[arg-type]
                      error=result.error, wall_s=report.wall_s)
