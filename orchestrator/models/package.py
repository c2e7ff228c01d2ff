"""Prebuilt Core ML packages as a model source: ``model.source: Model.mlpackage`` or a folder of them.

    model:
      source: models/Classifier.mlpackage     # one component, named by the single key below (or the stem)
      components:
        classifier: {}                        # inputs come from the package's own description

A folder source gives one component per ``*.mlpackage`` in it, named by the package stem. Inputs, outputs,
shapes and dtypes are read from each package's description (protobuf only: no torch, no weights read); the
spec may give a fixed shape only where the package's shape is flexible. The package is imported into the
artifact store as the ``none`` variant and compression variants are built from it (``orchestrator.build``);
quality is PSNR against the package's own outputs on mlfarm's MIL executor (``reference``).

    src = open_source("models/Classifier.mlpackage", components=["classifier"])
    src.components()                          # ("classifier",)
    src.signature("classifier").inputs        # (PackageInput(name="image", shape=(1, 3, 64, 64), ...),)
    src.prebuilt("classifier")                # Path(".../Classifier.mlpackage")
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.models.components import ComponentFacts
from orchestrator.models.source import ModelSource, SourceProblem

if TYPE_CHECKING:
    from torch import nn

# Core ML multiarray dtypes -> the spec's dtypes (the harness feeds these).
_DTYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "INT32": "int32"}
# ML program specification version -> the iOS major of its opset.
SPEC_VERSION_IOS = {6: 15, 7: 16, 8: 17, 9: 18, 10: 26}


@dataclass(frozen=True)
class PackageInput:
    """One input as the package describes it. ``ranges`` is per dimension (low, high or None for unbounded)
    when the shape is a range; ``enumerated`` lists the allowed shapes when it is a set."""

    name: str
    shape: tuple[int, ...]
    dtype: str | None  # None: a Core ML type mlfarm cannot feed (e.g. double, image)
    ranges: tuple[tuple[int, int | None], ...] | None = None
    enumerated: tuple[tuple[int, ...], ...] = ()

    @property
    def fixed(self) -> bool:
        return self.ranges is None and not self.enumerated

    def allows(self, shape: tuple[int, ...]) -> bool:
        if self.ranges is not None:
            return len(shape) == len(self.ranges) and all(
                lo <= d and (hi is None or d <= hi) for d, (lo, hi) in zip(shape, self.ranges, strict=True))
        if self.enumerated:
            return shape in self.enumerated
        return shape == self.shape

    def describe(self) -> str:
        if self.ranges is not None:
            return "[" + ", ".join(str(lo) if lo == hi else f"{lo}..{'' if hi is None else hi}"
                                   for lo, hi in self.ranges) + "]"
        if self.enumerated:
            return " or ".join(str(list(s)) for s in self.enumerated)
        return str(list(self.shape))


@dataclass(frozen=True)
class PackageSignature:
    inputs: tuple[PackageInput, ...]
    outputs: tuple[str, ...]
    ios: int  # the opset's iOS major
    precision: str  # "fp16" when the program computes in fp16 anywhere, else "fp32"

    def input(self, name: str) -> PackageInput | None:
        return next((i for i in self.inputs if i.name == name), None)


def _array_input(desc: Any) -> PackageInput:
    from coremltools.proto import FeatureTypes_pb2

    if desc.type.WhichOneof("Type") != "multiArrayType":
        return PackageInput(desc.name, (), None)
    array = desc.type.multiArrayType
    dtype = _DTYPES.get(FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType))
    shape = tuple(int(s) for s in array.shape)
    flexibility = array.WhichOneof("ShapeFlexibility")
    if flexibility == "shapeRange":
        ranges = tuple((int(r.lowerBound), None if r.upperBound < 0 else int(r.upperBound))
                       for r in array.shapeRange.sizeRanges)
        return PackageInput(desc.name, shape, dtype, ranges=ranges)
    if flexibility == "enumeratedShapes":
        shapes = tuple(tuple(int(s) for s in e.shape) for e in array.enumeratedShapes.shapes)
        return PackageInput(desc.name, shape, dtype, enumerated=shapes)
    return PackageInput(desc.name, shape, dtype)


def read_signature(path: Path) -> PackageSignature:
    """The package's inputs and outputs from its protobuf spec; SourceProblem if it is no ML program."""
    from orchestrator.mil.load import _quiet_coremltools

    if not (path / "Manifest.json").is_file():
        raise SourceProblem(f"{path} is not an .mlpackage (no Manifest.json)",
                            "save the model with coremltools' MLModel.save('Name.mlpackage')")
    _quiet_coremltools()
    from coremltools.models.utils import load_spec

    try:
        spec = load_spec(str(path))
    except Exception as exc:  # protobuf DecodeError, OSError, ...: the package is unreadable
        raise SourceProblem(f"{path}: cannot read the Core ML package: {type(exc).__name__}: {exc}",
                            "convert the model again with coremltools and check the copy is complete") from None
    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        raise SourceProblem(f"{path} is a '{kind or 'empty'}' model, not an ML program",
                            "convert it again with coremltools: ct.convert(..., convert_to='mlprogram')")
    function = spec.mlProgram.functions["main"]
    block = function.block_specializations[function.opset]
    fp16 = any(o.type.tensorType.dataType == 10 for op in block.operations for o in op.outputs  # 10 = FLOAT16
               if o.type.WhichOneof("type") == "tensorType")
    ios = SPEC_VERSION_IOS.get(int(spec.specificationVersion), max(SPEC_VERSION_IOS.values()))
    return PackageSignature(tuple(_array_input(d) for d in spec.description.input),
                            tuple(d.name for d in spec.description.output), ios, "fp16" if fp16 else "fp32")


