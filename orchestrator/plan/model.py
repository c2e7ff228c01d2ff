"""The Plan: a frozen, printable record of what mlfarm would run on each device, and why.

    Plan
      devices: DevicePlan per target device
        candidates: every (component, variant, compute units) with its predicted memory, latency, quality,
                    and a verdict: chosen | eligible | rejected (with the rule and a sentence)
        chosen:     component -> the chosen Candidate, or None when nothing passes

Nothing here does I/O; ``make_plan`` (select.py) builds it and ``to_json`` serialises it into the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Verdict = Literal["chosen", "eligible", "rejected"]
Runtime = Literal["coreml", "mil-executor"]


@dataclass(frozen=True)
class ArtifactFacts:
    """What the planner needs to know about one built artifact (from its manifest's analysis/quality)."""

    component: str
    variant: str
    weights_bytes_stored: int
    weights_bytes_decompressed: int
    activation_peak_bytes: int
    flops: float
    psnr_db: float | None = None
    artifact_id: str | None = None
    # Whether the program computes attention (softmax / fused SDPA ops); rules about attention layouts apply
    # only then. True when unknown (an old manifest without op counts), as before this was read.
    has_attention: bool = True
    # what mlfarm's MIL executor holds (host and virtual devices); None for manifests analysed before these
    # figures existed (the memory model then approximates them from the two weight figures)
    executor_weights_bytes: int | None = None
    executor_activation_peak_bytes: int | None = None


@dataclass(frozen=True)
class Reason:
    rule: str
    message: str


@dataclass(frozen=True)
class MemoryPrediction:
    weights_mb: float
    weights_basis: Literal["compressed", "decompressed"]
    activations_mb: float
    overhead_mb: float
    app_mb: float = 0.0  # the app's own footprint before the model loads (spec app.footprint_mb)

    @property
    def total_mb(self) -> float:
        return self.app_mb + self.weights_mb + self.activations_mb + self.overhead_mb


@dataclass(frozen=True)
class LatencyEstimate:
    """Measured history when there is some; else a FLOPs estimate, scaled by how far off the estimates were
    for the candidates of the same device that do have history (``scale``), so the two can be compared."""

    ms: float | None
    source: Literal["measured", "estimate", "unknown"]
    estimate_ms: float | None = None  # the unscaled FLOPs estimate, also kept for measured candidates
    scale: float = 1.0
    # The interval the latency is believed to lie in: a measurement's spread over its launches and runs, an
    # estimate's calibrated error. Candidates whose intervals overlap are not significantly different (a tie).
    low_ms: float | None = None
    high_ms: float | None = None

    def ties_with(self, other: LatencyEstimate) -> bool:
        """Not significantly different: both unknown, or overlapping intervals."""
        if self.ms is None or other.ms is None:
            return self.ms is None and other.ms is None
        lo, hi = self.low_ms or self.ms, self.high_ms or self.ms
        other_lo, other_hi = other.low_ms or other.ms, other.high_ms or other.ms
        return lo <= other_hi and other_lo <= hi


@dataclass(frozen=True)
class Candidate:
    component: str
    variant: str
    compute_units: str
    memory: MemoryPrediction
    latency: LatencyEstimate
    psnr_db: float | None
    quality_tier: float
    verdict: Verdict = "eligible"
    reasons: tuple[Reason, ...] = ()
    notes: tuple[str, ...] = ()
    artifact_id: str | None = None
    # The prediction for the runtime the job will actually use when it differs (emulated devices run
    # mlfarm's MIL executor): the figure stored next to the measured peak.
    run_memory: MemoryPrediction | None = None

    @property
    def run_predicted_mb(self) -> float:
        return (self.run_memory or self.memory).total_mb

    @property
    def predicted_mb(self) -> float:
        return self.memory.total_mb

    @property
    def rejected(self) -> bool:
        return bool(self.reasons)


@dataclass(frozen=True)
class DevicePlan:
    key: str
    profile_id: str
    profile_name: str
    family: str
    os_name: str
    os_major: int
    runtime: Runtime
    limit_mb: float
    allowed_mb: float
    headroom: float
    increased_limit: bool
    candidates: tuple[Candidate, ...]
    chosen: dict[str, Candidate | None] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def for_component(self, component: str) -> list[Candidate]:
        return [c for c in self.candidates if c.component == component]


@dataclass(frozen=True)
class Plan:
    spec_name: str
    spec_digest: str
    components: tuple[str, ...]
    devices: tuple[DevicePlan, ...]

    def device(self, key: str) -> DevicePlan:
        for d in self.devices:
            if key in (d.key, d.profile_id):
                return d
        raise KeyError(key)

    def to_json(self) -> dict[str, Any]:
        from orchestrator.plan.predictions import candidate_predictions
        from orchestrator.serialize import jsonable

        def cand(d: DevicePlan, c: Candidate) -> dict[str, Any]:
            data: dict[str, Any] = jsonable(c)
            data["predicted_mb"] = round(c.predicted_mb, 1)
            data["run_predicted_mb"] = round(c.run_predicted_mb, 1)
            data["predictions"] = candidate_predictions(d, c).to_json()  # both figures, labelled by runtime
            return data

        return {
            "spec_name": self.spec_name, "spec_digest": self.spec_digest, "components": list(self.components),
            "devices": [
                {**{k: jsonable(getattr(d, k)) for k in ("key", "profile_id", "profile_name", "family", "os_name",
                                                         "os_major", "runtime", "limit_mb", "allowed_mb", "headroom",
                                                         "increased_limit", "warnings")},
                 "chosen": {comp: (cand(d, c) if c else None) for comp, c in d.chosen.items()},
                 "candidates": [cand(d, c) for c in d.candidates]}
                for d in self.devices
            ],
        }
