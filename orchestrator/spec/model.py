"""The release spec: what to build, for which devices, how to measure it and which gates it must pass.

    name: tiny-sd
    model:
      source: builtin:tiny-sd          # or hf://org/repo@revision, a diffusers folder, Model.mlpackage, a folder
                                       # of .mlpackage files
      components:
        unet:
          inputs:
            sample: {shape: [2, 4, 32, 32]}
            timestep: {shape: [2]}
            encoder_hidden_states: {shape: [2, 77, 64]}
    variants: {precision: [fp16], weights: [none, palette6], attention: [split_einsum_v2]}
    devices: [host, virtual:iphone-12]
    measure: {warmup: 1, iterations: 10}
    gates: {min_psnr_db: 35, memory_headroom: 0.15}
    baseline: last

Every section but ``name``, ``model`` and ``devices`` has defaults; see the dataclasses below.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from orchestrator.variants import ATTENTION, COMPUTE_UNITS, PRECISIONS, WEIGHTS, Variant

DType = Literal["float32", "float16", "int32"]


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...] = field(metadata={"gt": 0, "le": 1048576, "min_len": 1,  # the job schema's bound
                                             "help": "fixed input shape, e.g. [2, 4, 64, 64]"})
    dtype: DType = "float32"
    # Integer inputs (token ids, class labels): seeded values are drawn from [0, high). Without it the model's
    # vocabulary / timestep count is used where the source knows it.
    high: int | None = field(default=None, metadata={"gt": 0, "help": "int32 inputs: values are drawn from "
                                                                       "[0, high), e.g. the vocabulary size"})

    @property
    def elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class ComponentSpec:
    """One component's inputs. For a prebuilt ``.mlpackage`` the package describes its own inputs: the spec may
    leave them out, or give fixed shapes where the package's are flexible."""

    inputs: dict[str, TensorSpec] = field(default_factory=dict, metadata={"help": "input name -> {shape, dtype}"})
    outputs: tuple[str, ...] = field(default=(), metadata={
        "help": "python: sources: names of the module's outputs, in order (default output / output_N)"})


@dataclass(frozen=True)
class ModelSpec:
    source: str = field(metadata={"min_len": 1, "help": "builtin:NAME, hf://org/repo@revision, a local diffusers "
                                                        "folder, a .mlpackage or a folder of .mlpackage files"})
    components: dict[str, ComponentSpec] = field(default_factory=dict, metadata={
        "help": "component name -> inputs (optional for .mlpackage sources: read from the package)"})


@dataclass(frozen=True)
class VariantPoint:
    precision: str = "fp16"
    weights: str = "none"
    attention: str = "split_einsum_v2"


@dataclass(frozen=True)
class VariantAxes:
    """Axes whose cross product is built, plus explicit extra points (``include``)."""

    precision: tuple[str, ...] = field(default=("fp16",), metadata={"min_len": 1})
    weights: tuple[str, ...] = field(default=("none",), metadata={"min_len": 1})
    attention: tuple[str, ...] = field(default=("split_einsum_v2",), metadata={"min_len": 1})
    compute_units: tuple[str, ...] = field(default=("all", "cpu_and_ne", "cpu_and_gpu"), metadata={"min_len": 1})
    include: tuple[VariantPoint, ...] = ()

    def __post_init__(self) -> None:
        for axis, registry, values in (
            ("precision", PRECISIONS, self.precision),
            ("weights", WEIGHTS, self.weights),
            ("attention", ATTENTION, self.attention),
            ("compute_units", COMPUTE_UNITS, self.compute_units),
        ):
            for v in values:
                if v not in registry:
                    raise ValueError(f"variants.{axis}: unknown value {v!r}; known: {', '.join(registry.names())}")
            if len(set(values)) != len(values):
                raise ValueError(f"variants.{axis}: a value is listed twice")
        for i, p in enumerate(self.include):
            try:
                Variant(p.precision, p.weights, p.attention)
            except KeyError as exc:
                raise ValueError(f"variants.include[{i}]: {exc.args[0]}") from None

    def variants(self) -> tuple[Variant, ...]:
        points = {Variant(p, w, a) for p, w, a in itertools.product(self.precision, self.weights, self.attention)}
        points |= {Variant(p.precision, p.weights, p.attention) for p in self.include}
        return tuple(sorted(points, key=lambda v: (v.precision, WEIGHTS.names().index(v.weights),
                                                   ATTENTION.names().index(v.attention))))


