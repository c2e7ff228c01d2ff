"""The emulated-jetsam watchdog against real child processes."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from orchestrator.devices.watchdog import run_under_limit

HOG = textwrap.dedent("""
    import sys, time
    import numpy as np
    print("MLFARM_BASELINE_MB=" + sys.argv[1], flush=True)
    blocks = []
    for _ in range(int(sys.argv[2])):
        blocks.append(np.ones(10 * 2**20 // 8))   # 10 MB of touched memory per step
        time.sleep(0.02)
    print("done", flush=True)
""")


def hog(tmp_path: Path, steps: int, baseline: str = "BASE") -> list[str]:
    script = tmp_path / "hog.py"
    script.write_text(HOG)
    return [sys.executable, str(script), baseline, str(steps)]


def measure_baseline(tmp_path: Path) -> float:
    """The hog's own footprint before it allocates: what the harness would print as its baseline."""
    report = asyncio.run(run_under_limit(hog(tmp_path, 0, "0"), limit_mb=None, timeout_s=60))
    return report.raw_peak_mb


def test_kill_above_the_limit_counts_only_memory_above_the_baseline(tmp_path):
    base = measure_baseline(tmp_path)
    cmd = hog(tmp_path, 30, f"{base:.1f}")  # would reach ~300 MB above its baseline
    report = asyncio.run(run_under_limit(cmd, limit_mb=120, timeout_s=60, app_baseline=20))
    assert report.killed and not report.timed_out
    assert report.exit_code == -9
    assert report.baseline_mb == float(f"{base:.1f}")  # what the child printed
    # killed past the limit, on the footprint above the printed baseline plus the app's own 20 MB
    assert report.adjusted_at_kill_mb > 120
    assert report.adjusted_at_kill_mb == pytest.approx(report.raw_at_kill_mb - report.baseline_mb + 20)
    assert report.raw_peak_mb >= report.raw_at_kill_mb


def test_no_kill_below_the_limit_and_peak_is_recorded(tmp_path):
    base = measure_baseline(tmp_path)
    report = asyncio.run(run_under_limit(hog(tmp_path, 8, f"{base:.1f}"), limit_mb=400, timeout_s=60))
    assert not report.killed and report.exit_code == 0
    assert report.raw_peak_mb >= base + 70  # 80 MB allocated, high-water mark catches it
    assert report.baseline_mb == float(f"{base:.1f}") and report.raw_at_kill_mb is None
    assert report.adjusted_peak_mb(25.0) == pytest.approx(report.raw_peak_mb - report.baseline_mb + 25.0)


def test_interpreter_size_alone_never_triggers_a_kill(tmp_path):
    # Limit far below the interpreter's own footprint: only memory above the baseline counts.
    base = measure_baseline(tmp_path)
    report = asyncio.run(run_under_limit(hog(tmp_path, 1, f"{base:.1f}"), limit_mb=60, timeout_s=60, app_baseline=25))
    assert not report.killed and report.exit_code == 0


def test_timeout_kills_a_hung_child(tmp_path):
    script = tmp_path / "hang.py"
    script.write_text("import time\ntime.sleep(60)\n")
    report = asyncio.run(run_under_limit([sys.executable, str(script)], limit_mb=100, timeout_s=0.5))
    assert report.timed_out and not report.killed
    assert report.exit_code == -9 and report.wall_s >= 0.5  # SIGKILLed, and not before its timeout
    assert not psutil.pid_exists(report.pid) or psutil.Process(report.pid).status() == psutil.STATUS_ZOMBIE
