"""Facts about a saved ``.mlpackage``, read from its files: content hash, sizes, weights, ops, inputs/outputs.

``tree_hash`` is the artifact's identity in the store. Everything else is read from the package's protobuf
spec without loading weight values: the MIL program's types give every weight tensor's shape, and
``weights/weight.bin`` is what is stored. Compressed tensors are the outputs of ``constexpr_*`` ops (palette
LUTs, int8 dequantisation); the consts feeding those ops are their stored parts.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FLOAT_TYPES = {"FLOAT16", "FLOAT32", "FLOAT64", "BFLOAT16"}


def tree_files(root: Path) -> dict[str, int]:
    """Relative path -> size of every file under ``root``, sorted by path."""
    files = {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()}
    return dict(sorted(files.items()))


def normalize_identifiers(package: Path) -> None:
    """Make a saved package reproducible: coremltools names the items in ``Manifest.json`` with random UUIDs
    (replaced here with UUIDs derived from each item's path) and serializes the spec's maps in no fixed order
    (rewritten deterministically), so identical builds give identical packages, hence the same blob."""
    path = package / "Manifest.json"
    data = json.loads(path.read_text())
    entries = data.get("itemInfoEntries", {})
    renamed = {old: str(uuid.uuid5(uuid.NAMESPACE_URL, f"mlfarm:mlpackage-item:{item.get('path', old)}"))
               for old, item in entries.items()}
    data["itemInfoEntries"] = {renamed[old]: item for old, item in entries.items()}
    if data.get("rootModelIdentifier") in renamed:
        data["rootModelIdentifier"] = renamed[data["rootModelIdentifier"]]
    path.write_text(json.dumps(data, indent=4, sort_keys=True) + "\n")
    _serialize_deterministically(package)


def _serialize_deterministically(package: Path) -> None:
    """Rewrite ``model.mlmodel`` with protobuf's deterministic serialization. coremltools serializes the spec
    with map fields (op attributes, function and block maps) in whatever order the process holds them, which
    differs between runs: two builds of the same model gave identical specs but different bytes, hence a
    different blob on every rebuild."""
    from coremltools.proto import Model_pb2

    for spec_path in package.rglob("*.mlmodel"):
        model = Model_pb2.Model()
        model.ParseFromString(spec_path.read_bytes())
        spec_path.write_bytes(model.SerializeToString(deterministic=True))


def tree_hash(root: Path) -> str:
    """sha256 over (relative path, size, sha256 of content) of every file, in path order."""
    digest = hashlib.sha256()
    for rel, size in tree_files(root).items():
        file_digest = hashlib.sha256()
        with (root / rel).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                file_digest.update(block)
        digest.update(f"{rel}\0{size}\0{file_digest.hexdigest()}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class PackageFacts:
    """What the manifest records about a package."""

    bytes_on_disk: int
    weight_file_bytes: int
    bytes_decompressed_fp16: int
    tensors: int
    compressed_tensors: int
    ops: dict[str, int]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    opset: str


def _tensor(value_type: Any) -> tuple[str, list[int]] | None:
    from coremltools.proto import MIL_pb2

    if value_type.WhichOneof("type") != "tensorType":
        return None
    t = value_type.tensorType
    return MIL_pb2.DataType.Name(t.dataType), [int(d.constant.size) for d in t.dimensions]


def _feature(desc: Any) -> dict[str, Any]:
    from coremltools.proto import FeatureTypes_pb2

    array = desc.type.multiArrayType
    return {"name": desc.name, "shape": [int(s) for s in array.shape],
            "dtype": FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType).lower()}


def _main_block(spec: Any) -> tuple[str, Any]:
    function = spec.mlProgram.functions["main"]
    return function.opset, function.block_specializations[function.opset]


def weight_tensors(block: Any) -> tuple[list[tuple[str, list[int]]], int]:
    """Every weight tensor as (dtype, shape) (constexpr outputs for compressed ones), and how many are compressed."""
    parts = {a.name for op in block.operations if op.type.startswith("constexpr_")
             for arg in op.inputs.values() for a in arg.arguments if a.name}
    tensors: list[tuple[str, list[int]]] = []
    compressed = 0
    for op in block.operations:
        if op.type != "const" and not op.type.startswith("constexpr_"):
            continue
        for out in op.outputs:
            t = _tensor(out.type)
            if t is None or out.name in parts or t[0] not in _FLOAT_TYPES or not t[1]:
                continue
            tensors.append(t)
            compressed += op.type.startswith("constexpr_")
    return tensors, compressed


def package_facts(path: Path) -> PackageFacts:
    from coremltools.models.utils import load_spec

    spec = load_spec(str(path))
    opset, block = _main_block(spec)
    tensors, compressed = weight_tensors(block)
    weight_bin = path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    return PackageFacts(
        bytes_on_disk=sum(tree_files(path).values()),
        weight_file_bytes=weight_bin.stat().st_size if weight_bin.is_file() else 0,
        bytes_decompressed_fp16=sum(2 * math.prod(shape) for _, shape in tensors),
        tensors=len(tensors),
        compressed_tensors=compressed,
        ops=dict(Counter(op.type for op in block.operations).most_common()),
        inputs=[_feature(d) for d in spec.description.input],
        outputs=[_feature(d) for d in spec.description.output],
        opset=opset,
    )
