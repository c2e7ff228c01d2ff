"""mlfarm's view of a MIL program: ops in program order, every tensor's shape and dtype, constant values.

A ``Program`` is built once from an ``.mlpackage`` (``orchestrator.mil.load``) or from an in-memory
coremltools program, and is then read-only: the analysis walks it, the executor runs it many times.

    program.inputs     ("sample", "timestep", ...)        the model's input names, in order
    program.outputs    ("noise_pred",)                    the model's output names, in order
    program.types      {"conv_0": TensorType((2, 32, 32, 32), "fp16"), ...}   every tensor and constant
    program.constants  {"conv_0_weight": np.ndarray, "pad_type_0": "custom", ...}
    program.ops        (Op("cast", ...), Op("conv", ...), ...)   every non-``const`` op, program order

``constexpr_*`` ops (palettes, int8, block-wise scales) stay ops: they are how compressed weights are
stored, so the analysis counts their inputs as the stored bytes and their outputs as weights, never as
activations. The executor evaluates them once, before the first run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# Storage width of every MIL dtype, in bits. Sub-byte types are what palettes store their indices in.
DTYPE_BITS: Mapping[str, int] = {
    "fp16": 16, "fp32": 32, "fp64": 64, "bool": 8,
    "int4": 4, "int8": 8, "int16": 16, "int32": 32, "int64": 64,
    "uint1": 1, "uint2": 2, "uint3": 3, "uint4": 4, "uint6": 6,
    "uint8": 8, "uint16": 16, "uint32": 32, "uint64": 64,
}
FLOAT_DTYPES = frozenset({"fp16", "fp32", "fp64"})

# Numpy dtype names for the MIL dtypes an executor holds (sub-byte types are unpacked to one byte each).
NUMPY_DTYPES: Mapping[str, str] = {
    "fp16": "float16", "fp32": "float32", "fp64": "float64", "bool": "bool",
    "int4": "int8", "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
    "uint1": "uint8", "uint2": "uint8", "uint3": "uint8", "uint4": "uint8", "uint6": "uint8",
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
}
COMPUTE_PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class TensorType:
    """A tensor's static type. ``shape`` holds ``None`` for a dimension only known at run time."""

    shape: tuple[int | None, ...]
    dtype: str  # a MIL dtype name: fp16, fp32, int32, bool, uint4, ... or "string"

    @property
    def is_static(self) -> bool:
        return all(d is not None for d in self.shape)

    @property
    def elements(self) -> int:
        n = 1
        for d in self.shape:
            if d is None:
                raise ValueError(f"tensor of shape {self.shape} has a dimension only known at run time")
            n *= d
        return n

    @property
    def bits(self) -> int:
        return DTYPE_BITS.get(self.dtype, 0)

    @property
    def nbytes(self) -> int:
        """Bytes as stored: sub-byte types packed (an uint4 tensor of 10 elements takes 5 bytes)."""
        return (self.elements * self.bits + 7) // 8

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    def __str__(self) -> str:
        dims = "x".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


Arg = str | tuple[str, ...]  # an input is one tensor (by name) or a list of tensors (concat's values)


@dataclass(frozen=True)
class Op:
    """One MIL operation: its type, its inputs by tensor name, default values of omitted optional inputs."""

    type: str
    name: str
    inputs: Mapping[str, Arg]
    outputs: tuple[str, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def input_names(self) -> Iterator[str]:
        """Every tensor this op reads, each once, in parameter order."""
        seen: set[str] = set()
        for arg in self.inputs.values():
            for name in (arg,) if isinstance(arg, str) else arg:
                if name not in seen:
                    seen.add(name)
                    yield name

    @property
    def is_constexpr(self) -> bool:
        """A compile-time op (decompression of a stored weight), evaluated once before running."""
        return self.type.startswith("constexpr_")


@dataclass(frozen=True)
class Program:
    """One function of a MIL program, in mlfarm's own read-only form (see the module docstring)."""

    source: str  # the .mlpackage path, or a label for an in-memory program; named in every error
    function: str
    opset: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    types: Mapping[str, TensorType]
    constants: Mapping[str, Any]
    ops: tuple[Op, ...]
    weights_loaded: bool = True  # False: read for static analysis only (``static_load``); it cannot be executed

    def producers(self) -> dict[str, int]:
        """Tensor name -> index of the op that produces it (function inputs and constants have none)."""
        return {out: i for i, op in enumerate(self.ops) for out in op.outputs}

    def weight_names(self) -> frozenset[str]:
        """Tensors that are weights, not activations: constants and everything constexpr ops produce."""
        produced = {out for op in self.ops if op.is_constexpr for out in op.outputs}
        return frozenset(self.constants) | produced

    def op_types(self) -> frozenset[str]:
        return frozenset(op.type for op in self.ops)

    @property
    def compute_precision(self) -> str:
        """``fp16`` when any op computes in fp16 (what coremltools' FLOAT16 precision produces), else ``fp32``."""
        for op in self.ops:
            if not op.is_constexpr and any(self.types[o].dtype == "fp16" for o in op.outputs):
                return "fp16"
        return "fp32"


def resolve_precision(program: Program, precision: str | None) -> str:
    """``auto``/None -> the program's own compute precision; otherwise ``fp32`` or ``fp16``, checked."""
    if precision in (None, "auto"):
        return program.compute_precision
    if precision not in COMPUTE_PRECISIONS:
        raise ValueError(f"precision must be one of fp32, fp16, auto; got {precision!r}")
    return precision


def held_dtype(declared: str, precision: str, *, exact: bool = False) -> str:
    """The dtype a float tensor is held at when a program runs at ``precision``.

    fp32 runs hold every float tensor in fp32 (the reference). fp16 runs hold every op's float output in fp16,
    as the device does, except where the program itself asks for fp32 (``exact``: function inputs, and the
    output of an explicit ``cast`` to fp32 such as the one coremltools puts before an fp32 model output).
    Non-float tensors keep their declared dtype.
    """
    if declared not in FLOAT_DTYPES:
        return declared
    if precision == "fp32":
        return "fp32"
    return declared if exact else "fp16"


def is_exact_fp32(op: Op, declared: str) -> bool:
    """True when ``op`` explicitly produces fp32 (a ``cast`` to fp32), which fp16 runs keep in fp32."""
    return op.type == "cast" and declared == "fp32"
