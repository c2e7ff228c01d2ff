"""What a job on a usbmux device ended as, from what came back: the pulled job folder, the sysmontap figures,
and, when the process vanished without a result, the device's crash reports.

    result.json valid              -> ok / error / timeout as the harness says, with memory figures
    result.json invalid            -> error + ``invalid-result`` event (the document is untrusted input)
    no result, JetsamEvent for pid -> jetsam + ``jetsam`` event (reason, footprint, largest process, report)
    no result, no such report      -> error + ``crash`` event (an app crash report is named if one exists)
    killed by us after timeout_s   -> timeout + ``timeout`` event
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.devices.base import DeviceInfo, MemoryFigures, RunOutcome
from orchestrator.devices.jetsam import JetsamReport, parse_jetsam_report
from orchestrator.errors import ContractError
from orchestrator.harness.contract import MAX_OUTPUT_BYTES, MAX_RESULT_BYTES, HarnessResult, load_outputs, read_result
from orchestrator.results.store import Event

if TYPE_CHECKING:
    from orchestrator.devices.usbmux import UsbmuxSession
    from orchestrator.devices.usbmux_device import Watch

MB = 1024 * 1024
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
MAX_PULL_BYTES = 4 << 30


@dataclass(frozen=True)
class JobContext:
    """Everything the classification needs about one finished job."""

    info: DeviceInfo
    session: UsbmuxSession
    bundle_id: str
    executable: str
    limit_mb: int
    job_id: str
    pid: int
    remote: str  # the job folder in the app container
    local: Path  # where it is pulled to
    started: float  # epoch seconds, before launch
    report_wait_s: float


async def classify(ctx: JobContext, watch: Watch) -> RunOutcome:
    files = await ctx.session.list_files(ctx.bundle_id, ctx.remote)
    if "result.json" in files:
        await pull(ctx, files)
        return from_result(ctx, watch)
    if watch.timed_out:
        message = f"no result after {watch.wall_s:.0f} s: harness killed (pid {ctx.pid})"
        return RunOutcome("timeout", memory=_memory(ctx, watch, None), error=message, wall_s=watch.wall_s,
                          events=[Event("timeout", message, {"pid": ctx.pid, "emulated": ctx.info.emulated})])
    return await vanished(ctx, watch)


async def pull(ctx: JobContext, files: dict[str, int]) -> None:
    """Copy the job folder's files back, refusing odd names (``.``/``..`` included) and sizes (the device is
    untrusted); ``read_result`` then checks each one is a regular file."""
    total = 0
    for name, size in files.items():
        limit = MAX_RESULT_BYTES if name == "result.json" else MAX_OUTPUT_BYTES
        if (name == "job.json" or not SAFE_NAME.match(name) or set(name) == {"."} or size > limit
                or total + size > MAX_PULL_BYTES):
            continue
        total += size
        (ctx.local / name).write_bytes(await ctx.session.read_file(ctx.bundle_id, f"{ctx.remote}/{name}"))


def from_result(ctx: JobContext, watch: Watch) -> RunOutcome:
    try:
        result = read_result(ctx.local, job_id=ctx.job_id)
        outputs = load_outputs(ctx.local, result)
    except ContractError as exc:
        return RunOutcome("error", error=exc.message, wall_s=watch.wall_s, memory=_memory(ctx, watch, None),
                          events=[Event("invalid-result", exc.message, {"problems": [str(p) for p in exc.problems],
                                                                        "emulated": ctx.info.emulated})])
    status = result.status if result.status in ("ok", "timeout") else "error"
    events = [] if status == "ok" else [Event(status, result.error or "", {"emulated": ctx.info.emulated})]
    return RunOutcome(status, result=result, outputs=outputs, memory=_memory(ctx, watch, result),  # type: ignore[arg-type]
                      events=events, error=result.error, wall_s=watch.wall_s)


def _memory(ctx: JobContext, watch: Watch, result: HarnessResult | None,
            at_kill_mb: float | None = None) -> MemoryFigures:
    """The footprint compared with the limit is the larger of the harness's own peak and sysmontap's; on an
    emulated device ``raw_peak_mb`` is the emulating Python process's resident size (memResidentSize)."""
    peak = watch.peak_footprint / MB
    baseline = 0.0
    min_available = None
    if result is not None:
        memory = result.memory
        peak = max(peak, float(memory["peak_phys_footprint_mb"]))
        baseline = float(memory["baseline_phys_footprint_mb"])
        min_available = memory.get("min_available_mb")
    if at_kill_mb is not None:
        peak = max(peak, at_kill_mb)
    raw = watch.peak_resident / MB if ctx.info.emulated and watch.peak_resident else peak
    return MemoryFigures(peak_mb=round(peak, 3), raw_peak_mb=round(raw, 3), baseline_mb=round(baseline, 3),
                         limit_mb=float(ctx.limit_mb), system_delta_mb=watch.system_delta_mb,
                         min_available_mb=None if min_available is None else float(min_available))


async def find_jetsam(ctx: JobContext) -> tuple[JetsamReport, str] | None:
    """The JetsamEvent report naming our pid, waiting up to ``report_wait_s`` for it to be written."""
    deadline = time.monotonic() + ctx.report_wait_s
    while True:
        for name, data in await ctx.session.crash_reports(r"^JetsamEvent-.*\.ips$", newer_than=ctx.started - 5):
            try:
                report = parse_jetsam_report(data, filename=name)
            except ContractError:
                continue
            if report.for_pid(ctx.pid) is not None:
                (ctx.local / name).write_bytes(data)  # kept as evidence next to the job
                return report, name
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.5)


async def vanished(ctx: JobContext, watch: Watch) -> RunOutcome:
    found = await find_jetsam(ctx)
    if found is not None:
        report, name = found
        entry = report.for_pid(ctx.pid)
        assert entry is not None
        data = {"reason": entry.reason, "footprint_mb": round(entry.footprint_mb, 3), "limit_mb": ctx.limit_mb,
                "emulated": ctx.info.emulated, "largest_process": report.largest_process, "pid": ctx.pid,
                "report": name}
        message = (f"killed by jetsam ({entry.reason}) at {entry.footprint_mb:.0f} MB, limit {ctx.limit_mb} MB"
                   + (" (emulated)" if ctx.info.emulated else ""))
        return RunOutcome("jetsam", memory=_memory(ctx, watch, None, entry.footprint_mb), error=message,
                          events=[Event("jetsam", message, data)], wall_s=watch.wall_s)
    crashes = await ctx.session.crash_reports(rf"^{re.escape(ctx.executable)}[-_].*\.ips$",
                                              newer_than=ctx.started - 5)
    report_name = crashes[0][0] if crashes else None
    if report_name is not None:
        (ctx.local / report_name).write_bytes(crashes[0][1])
    message = (f"the harness (pid {ctx.pid}) exited without a result"
               + (f"; crash report {report_name}" if report_name else "; no jetsam or crash report"))
    return RunOutcome("error", memory=_memory(ctx, watch, None), error=message, wall_s=watch.wall_s,
                      events=[Event("crash", message, {"pid": ctx.pid, "report": report_name,
                                                       "emulated": ctx.info.emulated})])
