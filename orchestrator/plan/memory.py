"""The memory model: predicted_peak = app_footprint + resident_weights + activation_peak + runtime_overhead.

App footprint: what the app itself uses before it loads a model (spec ``app.footprint_mb``, default 25 MB
for a minimal app); a model that fits an empty app may not fit next to a real app's UI and buffers.

Resident weights: a compressed artifact stays compressed in memory only where the OS decompresses on the fly
(iOS/iPadOS 17+, macOS 14+, ``WeightScheme.saves_memory_on``) and the Neural Engine runs it (Core ML's
just-in-time decompression is "mostly on the NE"); elsewhere, and always in mlfarm's MIL executor, weights are
decompressed to dense at load. Activation peak: the static liveness analysis (orchestrator/mil/analysis.py).
Overhead: ``overhead.yaml`` per runtime, device family and compute units, plus a per-component offset
(``components:``), refitted by ``refit``.

Two runtimes, two predictions: ``coreml`` is what ships (a real device; it decides the plan), ``mil-executor``
is what the host and virtual devices run, whose measured peak is compared with its own prediction: the
executor's weights (the loaded program's constants plus fp32 copies of every fp16 or decompressed weight) and
its activation peak (liveness plus the fp32 temporaries of fp16 kernels), both from
``orchestrator/mil/executor_memory.py`` via the artifact's analysis.
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
COMPONENTS_KEY = "components"  # overhead.yaml: per-runtime offsets by component, not a runtime


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

    def get(self, runtime: str, family: str, compute_units: str, component: str | None = None) -> float:
        """The runtime's overhead for a device family and compute units, plus the component's own offset."""
        per_family = self.table.get(runtime, {}).get(family) or self.table.get(runtime, {}).get("iphone", {})
        base = float(per_family.get(compute_units, max(per_family.values(), default=150.0)))
        return base + (self.component_offset(runtime, component) if component else 0.0)

    def component_offset(self, runtime: str, component: str) -> float:
        """How far a component's overhead sits from its runtime's (``components:`` in the table, MB)."""
        offsets = self.table.get(COMPONENTS_KEY, {}).get(runtime, {})
        return float(offsets.get(component, 0.0)) if isinstance(offsets, Mapping) else 0.0

    def refit(self, observations: Iterable[tuple[str, str, str, float]],
              components: Iterable[tuple[str, str, float]] = ()) -> Overheads:
        """The ``calibrate`` hook: replace each (runtime, family, compute units) overhead with the median of
        observed residuals (measured peak - app - resident weights - activation peak, MB); keep the prior where
        there are fewer than 3 observations. ``components`` are (runtime, component, residual) of the same jobs:
        each component with 3 or more gets the median of its residuals minus its runtime's fitted overhead
        (one runtime's first-use state is shared; a text encoder and a UNet still differ in what their
        kernels leave behind)."""
        groups: dict[tuple[str, str, str], list[float]] = {}
        for runtime, family, units, residual in observations:
            groups.setdefault((runtime, family, units), []).append(residual)
        table: dict[str, dict[str, dict[str, float]]] = {
            r: {f: dict(u) for f, u in fams.items()} for r, fams in self.table.items()}
        for (runtime, family, units), values in groups.items():
            if len(values) >= 3:
                fitted = round(max(statistics.median(values), 0.0), 1)
                table.setdefault(runtime, {}).setdefault(family, {})[units] = fitted
        by_runtime: dict[str, list[float]] = {}
        by_component: dict[tuple[str, str], list[float]] = {}
        for runtime, component, residual in components:
            by_runtime.setdefault(runtime, []).append(residual)
            by_component.setdefault((runtime, component), []).append(residual)
        for (runtime, component), values in by_component.items():
            if len(values) >= 3:
                offset = statistics.median(values) - max(statistics.median(by_runtime[runtime]), 0.0)
                table.setdefault(COMPONENTS_KEY, {}).setdefault(runtime, {})[component] = round(offset, 1)
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


# Manifests analysed before the executor's own figures existed: the executor then holds the loaded constants
# (about the stored bytes) plus an fp32 copy of each weight an fp16 program decompresses (4 bytes per element).
EXECUTOR_WEIGHT_BYTES = 4


def executor_weights(facts: ArtifactFacts, variant: Variant) -> int:
    """Bytes of weights mlfarm's MIL executor holds for this artifact (orchestrator/mil/executor_memory.py)."""
    if facts.executor_weights_bytes is not None:
        return facts.executor_weights_bytes
    width = PRECISIONS[variant.precision].bytes_per_element
    if width >= EXECUTOR_WEIGHT_BYTES:  # fp32 constants are shared with the loaded program, not copied
        return facts.weights_bytes_decompressed
    return facts.weights_bytes_stored + facts.weights_bytes_decompressed * EXECUTOR_WEIGHT_BYTES // width


def predict(facts: ArtifactFacts, variant: Variant, *, os_name: str, os_major: int, compute_units: str,
            family: str, has_ane: bool, runtime: Runtime, overheads: Overheads,
            app_mb: float = 0.0) -> MemoryPrediction:
    """The predicted peak on one runtime: Core ML's (what ships to a device) or mlfarm's MIL executor (what
    runs on the host and virtual devices: its weight copies and fp16 kernels' temporaries)."""
    compressed = decompresses_on_the_fly(variant, os_name, os_major, compute_units, has_ane, runtime)
    weights = facts.weights_bytes_stored if compressed else facts.weights_bytes_decompressed
    activations = facts.activation_peak_bytes
    if runtime == "mil-executor":
        weights = executor_weights(facts, variant)
        activations = facts.executor_activation_peak_bytes or activations
    return MemoryPrediction(
        weights_mb=weights / MB,
        weights_basis="compressed" if compressed else "decompressed",
        activations_mb=activations / MB,
        overhead_mb=overheads.get(runtime, family, compute_units, facts.component),
        app_mb=app_mb,
    )
