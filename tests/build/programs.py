"""Reading built packages back the way a reviewer would: coremltools loads the .mlpackage, we walk its program."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coremltools as ct
from coremltools.converters.mil.frontend.milproto.load import load as load_milproto
from coremltools.converters.mil.mil import types


def load_program(path: Path) -> Any:
    """The MIL program of a saved package (no Core ML runtime needed)."""
    model = ct.models.MLModel(str(path), skip_model_load=True)
    spec = model.get_spec()
    return load_milproto(spec, spec.specificationVersion, model.weights_dir)


def dtype(var: Any) -> str:
    return str(types.builtin_to_string(var.dtype))


@dataclass(frozen=True)
class Compressed:
    """One decompression op: what it stores and what it produces."""

    op_type: str
    stored_bytes: int
    dense_fp16_bytes: int
    op: Any

    @property
    def ratio(self) -> float:
        return self.stored_bytes / self.dense_fp16_bytes


def _stored(var: Any) -> int:
    """Bytes a constexpr input occupies on disk (sub-byte index types are bit-packed)."""
    bits = {"uint1": 1, "uint2": 2, "uint3": 3, "uint4": 4, "uint6": 6, "int4": 4}.get(dtype(var))
    count = math.prod(var.shape) if var.shape else 1
    if bits is not None:
        return math.ceil(count * bits / 8)
    return int(var.val.nbytes) if var.val is not None else 0


def compressed_ops(program: Any) -> list[Compressed]:
    found = []
    for op in program.functions["main"].operations:
        if op.op_type.startswith("constexpr_"):
            stored = sum(_stored(v) for name, v in op.inputs.items() if name not in ("shape", "axis"))
            found.append(Compressed(op.op_type, stored, 2 * math.prod(op.outputs[0].shape), op))
    return found


def weight_file_bytes(path: Path) -> int:
    return (path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").stat().st_size


def op_types(program: Any) -> set[str]:
    return {op.op_type for op in program.functions["main"].operations}
