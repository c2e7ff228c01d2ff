"""The variant space: every axis value with what it needs from the device, in explicit registries.

A *Variant* is one artifact of one component: ``precision`` x ``weights`` (compression) x ``attention``.
``compute_units`` is a run-time choice, not an artifact axis; it is planned per device.

Each value declares its requirements here and nowhere else, so the planner, the builder and the docs agree:

    >>> WEIGHTS["palette4-g16"].min_os("iOS")
    18
    >>> Variant.parse("fp16-palette6-split_einsum_v2").weights
    'palette6'

Sources: device_profiles/SOURCES.md "Core ML features by OS" (coremltools opt-whats-new, typed-execution).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

OsName = Literal["iOS", "iPadOS", "macOS"]


@dataclass(frozen=True)
class OsFloor:
    """Minimum major OS versions, per OS family (iPadOS follows iOS)."""

    ios: int
    macos: int

    def for_os(self, os_name: str) -> int:
        return self.macos if os_name == "macOS" else self.ios


ML_PROGRAM = OsFloor(ios=15, macos=12)  # the mlprogram format itself


@dataclass(frozen=True)
class WeightScheme:
    """A weight compression scheme.

    ``bits`` is the storage width per weight (16 for uncompressed fp16); ``loads_on`` is the first OS that can
    load the artifact at all, ``saves_memory_on`` the first OS that keeps weights compressed in memory (before
    it, Core ML decompresses to fp16 at load time, so a palette saves disk but not RAM).
    """

    name: str
    kind: Literal["none", "linear", "palette"]
    bits: int
    granularity: Literal["none", "per_tensor", "per_channel", "per_grouped_channel", "per_block"]
    loads_on: OsFloor
    saves_memory_on: OsFloor
    group_size: int | None = None  # channels per LUT (grouped palettes) or weights per scale (per-block linear)
    description: str = ""

    def min_os(self, os_name: str) -> int:
        return self.loads_on.for_os(os_name)

    @property
    def compressed(self) -> bool:
        return self.kind != "none"

    @property
    def quality_tier(self) -> float:
        """Higher is less lossy. Grouped 4-bit sits between per-tensor 4- and 6-bit (finer LUTs)."""
        if self.kind == "none":
            return 16.0
        return self.bits + (0.5 if self.granularity in ("per_grouped_channel", "per_block") else 0.0)


@dataclass(frozen=True)
class AttentionImpl:
    name: str
    description: str
    # Known to stall Neural Engine compilation on iPhone/iPad (apple/ml-stable-diffusion #267, #271).
    ane_mobile_ok: bool
    query_chunk: int | None = None


@dataclass(frozen=True)
class ComputeUnits:
    name: str
    coreml_name: str  # coremltools.ComputeUnit member
    uses_ane: bool
    uses_gpu: bool
    min_os: OsFloor
    description: str = ""


@dataclass(frozen=True)
class Precision:
    name: str
    bytes_per_element: int
    ane_ok: bool  # fp32-typed programs never run on the Neural Engine


V = TypeVar("V")


class Registry(Generic[V]):
    """A named, ordered set of axis values; unknown names raise KeyError listing what exists."""

    def __init__(self, axis: str, items: list[V]) -> None:
        self.axis = axis
        self._items: dict[str, V] = {}
        for item in items:
            name: str = getattr(item, "name")  # noqa: B009 - every axis value has a name
            if name in self._items:
                raise ValueError(f"{axis}: {name!r} registered twice")
            self._items[name] = item

    def __getitem__(self, name: str) -> V:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"unknown {self.axis} {name!r}; known: {', '.join(self._items)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[V]:
        return iter(self._items.values())

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)


_COMPRESSED_LOAD = OsFloor(ios=16, macos=13)
_JIT_DECOMPRESS = OsFloor(ios=17, macos=14)
_GROUPED = OsFloor(ios=18, macos=15)

WEIGHTS: Registry[WeightScheme] = Registry("weights", [
    WeightScheme("none", "none", 16, "none", ML_PROGRAM, ML_PROGRAM, description="uncompressed weights"),
    WeightScheme("int8", "linear", 8, "per_channel", _COMPRESSED_LOAD, _JIT_DECOMPRESS,
                 description="8-bit linear quantization, per output channel"),
    WeightScheme("palette8", "palette", 8, "per_tensor", _COMPRESSED_LOAD, _JIT_DECOMPRESS,
                 description="8-bit k-means palette, one LUT per tensor"),
    WeightScheme("palette6", "palette", 6, "per_tensor", _COMPRESSED_LOAD, _JIT_DECOMPRESS,
                 description="6-bit k-means palette, one LUT per tensor"),
    WeightScheme("palette4", "palette", 4, "per_tensor", _COMPRESSED_LOAD, _JIT_DECOMPRESS,
                 description="4-bit k-means palette, one LUT per tensor"),
    WeightScheme("palette4-g16", "palette", 4, "per_grouped_channel", _GROUPED, _GROUPED, group_size=16,
                 description="4-bit k-means palette, one LUT per group of 16 output channels"),
    WeightScheme("int4-b32", "linear", 4, "per_block", _GROUPED, _GROUPED, group_size=32,
                 description="4-bit linear quantization, one scale per block of 32 input weights (iOS 18 opset)"),
])

ATTENTION: Registry[AttentionImpl] = Registry("attention", [
    AttentionImpl("original", "one batched matmul -> softmax -> matmul over all heads", ane_mobile_ok=False),
    AttentionImpl("split_einsum", "per-head attention (ANE-friendly layout)", ane_mobile_ok=True),
    AttentionImpl("split_einsum_v2", "per-head attention with the query split into chunks of 512",
                  ane_mobile_ok=True, query_chunk=512),
])

COMPUTE_UNITS: Registry[ComputeUnits] = Registry("compute_units", [
    ComputeUnits("all", "ALL", True, True, ML_PROGRAM, "Core ML partitions over CPU, GPU and Neural Engine"),
    ComputeUnits("cpu_and_ne", "CPU_AND_NE", True, False, OsFloor(ios=16, macos=13), "CPU and Neural Engine"),
    ComputeUnits("cpu_and_gpu", "CPU_AND_GPU", False, True, ML_PROGRAM, "CPU and GPU"),
    ComputeUnits("cpu_only", "CPU_ONLY", False, False, ML_PROGRAM, "CPU only"),
])

PRECISIONS: Registry[Precision] = Registry("precision", [
    Precision("fp16", 2, ane_ok=True),
    Precision("fp32", 4, ane_ok=False),
])

AXES: Mapping[str, Registry[Any]] = {
    "precision": PRECISIONS, "weights": WEIGHTS, "attention": ATTENTION, "compute_units": COMPUTE_UNITS,
}


@dataclass(frozen=True, order=True)
class Variant:
    """One artifact's point in the variant space; ``id`` is stable and used in paths and the database."""

    precision: str
    weights: str
    attention: str

    def __post_init__(self) -> None:
        PRECISIONS[self.precision], WEIGHTS[self.weights], ATTENTION[self.attention]

    @property
    def id(self) -> str:
        return f"{self.precision}-{self.weights}-{self.attention}"

    def __str__(self) -> str:
        return self.id

    @classmethod
    def parse(cls, text: str) -> Variant:
        precision, rest = text.split("-", 1)
        for w in sorted(WEIGHTS.names(), key=len, reverse=True):
            if rest.startswith(w + "-"):
                return cls(precision, w, rest[len(w) + 1:])
        raise KeyError(f"cannot parse variant id {text!r}; expected PRECISION-WEIGHTS-ATTENTION")

    @property
    def scheme(self) -> WeightScheme:
        return WEIGHTS[self.weights]

    @property
    def base_key(self) -> tuple[str, str]:
        """Variants sharing this key are derived from one converted program (compression is applied after)."""
        return (self.precision, self.attention)

    def min_os(self, os_name: str) -> int:
        return max(ML_PROGRAM.for_os(os_name), self.scheme.min_os(os_name))
