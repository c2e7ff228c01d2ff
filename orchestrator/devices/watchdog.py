"""Run the Python host harness in a subprocess under a memory limit: an emulated jetsam.

iOS kills an app whose phys_footprint passes its per-process limit. Here a watchdog samples the child's
footprint (RSS, and the kernel's high-water mark so a spike between samples is not missed) and sends SIGKILL
when it passes the limit. Python and its libraries weigh far more than a Swift app, so the limit is applied
to the footprint *above the harness's own pre-load baseline* plus a typical app baseline:

    adjusted = raw - baseline + app_baseline_mb          (killed when adjusted > limit_mb)

``app_baseline_mb`` defaults to 25 MB, our estimate of a minimal SwiftUI app's phys_footprint after launch and
before it loads a model (override with MLFARM_APP_BASELINE_MB). The harness prints its baseline on stdout
(``MLFARM_BASELINE_MB=...``) before loading the model; until then only the timeout applies. Used by the host
backend and by the virtual device's emulated app.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from orchestrator.harness.host import BASELINE_MARKER
from orchestrator.harness.memory import MB, high_water_mb

DEFAULT_APP_BASELINE_MB = 25.0
APP_BASELINE_ENV = "MLFARM_APP_BASELINE_MB"

# glibc's malloc raises its mmap threshold (up to 32 MB) each time it frees an mmapped block, after which freed
# activations of that size stay in the heap, fragment it and keep the resident set up; each thread may also get
# its own arena. The peak then depends on allocation order, not on what the program holds (measured on a tiny
# fp16 UNet: 10-20 MB of 40-80 MB above the live tensors). A fixed 1 MB threshold returns every large block to
# the kernel when it is freed, and two arenas suffice for this 2-thread workload, so the measured peak follows
# the memory model's live tensors. The harness inherits these unless the environment sets them already.
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": "1048576", "MALLOC_ARENA_MAX": "2"}

# (pid, raw footprint MB, adjusted footprint MB or None before the baseline is known)
SampleCallback = Callable[[int, float, float | None], None]


def app_baseline_mb(env: Mapping[str, str] = os.environ) -> float:
    try:
        return float(env.get(APP_BASELINE_ENV, DEFAULT_APP_BASELINE_MB))
    except ValueError:
        return DEFAULT_APP_BASELINE_MB


@dataclass(frozen=True)
class WatchdogReport:
    pid: int
    exit_code: int | None
    killed: bool  # by the watchdog: an emulated jetsam
    timed_out: bool
    baseline_mb: float | None
    raw_peak_mb: float
    raw_at_kill_mb: float | None
    adjusted_at_kill_mb: float | None
    wall_s: float
    stderr_tail: str

    def adjusted_peak_mb(self, app_baseline: float) -> float | None:
        if self.baseline_mb is None:
            return None
        return self.raw_peak_mb - self.baseline_mb + app_baseline


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGKILL us if the orchestrator dies (e.g. killed mid-run), so no
    orphaned harness keeps computing; ``--resume`` reruns the job."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def harness_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """The harness's environment: ``env`` (default: ours) with ``ALLOCATOR_ENV`` where it sets nothing else."""
    merged = dict(os.environ if env is None else env)
    for key, value in ALLOCATOR_ENV.items():
        merged.setdefault(key, value)
    return merged


def harness_command(job_path: Path, root: Path, *, isolated: bool = False) -> list[str]:
    """``isolated`` runs Python with ``-I``: no ``PYTHON*`` variables, no working directory on ``sys.path``
    (the emulator's harness runs in an app container a client can write to)."""
    flags = ["-I"] if isolated else []
    return [sys.executable, *flags, "-m", "orchestrator.harness", str(job_path), "--root", str(root)]


def _raw_mb(proc: psutil.Process) -> tuple[float, float]:
    """(current RSS, high-water mark) of the process in MB."""
    rss = float(proc.memory_info().rss) / MB
    hwm = high_water_mb(proc.pid)
    return rss, max(rss, hwm if hwm is not None else rss)


async def run_under_limit(
    cmd: list[str], *, limit_mb: float | None, timeout_s: float, adjust: bool = True,
    app_baseline: float = DEFAULT_APP_BASELINE_MB, poll_ms: int = 10, env: Mapping[str, str] | None = None,
    on_sample: SampleCallback | None = None, cwd: Path | None = None,
) -> WatchdogReport:
    """Run ``cmd`` (a harness) and enforce ``limit_mb`` on its footprint; never raises for the child's fate."""
    start = time.perf_counter()
    child = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=harness_env(env), cwd=cwd, start_new_session=True, preexec_fn=_die_with_parent)
    assert child.stdout is not None and child.stderr is not None
    proc = psutil.Process(child.pid)
    state: dict[str, float | None] = {"baseline": None}
    stderr_chunks: list[bytes] = []

    async def read_stdout() -> None:
        assert child.stdout is not None
        async for line in child.stdout:
            text = line.decode(errors="replace").strip()
            if text.startswith(BASELINE_MARKER):
                with contextlib.suppress(ValueError):
                    state["baseline"] = float(text[len(BASELINE_MARKER):])

    async def read_stderr() -> None:
        assert child.stderr is not None
        while chunk := await child.stderr.read(65536):
            stderr_chunks.append(chunk)
            del stderr_chunks[:-4]

    readers = [asyncio.create_task(read_stdout()), asyncio.create_task(read_stderr())]
    raw_peak, killed, timed_out = 0.0, False, False
    raw_at_kill = adjusted_at_kill = None
    while child.returncode is None:
        try:
            rss, hwm = _raw_mb(proc)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            break
        raw_peak = max(raw_peak, hwm)
        baseline = state["baseline"]
        adjusted = None
        if baseline is not None:
            adjusted = (hwm - baseline + app_baseline) if adjust else hwm
        if on_sample is not None:
            now = None if baseline is None else (rss - baseline + app_baseline if adjust else rss)
            on_sample(child.pid, rss, now)
        if limit_mb is not None and adjusted is not None and adjusted > limit_mb:
            raw_at_kill, adjusted_at_kill, killed = hwm, adjusted, True
            _kill(child.pid)
            break
        if time.perf_counter() - start > timeout_s:
            timed_out = True
            _kill(child.pid)
            break
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(child.wait(), poll_ms / 1000.0)
    code = await child.wait()
    await asyncio.gather(*readers, return_exceptions=True)
    return WatchdogReport(
        pid=child.pid, exit_code=code, killed=killed, timed_out=timed_out, baseline_mb=state["baseline"],
        raw_peak_mb=raw_peak, raw_at_kill_mb=raw_at_kill, adjusted_at_kill_mb=adjusted_at_kill,
        wall_s=time.perf_counter() - start, stderr_tail=b"".join(stderr_chunks).decode(errors="replace")[-4000:],
    )


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # the harness is a session leader: take its children too
