"""The Report: one run's qualification verdicts and regression comparisons, ready for any renderer.

A Report is built once (``build_report``), is immutable, and every renderer reads only it: the terminal,
Markdown, HTML, JUnit and JSON outputs therefore always agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.report.data import Baseline, DeviceData, RunData
from orchestrator.report.history import Series
from orchestrator.report.qualify import JobVerdict
from orchestrator.report.regression import Comparison, Key
from orchestrator.report.units import plural

CLASS_ORDER = ("regression", "suspicious", "insufficient data", "improvement", "no change")


@dataclass(frozen=True)
class Report:
    run: RunData
    baseline: Baseline
    verdicts: tuple[JobVerdict, ...]
    comparisons: tuple[Comparison, ...]
    uncompared: tuple[Key, ...]  # candidate jobs with no counterpart in the baseline
    seed: int
    generated_at: float
    history: tuple[Series, ...] = ()  # latency per run up to this one, with change points (HTML trend plot)

    @property
    def gating(self) -> tuple[JobVerdict, ...]:
        return tuple(v for v in self.verdicts if v.gating)

    @property
    def failed(self) -> tuple[JobVerdict, ...]:
        return tuple(v for v in self.gating if v.status == "fail")

    @property
    def unstable(self) -> tuple[JobVerdict, ...]:
        return tuple(v for v in self.gating if (g := v.gate("stability")) is not None and g.status == "warn")

    @property
    def regressions(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if c.classification == "regression")

    @property
    def passed(self) -> bool:
        """Every gate of every gating job passes and no regression was found (and something was measured)."""
        return bool(self.gating) and not self.failed and not self.regressions

    def count(self, classification: str) -> int:
        return sum(1 for c in self.comparisons if c.classification == classification)

    def device(self, key: str) -> DeviceData | None:
        return self.run.device(key)

    @property
    def headline(self) -> str:
        gates = [g for v in self.gating for g in v.gates]
        failed = [g for g in gates if g.status == "fail"]
        passed = sum(1 for g in gates if g.status == "pass")
        if not self.gating:
            return "FAIL: nothing was measured (the run has no job)"
        parts = [plural(len(failed), "gate failure") if failed else f"all {passed} gates passed"]
        if not self.baseline.runs:
            parts.append("no baseline")
        elif self.regressions:
            parts.append(plural(len(self.regressions), "regression"))
        else:
            parts.append("no regression")
        if self.count("suspicious"):
            parts.append(f"{self.count('suspicious')} suspicious")
        if self.unstable:
            parts.append(plural(len(self.unstable), "unstable measurement"))
        return ("PASS" if self.passed else "FAIL") + ": " + ", ".join(parts)

    @property
    def notes(self) -> tuple[str, ...]:
        """Things a reader must know to trust the figures (defaults used, partial baselines, emulation)."""
        out = list(self.run.warnings)
        if self.baseline.note:
            out.append(self.baseline.note)
        for r in self.baseline.runs:
            out += [f"baseline {r.id}: {w}" for w in r.warnings]
        emulated = [d.key for d in self.run.devices if d.emulated]
        if emulated:
            out.append(f"emulated devices ({', '.join(emulated)}): latency is this machine's, not device latency; "
                       "memory limits are the profiles' figures applied by a watchdog")
        unverified = [d.key for d in self.run.devices if d.limit_unverified]
        if unverified:
            out.append(f"† memory limits no source confirms: {', '.join(unverified)}")
        executor = sorted({j.device_key for j in self.run.jobs if j.runtime == "mil-executor"})
        if executor:
            out.append(f"latency on {', '.join(executor)} is mlfarm's MIL executor on this machine, not Core ML")
        hot = [f"{j.device_key} {j.component} ({j.thermal})" for j in self.run.jobs
               if j.thermal in ("serious", "critical")]
        if hot:
            out.append(f"thermal state high after: {', '.join(hot)}; latency may be throttled")
        shared = [f"{j.device_key} {j.component} {j.variant}" for j in self.run.jobs if j.lane_shared]
        if shared:
            out.append(f"measured while another measurement shared this machine's CPU (latency may be inflated): "
                       f"{', '.join(shared)}")
        out += [self.uncompared_note(k) for k in self.uncompared]
        return tuple(out)

    def uncompared_note(self, key: Key) -> str:
        """Names the job and the runs it was looked for in (usually: the plan chose another variant there)."""
        device, component, variant, units = key
        where = ", ".join(self.baseline.ids)
        runs = "baseline run" if len(self.baseline.ids) == 1 else "baseline runs"
        return f"uncompared: {device} {component} {variant} {units}: not in {runs} {where}"

    def job_label(self, device_key: str, component: str, variant: str, compute_units: str) -> str:
        return f"{device_key} · {component} · {variant} · {compute_units}"
