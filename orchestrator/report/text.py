"""Wording shared by every renderer: numbers with units, statuses, changes with their intervals.

Keeping it in one place is what makes the terminal, Markdown, HTML and JUnit outputs say the same thing.
"""

from __future__ import annotations

import time

from orchestrator.report.qualify import JobVerdict
from orchestrator.report.regression import Comparison
from orchestrator.report.units import db, mb, ms, plural, signed

__all__ = ["db", "mb", "ms", "plural", "signed"]  # re-exported: renderers import every wording helper from here

STATUS_WORD = {"pass": "pass", "fail": "FAIL", "warn": "unstable", "n/a": "n/a"}
STATUS_MARK = {"pass": "✅", "fail": "❌", "warn": "⚠️", "n/a": "–"}
CLASS_MARK = {"regression": "❌", "suspicious": "⚠️", "insufficient data": "…", "improvement": "🟢", "no change": "·"}


def git_rev(rev: str | None) -> str:
    """The spec's commit, shortened as git does (12 hex digits), ``-dirty`` kept: the spec file had changes."""
    if not rev:
        return "–"
    sha, dirty = (rev[:-6], "-dirty") if rev.endswith("-dirty") else (rev, "")
    return sha[:12] + dirty


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "–"


def value_text(c: Comparison, value: float | None) -> str:
    return {"latency": ms, "memory": mb, "quality": db}[c.metric](value)


def change_text(c: Comparison) -> str:
    """``+10.2% [+6.1%, +14.0%]`` for latency, ``+45.0 MB [+40.0, +52.0]`` for memory, dB for quality."""
    if c.change is None:
        return "–"
    if c.metric == "latency":
        point = f"{c.change - 1:+.1%}"
        return point if c.low is None or c.high is None else f"{point} [{c.low - 1:+.1%}, {c.high - 1:+.1%}]"
    point = signed(c.change, c.unit)
    if c.low is None or c.high is None or c.low == c.high:
        return point
    return f"{point} [{signed(c.low, '').strip()}, {signed(c.high, '').strip()}]"


def threshold_text(c: Comparison) -> str:
    if c.metric == "latency":
        return f"±{c.threshold:.0%}"
    return f"±{c.threshold:.1f} {c.unit}"


def memory_cell(v: JobVerdict) -> str:
    gate = v.gate("memory")
    if v.job_status == "jetsam":
        return f"jetsam at {mb(v.peak_mb)}" if v.peak_mb is not None else "jetsam"
    if v.peak_mb is None:
        return "–"
    if v.allowed_mb is None:
        return mb(v.peak_mb)
    dagger = "†" if gate is not None and "limit unverified" in gate.flags else ""
    return f"{mb(v.peak_mb)} / {mb(v.allowed_mb)}{dagger}"


def predicted_cell(v: JobVerdict) -> str:
    """The plan's predictions labelled by runtime (``175 MB device (Core ML) · 57 MB emulation (MIL executor)``
    on an emulated device), the same words as ``mlfarm plan`` and the run's job lines."""
    if v.predictions is not None:
        return v.predictions.text()
    return mb(v.predicted_mb) if v.predicted_mb is not None else "–"


def latency_cell(v: JobVerdict) -> str:
    if v.latency is None:
        return "–"
    return f"{ms(v.latency.p50)} / {ms(v.latency.p90)}"


def cv_cell(v: JobVerdict) -> str:
    return "–" if v.latency is None or v.latency.cv is None else f"{v.latency.cv:.1%}"


def psnr_cell(v: JobVerdict) -> str:
    if v.psnr_db is None:
        return "–"
    return db(v.psnr_db) + ("" if v.psnr_source == "device outputs" else " (artifact)")


def problems(v: JobVerdict) -> list[str]:
    """The reasons of every failed or unstable gate, e.g. ``memory: 2,110 MB > 1,741 MB allowed ...``."""
    return [f"{g.gate}: {g.reason}" for g in v.gates if g.status in ("fail", "warn")]


def device_cell(key: str, emulated: bool) -> str:
    return f"{key} (emulated)" if emulated else key
