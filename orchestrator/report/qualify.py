"""Release qualification: every measured job against the spec's gates, each verdict with its reason.

Gates per job (device x component x variant x compute units):

    memory     measured peak <= limit x (1 - headroom); a jetsam kill fails; an error/timeout fails
    latency    p90 of the timed predictions <= the budget for the component and the device family
    quality    PSNR of the device's outputs (else the artifact's build-time PSNR) >= min_psnr_db
    stability  coefficient of variation of the latencies <= max_cv; above it the measurement is
               "unstable" (a warning: rerun advised), not a failure

A job *gates* the release when it is the plan's choice for its (device, component), or when the plan names
no choice. A (device, component) with no job at all, or for which the plan found no variant, fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from orchestrator.plan.predictions import Predictions
from orchestrator.quantiles import spread
from orchestrator.report.data import DeviceData, JobData, RunData
from orchestrator.report.units import db, mb, ms

Status = Literal["pass", "fail", "warn", "n/a"]
GATES = ("memory", "latency", "quality", "stability")
_RANK = {"fail": 3, "warn": 2, "pass": 1, "n/a": 0}


@dataclass(frozen=True)
class GateVerdict:
    gate: str  # memory | latency | quality | stability | measured
    status: Status
    reason: str
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    flags: tuple[str, ...] = ()  # e.g. "limit unverified", "emulated: not device latency"


@dataclass(frozen=True)
class LatencyStats:
    n: int
    p10: float
    p50: float
    p90: float
    mean: float
    cv: float | None  # None with fewer than 2 samples

    @classmethod
    def of(cls, values: tuple[float, ...]) -> LatencyStats | None:
        if not values:
            return None
        a = np.asarray(values, dtype=float)
        mean = float(a.mean())
        cv = float(a.std(ddof=1) / mean) if len(a) >= 2 and mean > 0 else None
        s = spread(values)  # the one percentile definition (orchestrator/quantiles.py)
        return cls(len(a), s.p10, s.p50, s.p90, mean, cv)


@dataclass(frozen=True)
class JobVerdict:
    """The gates of one job (or of a (device, component) that has no job: ``job_id`` None)."""

    device_key: str
    component: str
    variant: str
    compute_units: str
    job_id: str | None
    job_status: str
    gating: bool
    emulated: bool
    gates: tuple[GateVerdict, ...]
    latency: LatencyStats | None = None
    peak_mb: float | None = None
    predicted_mb: float | None = None
    limit_mb: float | None = None
    allowed_mb: float | None = None
    system_delta_mb: float | None = None
    psnr_db: float | None = None
    psnr_source: str | None = None  # "device outputs" | "artifact"
    # the plan's predictions labelled by runtime (device's, and the emulation's on an emulated device)
    predictions: Predictions | None = None

    @property
    def status(self) -> Status:
        return max((g.status for g in self.gates), key=_RANK.__getitem__, default="n/a")

    def gate(self, name: str) -> GateVerdict | None:
        return next((g for g in self.gates if g.gate == name), None)


# ---- one gate each ---------------------------------------------------------------------------------------
def _limit(job: JobData, device: DeviceData | None) -> float | None:
    for value in (job.limit_mb, job.value("limit_mb"), device.limit_mb if device else None):
        if value is not None:
            return float(value)
    return None


def _jetsam_reason(job: JobData) -> str:
    event = next((e for e in job.events if e.kind == "jetsam"), None)
    d = event.data if event is not None else {}
    what = "killed by emulated jetsam" if d.get("emulated") else "killed by jetsam"
    footprint = d.get("footprint_mb", job.value("peak_footprint_mb"))
    if isinstance(footprint, int | float):
        what += f" at {mb(footprint)}"
    detail = [f"limit {mb(d['limit_mb'])}" if isinstance(d.get("limit_mb"), int | float) else "",
              str(d.get("reason") or "")]
    detail = [x for x in detail if x]
    return what + (f" ({', '.join(detail)})" if detail else "")


def memory_gate(job: JobData, device: DeviceData | None, headroom: float) -> GateVerdict:
    limit = _limit(job, device)
    flags = []
    if device is not None and device.limit_unverified and job.limit_mb is None:
        flags.append("limit unverified")
    if device is not None and device.emulated:
        flags.append("emulated limit")
    allowed = limit * (1 - headroom) if limit is not None else None
    peak = job.value("peak_footprint_mb")
    if job.status == "jetsam":
        return GateVerdict("memory", "fail", _jetsam_reason(job), peak, allowed, "MB", tuple(flags))
    if job.status != "ok":
        return GateVerdict("memory", "fail", _not_run(job), None, allowed, "MB", tuple(flags))
    if peak is None:
        return GateVerdict("memory", "fail", "no peak footprint recorded", None, allowed, "MB", tuple(flags))
    if limit is None or allowed is None:
        return GateVerdict("memory", "n/a", f"{mb(peak)} measured; no limit known", peak, None, "MB", tuple(flags))
    rule = f"{mb(allowed)} allowed ({mb(limit)} limit − {headroom:.0%} headroom)"
    if peak > allowed:
        over = "over the limit itself" if peak > limit else "inside the headroom"
        return GateVerdict("memory", "fail", f"{mb(peak)} > {rule}; {over}", peak, allowed, "MB", tuple(flags))
    return GateVerdict("memory", "pass", f"{mb(peak)} ≤ {rule}", peak, allowed, "MB", tuple(flags))


def _not_run(job: JobData) -> str:
    if job.status == "timeout":
        return "timed out" + (f": {job.error}" if job.error else "")
    if job.status == "error":
        return "job failed" + (f": {job.error}" if job.error else "")
    return f"not measured (job {job.status})" + (f": {job.error}" if job.error else "")


def latency_gate(job: JobData, device: DeviceData | None, stats: LatencyStats | None, budget: float | None,
                 family: str) -> GateVerdict:
    flags = ("emulated: not device latency",) if device is not None and device.emulated else ()
    if job.status != "ok":
        return GateVerdict("latency", "n/a", f"not measured (job {job.status})", None, budget, "ms", flags)
    if stats is None:
        return GateVerdict("latency", "fail", "no latency samples recorded", None, budget, "ms", flags)
    if budget is None:
        return GateVerdict("latency", "n/a", f"p90 {ms(stats.p90)}; no budget for {job.component} on {family}",
                           stats.p90, None, "ms", flags)
    if stats.p90 > budget:
        return GateVerdict("latency", "fail", f"p90 {ms(stats.p90)} > {ms(budget)} budget", stats.p90, budget,
                           "ms", flags)
    return GateVerdict("latency", "pass", f"p90 {ms(stats.p90)} ≤ {ms(budget)} budget", stats.p90, budget, "ms",
                       flags)


def quality_gate(job: JobData, min_psnr: float) -> tuple[GateVerdict, float | None, str | None]:
    device_psnr = job.value("psnr_db")
    psnr, source = (device_psnr, "device outputs") if device_psnr is not None else (job.artifact_psnr_db, "artifact")
    if psnr is None:
        why = "not measured (job " + job.status + ")" if job.status != "ok" else "no PSNR: no outputs returned and " \
              "the artifact records no quality figure"
        return GateVerdict("quality", "n/a", why, None, min_psnr, "dB"), None, None
    if psnr < min_psnr:
        return GateVerdict("quality", "fail", f"PSNR {db(psnr)} < {db(min_psnr)} ({source})", psnr, min_psnr,
                           "dB"), psnr, source
    return GateVerdict("quality", "pass", f"PSNR {db(psnr)} ≥ {db(min_psnr)} ({source})", psnr, min_psnr,
                       "dB"), psnr, source


def stability_gate(stats: LatencyStats | None, max_cv: float) -> GateVerdict:
    if stats is None or stats.cv is None:
        return GateVerdict("stability", "n/a", "fewer than 2 latency samples", None, max_cv, "")
    if stats.cv > max_cv:
        return GateVerdict("stability", "warn", f"unstable measurement: CV {stats.cv:.1%} > {max_cv:.0%}; "
                           "rerun advised", stats.cv, max_cv, "")
    return GateVerdict("stability", "pass", f"CV {stats.cv:.1%} ≤ {max_cv:.0%}", stats.cv, max_cv, "")


# ---- a run -------------------------------------------------------------------------------------------------
def _gating(run: RunData, job: JobData) -> bool:
    choice = run.choices.get((job.device_key, job.component))
    if choice is None:
        return True
    return choice.variant == job.variant and choice.compute_units in (None, job.compute_units)


def qualify_job(run: RunData, job: JobData) -> JobVerdict:
    device = run.device(job.device_key)
    family = device.family if device else "unknown"
    stats = LatencyStats.of(job.values("latency_ms")) if job.status == "ok" else None
    limit = _limit(job, device)
    quality, psnr, source = quality_gate(job, run.gates.min_psnr_db)
    gates = (
        memory_gate(job, device, run.gates.memory_headroom),
        latency_gate(job, device, stats, run.gates.latency_budget(job.component, family), family),
        quality,
        stability_gate(stats, run.gates.max_cv) if job.status == "ok" else
        GateVerdict("stability", "n/a", f"not measured (job {job.status})"),
    )
    predicted = job.predicted_peak_mb if job.predicted_peak_mb is not None else job.value("predicted_peak_mb")
    predictions = run.predictions.get(job.key)
    return JobVerdict(
        device_key=job.device_key, component=job.component, variant=job.variant,
        compute_units=job.compute_units, job_id=job.id, job_status=job.status, gating=_gating(run, job),
        emulated=bool(device and device.emulated), gates=gates, latency=stats,
        peak_mb=job.value("peak_footprint_mb"), predicted_mb=predicted, limit_mb=limit,
        allowed_mb=limit * (1 - run.gates.memory_headroom) if limit is not None else None,
        system_delta_mb=job.value("system_delta_mb"), psnr_db=psnr, psnr_source=source, predictions=predictions,
    )


def _missing(run: RunData, device: DeviceData, component: str) -> JobVerdict:
    choice = run.choices.get((device.key, component))
    if choice is not None and choice.variant is None:
        reason = f"no variant fits: {choice.reason}"
    else:
        reason = "not measured: the run has no job for this component on this device"
    return JobVerdict(device.key, component, choice.variant if choice and choice.variant else "-",
                      choice.compute_units if choice and choice.compute_units else "-", None, "missing", True,
                      device.emulated, (GateVerdict("measured", "fail", reason),))


def qualify_run(run: RunData) -> tuple[JobVerdict, ...]:
    """Verdicts for every job, plus a failing verdict for each (device, component) nothing gates."""
    verdicts = [qualify_job(run, job) for job in run.jobs]
    covered = {(v.device_key, v.component) for v in verdicts if v.gating}
    for device in run.devices:
        for component in run.components:
            if (device.key, component) not in covered:
                verdicts.append(_missing(run, device, component))
    order = {d.key: i for i, d in enumerate(run.devices)}
    comp = {c: i for i, c in enumerate(run.components)}
    verdicts.sort(key=lambda v: (order.get(v.device_key, 99), comp.get(v.component, 99), not v.gating, v.variant,
                                 v.compute_units))
    return tuple(verdicts)