@dataclass(frozen=True)
class AppSpec:
    """How the shipping app is configured: entitlements and deployment targets."""

    increased_memory_limit: bool = field(default=False, metadata={
        "help": "the app has com.apple.developer.kernel.increased-memory-limit"})
    min_ios: int | None = field(default=None, metadata={"ge": 15, "le": 99, "help": "app deployment target (iOS)"})
    min_macos: int | None = field(default=None, metadata={"ge": 12, "le": 99, "help": "app deployment target (macOS)"})
    footprint_mb: float = field(default=25.0, metadata={
        "ge": 0, "le": 1048576, "help": "the app's own phys_footprint before it loads a model (UI, caches, "
                                       "buffers); counted in every prediction and added on emulated devices"})


@dataclass(frozen=True)
class MeasureSpec:
    """How a job is measured: ``launches`` fresh launches (a new process that loads the model again) of
    ``warmup`` untimed then ``iterations`` timed predictions each. Launches are the statistical unit:
    the samples of one launch share its state (clock, contention, what the load left in memory)."""

    warmup: int = field(default=2, metadata={"ge": 0, "le": 1000})
    iterations: int = field(default=10, metadata={"ge": 1, "le": 100000, "help": "timed predictions per launch"})
    launches: int = field(default=3, metadata={"ge": 1, "le": 1000, "help": "fresh launches per job (new process, "
                                                                           "model loaded again)"})
    cooldown_s: float = field(default=0.0, metadata={"ge": 0, "le": 3600})
    timeout_s: float = field(default=600.0, metadata={"gt": 0, "le": 86400})
    sample_interval_ms: int = field(default=20, metadata={"ge": 1, "le": 60000})
    retries: int = field(default=2, metadata={"ge": 0, "le": 10, "help": "retries of transport faults per job"})
    return_outputs: bool = True
    seed: int = field(default=0, metadata={"ge": 0, "le": 4294967295, "help": "a 32-bit seed (the job schema's)"})


@dataclass(frozen=True)
class GateSpec:
    min_psnr_db: float = field(default=35.0, metadata={"ge": 0})
    memory_headroom: float = field(default=0.15, metadata={"ge": 0, "lt": 1, "help": "fraction of the limit kept free"})
    # component -> device family (iphone/ipad/mac/host or "*") -> p90 budget in ms
    latency_budget_ms: dict[str, dict[str, float]] = field(default_factory=dict, metadata={"gt": 0})
    max_cv: float = field(default=0.15, metadata={"gt": 0, "help": "coefficient of variation above which a "
                                                                   "measurement is unstable"})

    def latency_budget(self, component: str, family: str) -> float | None:
        per = self.latency_budget_ms.get(component) or self.latency_budget_ms.get("*") or {}
        return per.get(family, per.get("*"))


@dataclass(frozen=True)
class RegressionSpec:
    latency_pct: float = field(default=5.0, metadata={"gt": 0})
    memory_mb: float = field(default=32.0, metadata={"ge": 0})
    memory_pct: float = field(default=3.0, metadata={"ge": 0})
    quality_db: float = field(default=1.0, metadata={"ge": 0})
    confidence: float = field(default=0.95, metadata={"gt": 0.5, "lt": 1})
    resamples: int = field(default=2000, metadata={"ge": 100, "le": 200000})
    min_samples: int = field(default=5, metadata={"ge": 2})
    min_launches: int = field(default=3, metadata={"ge": 2, "help": "launches a side for a launch-level latency "
                                                                    "interval; fewer: a widened threshold"})


@dataclass(frozen=True)
class ReleaseSpec:
    name: str = field(metadata={"pattern": r"[A-Za-z0-9][A-Za-z0-9_.-]*",
                                "help": "release name (letters, digits, -_.)"})
    model: ModelSpec
    devices: tuple[str, ...] = field(metadata={"min_len": 1, "help": "profile ids, host, host:ID, virtual:ID, "
                                                                     "connected or all"})
    variants: VariantAxes = field(default_factory=VariantAxes)
    app: AppSpec = field(default_factory=AppSpec)
    measure: MeasureSpec = field(default_factory=MeasureSpec)
    gates: GateSpec = field(default_factory=GateSpec)
    regression: RegressionSpec = field(default_factory=RegressionSpec)
    baseline: str = field(default="last", metadata={"pattern": r"last|none|window:[1-9][0-9]{0,5}|[A-Za-z0-9_-]+",
                                                     "help": "a run id, last, window:N or none"})
    description: str = ""
    # Set by the loader: where the spec came from, and a hash of its normalised content.
    path: Path | None = field(default=None, metadata={"internal": True}, compare=False)
    digest: str = field(default="", metadata={"internal": True}, compare=False)

    def variant_list(self) -> tuple[Variant, ...]:
        return self.variants.variants()
