"""The memory model: predicted_peak = app_footprint + resident_weights + activation_peak + runtime_overhead.

App footprint: what the app itself uses before it loads a model (spec ``app.footprint_mb``, default 25 MB
for a minimal app); a model that fits an empty app may not fit next to a real app's UI and buffers.

Resident weights: a compressed artifact stays compressed in memory only where the OS decompresses on the fly
(iOS/iPadOS 17+, macOS 14+, ``WeightScheme.saves_memory_on``) and the Neural Engine runs it (Core ML's
just-in-time decompression is "mostly on the NE"); elsewhere, and always in mlfarm's MIL executor, weights are
decompressed to dense at load (the executor even holds them in fp32). Activation peak: the static liveness
analysis (orchestrator/mil/analysis.py). Overhead: ``overhead.yaml`` per runtime, device family and compute
units, refitted by ``refit``.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from orchestrator.plan.model import ArtifactFacts, MemoryPrediction, Runtime
from orchestrator.variants import COMPUTE_UNITS, PRECISIONS, WEIGHTS, Variant

MB = 1024 * 1024


@dataclass(frozen=True)
class Overheads:
    """Runtime overhead in MB by (runtime, family, compute units)."""

    table: Mapping[str, Mapping[str, Mapping[str, float]]]

    @classmethod
    def default(cls) -> Overheads:
        text = resources.files("orchestrator.plan").joinpath("overhead.yaml").read_text()
        return cls(yaml.safe_load(text))

    @classmethod
    def load(cls, workdir: Path) -> Overheads:
        """The calibrated table (``.mlfarm/overhead.yaml``, written by ``mlfarm calibrate``) when there is one,
        else the defaults."""
        calibrated = workdir / ".mlfarm" / "overhead.yaml"
        if calibrated.is_file():
            data = yaml.safe_load(calibrated.read_text())
            if isinstance(data, dict):
                return cls(data)
        return cls.default()

    def get(self, runtime: str, family: str, compute_units: str) -> float:
        per_family = self.table.get(runtime, {}).get(family) or self.table.get(runtime, {}).get("iphone", {})
        return float(per_family.get(compute_units, max(per_family.values(), default=150.0)))

    def refit(self, observations: Iterable[tuple[str, str, str, float]]) -> Overheads:
        """The ``calibrate`` hook: replace each (runtime, family, compute units) overhead with the median of
        observed residuals (measured peak - resident weights - activation peak, MB); keep the prior where
        there are fewer than 3 observations."""
        groups: dict[tuple[str, str, str], list[float]] = {}
        for runtime, family, units, residual in observations:
            groups.setdefault((runtime, family, units), []).append(residual)
        table: dict[str, dict[str, dict[str, float]]] = {
            r: {f: dict(u) for f, u in fams.items()} for r, fams in self.table.items()}
        for (runtime, family, units), values in groups.items():
            if len(values) >= 3:
                fitted = round(max(statistics.median(values), 0.0), 1)
                table.setdefault(runtime, {}).setdefault(family, {})[units] = fitted
        return Overheads(table)

    def to_json(self) -> dict[str, Any]:
        return {r: {f: dict(u) for f, u in fams.items()} for r, fams in self.table.items()}


def decompresses_on_the_fly(variant: Variant, os_name: str, os_major: int, compute_units: str,
                            has_ane: bool, runtime: Runtime) -> bool:
    """Whether this variant's weights stay compressed in memory on that device and OS."""
    scheme = WEIGHTS[variant.weights]
    if not scheme.compressed or runtime != "coreml":
        return False
    uses_ane = COMPUTE_UNITS[compute_units].uses_ane and has_ane
    return uses_ane and os_major >= scheme.saves_memory_on.for_os(os_name)


# mlfarm's MIL executor holds decompressed weights as fp32 torch tensors (its kernels compute in fp32), so an
# fp16 program's weights take twice their fp16 size there; activations are held at the program's precision.
EXECUTOR_WEIGHT_BYTES = 4


def predict(facts: ArtifactFacts, variant: Variant, *, os_name: str, os_major: int, compute_units: str,
            family: str, has_ane: bool, runtime: Runtime, overheads: Overheads,
            app_mb: float = 0.0) -> MemoryPrediction:
    compressed = decompresses_on_the_fly(variant, os_name, os_major, compute_units, has_ane, runtime)
    weights = facts.weights_bytes_stored if compressed else facts.weights_bytes_decompressed
    if runtime == "mil-executor":
        weights = weights * EXECUTOR_WEIGHT_BYTES // PRECISIONS[variant.precision].bytes_per_element
    return MemoryPrediction(
        weights_mb=weights / MB,
        weights_basis="compressed" if compressed else "decompressed",
        activations_mb=facts.activation_peak_bytes / MB,
        overhead_mb=overheads.get(runtime, family, compute_units),
        app_mb=app_mb,
    )
