"""``make_plan``: for each device, every candidate judged by the rules and the memory model, and one chosen per
component: the highest quality (least compression), then the lowest predicted latency, then the smallest.
Latencies carry intervals (a measurement its spread, an estimate its calibrated error): when the previous run's
choice is still eligible, of the same quality, and its interval overlaps the best candidate's, it is kept
(hysteresis), so a noisy measurement compared with an estimate does not flip the plan between identical runs.

Pure: no I/O. Inputs are the spec, the target devices (resolved profiles), what is known of each built
artifact (``ArtifactFacts`` from manifests), measured history, and the overhead table.

Emulated targets (``host:ID``, ``virtual:ID``) are planned as the device they stand for (Core ML on that
device decides what ships); their jobs run on mlfarm's MIL executor, so each candidate also carries the
prediction for that runtime (``run_memory``), the figure stored next to the measured peak.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.plan.latency import History, calibrate, estimate
from orchestrator.plan.memory import Overheads, predict
from orchestrator.plan.model import ArtifactFacts, Candidate, DevicePlan, MemoryPrediction, Plan, Reason, Runtime
from orchestrator.plan.rules import RULES, Context
from orchestrator.profiles.model import DeviceProfile
from orchestrator.spec.model import ReleaseSpec
from orchestrator.variants import WEIGHTS, Variant


@dataclass(frozen=True)
class PlanTarget:
    """One device to plan for. ``runs_on`` is the runtime its jobs will use (the MIL executor for host and
    virtual devices); selection always models what ships (Core ML) unless the profile is the host itself."""

    key: str
    profile: DeviceProfile
    os_major: int | None = None  # the OS the device runs; default: the latest its profile supports
    runs_on: Runtime = "coreml"

    @property
    def selection_runtime(self) -> Runtime:
        return "mil-executor" if self.profile.family == "host" else "coreml"


def _fmt(mb: float) -> str:
    return f"{mb:,.0f} MB"


def _memory_reason(pred: MemoryPrediction, limit: float, allowed: float, headroom: float) -> Reason | None:
    if pred.total_mb <= allowed:
        return None
    return Reason("memory", f"predicted {_fmt(pred.total_mb)} > {_fmt(allowed)} allowed "
                            f"({_fmt(limit)} limit - {headroom:.0%})")


def _weight_notes(variant: Variant, pred: MemoryPrediction, os_name: str, os_major: int, runtime: Runtime,
                  compute_units: str) -> tuple[str, ...]:
    scheme = WEIGHTS[variant.weights]
    if not scheme.compressed or runtime != "coreml" or pred.weights_basis == "compressed":
        return ()
    need = scheme.saves_memory_on.for_os(os_name)
    if os_name in ("iOS", "iPadOS", "macOS") and os_major < need:
        label = "macOS" if os_name == "macOS" else "iOS"
        return (f"{variant.weights} brings no runtime memory saving on {label} {os_major}: Core ML decompresses "
                f"the weights to fp16 at load (just-in-time decompression needs {label} {need})",)
    return (f"{variant.weights} weights are decompressed at load off the Neural Engine ({compute_units})",)


def _candidate(target: PlanTarget, spec: ReleaseSpec, component: str, variant: Variant, units: str,
               facts: ArtifactFacts | None, history: History, overheads: Overheads, os_major: int,
               limit: float, allowed: float) -> Candidate:
    p = target.profile
    runtime = target.selection_runtime
    tier = WEIGHTS[variant.weights].quality_tier
    if facts is None:
        empty = MemoryPrediction(0.0, "decompressed", 0.0, 0.0)
        unknown = estimate(p, component=component, variant=variant.id, precision=variant.precision,
                           compute_units=units, flops=0, runtime=runtime, history=history)
        return Candidate(component, variant.id, units, empty, unknown, None, tier, verdict="rejected",
                         reasons=(Reason("not-built", "no analysed artifact: run `mlfarm build` and "
                                                      "`mlfarm analyze` for this spec"),))
    has_ane = p.has_usable_ane
    kw = {"os_name": p.os.name, "os_major": os_major, "compute_units": units, "family": p.family,
          "has_ane": has_ane, "overheads": overheads, "app_mb": spec.app.footprint_mb}
    pred = predict(facts, variant, runtime=runtime, **kw)  # type: ignore[arg-type]
    run_pred = None if target.runs_on == runtime else predict(facts, variant, runtime=target.runs_on, **kw)  # type: ignore[arg-type]
    ctx = Context(p, p.os.name, os_major, runtime, variant, units, facts, pred, spec.gates.min_psnr_db)
    reasons = [Reason(rule.name, msg) for rule in RULES if (msg := rule.check(ctx))]
    mem = _memory_reason(pred, limit, allowed, spec.gates.memory_headroom)
    if mem:
        reasons.append(mem)
    latency = estimate(p, component=component, variant=variant.id, precision=variant.precision,
                       compute_units=units, flops=facts.flops, runtime=runtime, history=history)
    return Candidate(component, variant.id, units, pred, latency, facts.psnr_db, tier,
                     verdict="rejected" if reasons else "eligible", reasons=tuple(reasons),
                     notes=_weight_notes(variant, pred, p.os.name, os_major, runtime, units),
                     artifact_id=facts.artifact_id, run_memory=run_pred)


def _rank(c: Candidate) -> tuple[float, float, float, str, str]:
    latency = c.latency.ms if c.latency.ms is not None else math.inf
    return (-c.quality_tier, latency, c.predicted_mb, c.variant, c.compute_units)


def _warnings(target: PlanTarget, increased: bool) -> tuple[str, ...]:
    p = target.profile
    out = []
    key = "memory.app_limit_increased_mb" if increased and p.memory.app_limit_increased_mb else "memory.app_limit_mb"
    if not p.is_verified(key):
        out.append(f"the memory limit of {p.id} is not confirmed by a source ({p.memory.basis}); measure it")
    if not p.is_verified("os.max"):
        out.append(f"{p.os.name} {p.os.max} support is unverified")
    if p.ram_assumed:
        out.append(f"RAM not given: planned for the smallest option ({p.ram_gb} GB); use {p.model_id}@NNgb")
    if increased and p.memory.app_limit_increased_mb is None:
        out.append("the app has the increased-memory-limit entitlement, but no figure is known for this device: "
                   "the default limit is used")
    if target.runs_on != target.selection_runtime:
        out.append("emulated: jobs run on mlfarm's MIL executor under this device's memory limit; "
                   "latencies are not the device's")
    return tuple(out)


def _choose(ok: list[Candidate], previous: tuple[str, str] | None) -> Candidate:
    """The best-ranked candidate, unless the previous run's choice is still eligible, of the same quality, and
    not significantly slower (overlapping latency intervals): then that one, so noise does not flip the plan."""
    ranked = sorted(ok, key=_rank)
    best = ranked[0]
    kept = next((c for c in ranked if (c.variant, c.compute_units) == previous), None)
    if kept is None or kept is best or kept.quality_tier != best.quality_tier or \
            not kept.latency.ties_with(best.latency):
        return dataclasses.replace(best, verdict="chosen")
    note = (f"kept from the previous run: not significantly slower than {best.variant} ({best.compute_units}), "
            f"{_interval(kept)} vs {_interval(best)}")
    return dataclasses.replace(kept, verdict="chosen", notes=(*kept.notes, note))


def _interval(c: Candidate) -> str:
    lat = c.latency
    if lat.ms is None:
        return "latency unknown"
    if lat.low_ms is None or lat.high_ms is None:
        return f"{lat.ms:.3g} ms ({lat.source})"
    return f"{lat.ms:.3g} ms [{lat.low_ms:.3g}, {lat.high_ms:.3g}] ({lat.source})"


def plan_device(spec: ReleaseSpec, target: PlanTarget, artifacts: Mapping[tuple[str, str], ArtifactFacts],
                history: History, overheads: Overheads,
                previous: Mapping[str, tuple[str, str]] | None = None) -> DevicePlan:
    """One device's plan: every candidate judged, one chosen per component (or None). ``previous``: component ->
    (variant, compute units) the previous run chose on this device (hysteresis)."""
    previous = previous or {}
    p = target.profile
    increased = spec.app.increased_memory_limit
    limit = float(p.limit_mb(increased=increased))
    headroom = spec.gates.memory_headroom
    allowed = limit * (1.0 - headroom)
    os_major = target.os_major if target.os_major is not None else p.os.max
    units_list = ("cpu_only",) if p.family == "host" else spec.variants.compute_units
    candidates = [_candidate(target, spec, comp, v, u, artifacts.get((comp, v.id)), history, overheads, os_major,
                             limit, allowed)
                  for comp in spec.model.components for v in spec.variant_list() for u in units_list]
    scaled = calibrate([c.latency for c in candidates])
    candidates = [dataclasses.replace(c, latency=lat) for c, lat in zip(candidates, scaled, strict=True)]
    chosen: dict[str, Candidate | None] = {}
    for comp in spec.model.components:
        ok = [c for c in candidates if c.component == comp and not c.rejected]
        chosen[comp] = _choose(ok, previous.get(comp)) if ok else None
    final = tuple(_chosen_or(chosen.get(c.component), c) for c in candidates)
    return DevicePlan(
        key=target.key, profile_id=p.id, profile_name=p.name, family=p.family, os_name=p.os.name,
        os_major=os_major, runtime=target.runs_on, limit_mb=limit, allowed_mb=round(allowed, 1),
        headroom=headroom, increased_limit=increased, candidates=final,
        chosen=chosen, warnings=_warnings(target, increased),
    )


def _chosen_or(chosen: Candidate | None, c: Candidate) -> Candidate:
    same = chosen is not None and (chosen.variant, chosen.compute_units) == (c.variant, c.compute_units)
    return chosen if same and chosen is not None else c


def make_plan(spec: ReleaseSpec, targets: Sequence[PlanTarget], artifacts: Mapping[tuple[str, str], ArtifactFacts],
              history: History | None = None, overheads: Overheads | None = None,
              previous: Mapping[tuple[str, str], tuple[str, str]] | None = None) -> Plan:
    """The plan for every target device. Pure: same inputs, same plan. ``previous``: (device key, component) ->
    (variant, compute units) chosen by the previous run (``facts.previous_choices``); a tie keeps it."""
    history = history or History()
    overheads = overheads or Overheads.default()
    previous = previous or {}
    devices = tuple(plan_device(spec, t, artifacts, history, overheads,
                                {comp: v for (key, comp), v in previous.items() if key == t.key}) for t in targets)
    return Plan(spec.name, spec.digest, tuple(spec.model.components), devices)
