"""Read an ``.mlpackage``'s ML program for static analysis only: shapes, dtypes, the op list and small
constants, straight from the package's protobuf, without importing coremltools or reading the weights.

``load`` (``orchestrator.mil.load``) goes through coremltools' milproto loader, which imports coremltools
(~10 s with torch), reads every weight from ``weight.bin`` and re-runs type inference op by op: at SD-1.5 scale
that is minutes and gigabytes, while weights, FLOPs and liveness need only what the protobuf already states
(every op's output types, every constant's type). This module parses that with coremltools' own generated
protobuf classes, imported as plain modules (``_proto``), so the analysis of a full-size UNet takes seconds.

Weights stored in ``weight.bin`` appear in ``Program.constants`` as ``StoredWeight`` markers (file, offset):
their type is known, their values are not read. Each marker is checked against the blob file's own header
(sentinel, size, data offset), so a truncated or corrupt copy is still an ``ArtifactError`` here. The returned
program has ``weights_loaded=False``; the executor refuses it (use ``load`` to run).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import struct
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.errors import ArtifactError, UnsupportedOpError
from orchestrator.mil.program import Arg, Op, Program, TensorType

_PROTO_PACKAGE = "_mlfarm_coreml_proto"
_REBUILD = "rebuild it (`mlfarm build SPEC`) or convert it again with coremltools; check the copy is complete"
_BLOB_SENTINEL = 0xDEADBEEF
_NUMPY = {"fp16": np.float16, "fp32": np.float32, "fp64": np.float64, "int8": np.int8, "uint8": np.uint8,
          "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "int64": np.int64, "bool": np.bool_}


@dataclass(frozen=True)
class StoredWeight:
    """A constant kept in a weight file; only its place is known (values are not read for static analysis)."""

    file: str
    offset: int


def _proto() -> Any:
    """coremltools' generated ``MIL_pb2``/``Model_pb2`` as modules of a private package: importing them through
    ``coremltools.proto`` would run coremltools' ``__init__`` (and import torch). Registering the same .proto
    files again when coremltools is imported later is accepted by protobuf (identical definitions)."""
    if _PROTO_PACKAGE not in sys.modules:
        found = importlib.util.find_spec("coremltools")
        if found is None or found.origin is None:
            raise ArtifactError("coremltools is not installed: it is needed to read Core ML packages",
                                fix="pip install coremltools")
        package = types.ModuleType(_PROTO_PACKAGE)
        package.__path__ = [str(Path(found.origin).parent / "proto")]
        sys.modules[_PROTO_PACKAGE] = package
    return importlib.import_module(f"{_PROTO_PACKAGE}.Model_pb2")


def load_static(path: str | Path, *, function: str = "main") -> Program:
    """The ML program of an ``.mlpackage`` with types and small constants only (see the module docstring)."""
    package = Path(path)
    if not (package.is_dir() and (package / "Manifest.json").is_file()):
        raise ArtifactError(f"{package}: not an .mlpackage (a folder with Manifest.json)", path=package,
                            fix="pass an .mlpackage folder (`mlfarm analyze SPEC` analyses a spec's builds)")
    model_file, weights_dir = _model_paths(package)
    spec = _proto().Model()
    try:
        spec.ParseFromString(model_file.read_bytes())
    except Exception as exc:  # protobuf raises its own DecodeError; any failure means an unreadable spec
        raise ArtifactError(f"{package}: cannot read the Core ML package: {type(exc).__name__}: {exc}",
                            path=package, fix=_REBUILD) from exc
    if spec.WhichOneof("Type") != "mlProgram":
        raise ArtifactError(f"{package}: a '{spec.WhichOneof('Type') or 'empty'}' model, not an ML program",
                            path=package, fix="convert with convert_to='mlprogram' (the default for iOS 15+ targets)")
    if function not in spec.mlProgram.functions:
        raise ArtifactError(f"{package}: no function '{function}' (has: {', '.join(spec.mlProgram.functions)})",
                            path=package, fix="pass one of the functions the package has")
    reader = _Reader(str(package), weights_dir)
    program = reader.function(spec.mlProgram.functions[function], function,
                              [f.name for f in spec.description.input], [f.name for f in spec.description.output])
    reader.check_blobs()
    return program


def _model_paths(package: Path) -> tuple[Path, Path]:
    """(the model's protobuf, its weights folder) as the package's Manifest.json names them."""
    try:
        manifest = json.loads((package / "Manifest.json").read_text())
        entry = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]
        model = package / "Data" / entry["path"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{package}: Manifest.json does not name the model: {exc}", path=package,
                            fix=_REBUILD) from exc
    if not model.is_file():
        raise ArtifactError(f"{package}: {model.relative_to(package)} is missing", path=package, fix=_REBUILD)
    return model, model.parent / "weights"


def _dtype(data_type: int, enum: Any) -> str:
    name = enum.Name(data_type)
    for prefix, short in (("UINT", "uint"), ("INT", "int"), ("FLOAT", "fp"), ("BFLOAT", "bf")):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            return short + name[len(prefix):]
    return {"BOOL": "bool", "STRING": "string"}.get(name, name.lower())


class _Reader:
    """Walks one function of the protobuf; collects types, constants, ops and the weights to check."""

    def __init__(self, source: str, weights_dir: Path) -> None:
        self.source = source
        self.weights_dir = weights_dir
        self.mil = importlib.import_module(f"{_PROTO_PACKAGE}.MIL_pb2")
        self.types: dict[str, TensorType] = {}
        self.constants: dict[str, Any] = {}
        self.ops: list[Op] = []
        self.blobs: dict[str, list[tuple[str, int]]] = {}  # file -> (constant name, offset)
        self.rename: dict[str, str] = {}

    def function(self, func: Any, name: str, feature_in: list[str], feature_out: list[str]) -> Program:
        block = func.block_specializations.get(func.opset)
        if block is None:
            raise ArtifactError(f"{self.source}: function '{name}' has no block for opset {func.opset}",
                                path=self.source, fix=_REBUILD)
        inputs = [v.name for v in func.inputs]
        outputs = list(block.outputs)
        for names, wanted in ((inputs, feature_in), (outputs, feature_out)):
            if len(names) == len(wanted):
                self.rename.update({a: b for a, b in zip(names, wanted, strict=True) if a != b})
        for v in func.inputs:
            self.types[self._name(v.name)] = self._type(v.type, v.name)
        for op in block.operations:
            self._op(op)
        return Program(source=self.source, function=name, opset=str(func.opset),
                       inputs=tuple(self._name(n) for n in inputs), outputs=tuple(self._name(n) for n in outputs),
                       types=self.types, constants=self.constants, ops=tuple(self.ops), weights_loaded=False)

    def _name(self, name: str) -> str:
        return self.rename.get(name, name)

    def _type(self, value_type: Any, what: str) -> TensorType:
        if value_type.WhichOneof("type") != "tensorType":
            raise UnsupportedOpError(f"{what} (value of type {value_type.WhichOneof('type')})", artifact=self.source,
                                     fix="only tensor-valued programs can be analysed")
        t = value_type.tensorType
        shape = tuple(int(d.constant.size) if d.WhichOneof("dimension") == "constant" else None
                      for d in t.dimensions)
        return TensorType(shape, _dtype(t.dataType, self.mil.DataType))

    def _op(self, op: Any) -> None:
        if op.blocks:
            raise UnsupportedOpError(op.type, artifact=self.source,
                                     fix="control flow (cond, while_loop) is not supported by mlfarm's executor")
        outputs = tuple(self._name(o.name) for o in op.outputs)
        for o in op.outputs:
            self.types[self._name(o.name)] = self._type(o.type, o.name)
        if op.type == "const":
            self.constants[outputs[0]] = self._value(op.attributes["val"], outputs[0])
            return
        inputs: dict[str, Arg] = {}
        for key, argument in op.inputs.items():
            names = tuple(self._binding(b, f"{outputs[0]}_{key}_{i}") for i, b in enumerate(argument.arguments))
            inputs[key] = names[0] if len(names) == 1 else names
        for key, value in op.attributes.items():  # iOS 16/17 constexpr ops carry their data as attributes
            if key != "name":
                const = f"{outputs[0]}_{key}"
                self.types[const] = self._type(value.type, const)
                self.constants[const] = self._value(value, const)
                inputs[key] = const
        name = op.attributes["name"].immediateValue.tensor.strings.values[0] if "name" in op.attributes else outputs[0]
        self.ops.append(Op(type=op.type, name=str(name), inputs=inputs, outputs=outputs))

    def _binding(self, binding: Any, const: str) -> str:
        if binding.WhichOneof("binding") == "name":
            return self._name(binding.name)
        self.types[const] = self._type(binding.value.type, const)
        self.constants[const] = self._value(binding.value, const)
        return const

    def _value(self, value: Any, name: str) -> Any:
        if value.WhichOneof("value") == "blobFileValue":
            blob = value.blobFileValue
            self.blobs.setdefault(blob.fileName.rsplit("/", 1)[-1], []).append((name, int(blob.offset)))
            return StoredWeight(blob.fileName, int(blob.offset))
        return _immediate(value.immediateValue, self.types.get(name) or self._type(value.type, name))

    def check_blobs(self) -> None:
        """Every stored weight's header is in its file and its data ends inside it (a truncated copy fails)."""
        for file, places in self.blobs.items():
            path = self.weights_dir / file
            try:
                size = path.stat().st_size
                with path.open("rb") as f:
                    for name, offset in places:
                        f.seek(offset)
                        header = f.read(24)
                        if len(header) < 24:
                            raise ValueError(f"weight {name!r} at byte {offset} lies past the end ({size} bytes)")
                        sentinel, _, nbytes, start = struct.unpack("<IIQQ", header)
                        if sentinel != _BLOB_SENTINEL or start + nbytes > size:
                            raise ValueError(f"weight {name!r} at byte {offset}: bad header or data past the end "
                                             f"({start}+{nbytes} > {size} bytes)")
            except (OSError, ValueError) as exc:
                raise ArtifactError(f"{self.source}: cannot load the ML program (truncated or corrupt weights?): "
                                    f"{file}: {exc}", path=self.source, fix=_REBUILD) from exc


def _immediate(immediate: Any, t: TensorType) -> Any:
    """An immediate (inline) value as numpy, a Python scalar or a string."""
    if immediate.WhichOneof("value") != "tensor":
        return None  # lists and dictionaries: nothing the analysis reads
    tensor = immediate.tensor
    kind = tensor.WhichOneof("value")
    if kind is None:
        return None
    values = getattr(tensor, kind).values
    if kind == "strings":
        return str(values[0]) if not t.shape else [str(v) for v in values]
    if kind == "bytes":
        dtype = _NUMPY.get(t.dtype)
        array = np.frombuffer(values, dtype=dtype) if dtype is not None else np.frombuffer(values, np.uint8)
    else:
        array = np.asarray(list(values), dtype=_NUMPY.get(t.dtype, np.float64))
    if t.is_static and array.size == t.elements:
        array = array.reshape(t.shape)  # type: ignore[arg-type]
    return array.item() if not t.shape else array