def find_packages(folder: Path) -> dict[str, Path]:
    """stem -> path of every ``*.mlpackage`` directly in ``folder`` (sorted)."""
    return {p.name.removesuffix(".mlpackage"): p for p in sorted(folder.glob("*.mlpackage")) if p.is_dir()}


def _fingerprint(path: Path, small: int = 1 << 20) -> str:
    """Cheap identity: each file's relative path and size, plus the content of small files and the mtime of big
    ones (weights; their content is hashed at build time). Not the mtime of small files: coremltools rewrites
    ``Manifest.json`` every time it opens a package."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        st = file.stat()
        tail = hashlib.sha256(file.read_bytes()).hexdigest() if st.st_size <= small else str(st.st_mtime_ns)
        digest.update(f"{file.relative_to(path).as_posix()}|{st.st_size}|{tail}\n".encode())
    return digest.hexdigest()[:16]


class PackageSource(ModelSource):
    """Prebuilt ``.mlpackage`` files; see the module docstring. ``id`` is the resolved path, so an artifact's
    manifest can reopen the same source for its reference outputs."""

    def __init__(self, path: Path, packages: Mapping[str, Path], *, single: bool = False) -> None:
        self.id = str(path)
        self.path = path
        self.packages = dict(packages)
        # A single package answers to any component name: an artifact's manifest reopens the source by its path
        # alone, without the name the spec gave the component.
        self.single_package = single
        self.revision = "package"
        self._signatures: dict[str, PackageSignature] = {}

    @classmethod
    def single(cls, path: Path, name: str | None = None) -> PackageSource:
        return cls(path, {name or path.name.removesuffix(".mlpackage"): path}, single=True)

    @classmethod
    def folder(cls, path: Path) -> PackageSource:
        packages = find_packages(path)
        if not packages:
            raise SourceProblem(f"{path} holds no .mlpackage", "put one package per component in the folder")
        return cls(path, packages)

    def components(self) -> tuple[str, ...]:
        return tuple(self.packages)

    def prebuilt(self, component: str) -> Path:
        if self.single_package:
            return next(iter(self.packages.values()))
        try:
            return self.packages[component]
        except KeyError:
            raise SourceProblem(f"{self.id} has no component {component!r}",
                                f"its components: {', '.join(self.packages)}") from None

    def signature(self, component: str) -> PackageSignature:
        if component not in self._signatures:
            self._signatures[component] = read_signature(self.prebuilt(component))
        return self._signatures[component]

    def facts(self, component: str) -> ComponentFacts:
        return ComponentFacts(component)

    def input_names(self, component: str) -> tuple[str, ...]:
        return tuple(i.name for i in self.signature(component).inputs)

    def output_names(self, component: str) -> tuple[str, ...]:
        return self.signature(component).outputs

    def cache_identity(self, component: str) -> str:
        return _fingerprint(self.prebuilt(component))

    def weights_hash(self, component: str) -> str:
        from orchestrator.build.package import tree_hash

        return tree_hash(self.prebuilt(component))

    def _load(self, component: str) -> nn.Module:
        raise SourceProblem(f"{component} is a prebuilt Core ML package: it has no PyTorch module",
                            "its reference outputs come from the package itself (ModelSource.reference)")

    reference_label = "package"

    def reference(self, component: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The package's own outputs on mlfarm's MIL executor, at the package's precision."""
        from orchestrator.mil.executor import Executor
        from orchestrator.mil.load import load

        outputs = Executor(load(self.prebuilt(component)), "auto").run(dict(inputs)).outputs
        return {name: np.asarray(outputs[name], dtype=np.float32) for name in self.output_names(component)}

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"packages": {k: str(v) for k, v in self.packages.items()}}


def open_package_source(path: Path, components: Sequence[str] = ()) -> PackageSource | None:
    """A PackageSource when ``path`` is an .mlpackage or a folder of them (and no diffusers pipeline); else None."""
    if path.name.endswith(".mlpackage"):
        if not path.is_dir():
            raise SourceProblem(f"{path} does not exist", "give the path of an .mlpackage folder, relative to the "
                                "spec's folder")
        return PackageSource.single(path, components[0] if len(components) == 1 else None)
    if path.is_dir() and not (path / "model_index.json").is_file() and find_packages(path):
        return PackageSource.folder(path)
    return None
