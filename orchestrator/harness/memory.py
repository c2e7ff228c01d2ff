"""Memory footprint of a process, as close to iOS's phys_footprint as the platform allows.

On Linux the footprint is the resident set size (RSS); the exact peak comes from the kernel's high-water
mark (``VmHWM`` in /proc/PID/status), so a spike between two samples is not missed. Elsewhere (macOS host)
psutil's RSS is sampled. The MemorySampler runs on a thread for the harness's own process.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil

MB = 1024 * 1024


def footprint_mb(pid: int | None = None) -> float:
    return float(psutil.Process(pid).memory_info().rss) / MB


def high_water_mb(pid: int | None = None) -> float | None:
    """Peak RSS of the process since it started (Linux), or None where the kernel does not say."""
    status = Path(f"/proc/{pid if pid is not None else 'self'}/status")
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0  # kB -> MB
    except OSError:
        return None
    return None


class MemorySampler:
    """Samples this process's footprint every ``interval_ms`` on a daemon thread.

    ``start()`` begins sampling, ``stop()`` ends it and returns ``(peak_mb, samples)`` where samples are
    ``[ms since t0, MB]`` pairs (decimated to at most ``max_samples``). The peak includes the kernel's
    high-water mark where available.
    """

    def __init__(self, interval_ms: int, *, t0: float | None = None, max_samples: int = 20000) -> None:
        self.interval = max(interval_ms, 1) / 1000.0
        self.t0 = t0 if t0 is not None else time.perf_counter()
        self.max_samples = max_samples
        self.samples: list[list[float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlfarm-memory", daemon=True)
        self._proc = psutil.Process()

    def _sample(self) -> None:
        mb = float(self._proc.memory_info().rss) / MB
        self.samples.append([round((time.perf_counter() - self.t0) * 1000.0, 3), round(mb, 3)])

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> tuple[float, list[list[float]]]:
        self._stop.set()
        self._thread.join()
        self._sample()
        peak = max(s[1] for s in self.samples)
        hwm = high_water_mb()
        if hwm is not None:
            peak = max(peak, hwm)
        samples = self.samples
        if len(samples) > self.max_samples:
            step = -(-len(samples) // self.max_samples)
            samples = samples[::step]
        return peak, samples
