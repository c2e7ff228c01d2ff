"""The Swift harness speaks the same contract as the Python side: checked from source, since Swift cannot
be compiled here.

Every property of job.schema.json and result.schema.json (nested objects included) must be a CodingKeys key
of the matching Swift type, and the other way round; enums, optionality, explicit nulls and Swift types must
agree; the seeded-input constants, golden vectors and sample documents in the Swift tests must equal
``orchestrator/harness/inputs.py``, numpy and the schemas. The mutation tests at the end show that a rename
on one side only is caught.
"""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from orchestrator.harness import inputs
from orchestrator.harness.contract import Job, schema
from tests.harness import swift_source
from tests.harness.swift_source import SwiftType

REPO = Path(__file__).resolve().parents[2]
KIT = REPO / "harness_app" / "Sources" / "HarnessKit"
SWIFT_TESTS = REPO / "harness_app" / "Tests" / "HarnessKitTests" / "HarnessKitTests.swift"

# (schema, path of an object schema) -> the Swift Codable type that mirrors it
OBJECTS = {
    ("job", ()): "Job",
    ("job", ("inputs", "items")): "JobInput",
    ("result", ()): "HarnessResult",
    ("result", ("harness",)): "HarnessInfo",
    ("result", ("device",)): "DeviceInfo",
    ("result", ("load_ms",)): "LoadTimes",
    ("result", ("memory",)): "MemoryReport",
}
# (schema, path of an enum schema) -> the Swift String enum with the same raw values
ENUMS = {
    ("job", ("compute_units",)): "ComputeUnits",
    ("job", ("inputs", "items", "dtype")): "DType",
    ("result", ("status",)): "Status",
    ("result", ("harness", "runtime")): "Runtime",
    ("result", ("$defs", "thermal")): "ThermalState",
}
SCALARS = {"integer": {"Int", "UInt64"}, "number": {"Double"}, "string": {"String"}, "boolean": {"Bool"}}


def kit_source() -> str:
    return "\n".join(p.read_text() for p in sorted(KIT.glob("*.swift")))


def schemas() -> dict[str, dict[str, Any]]:
    return {"job": schema("job"), "result": schema("result")}


def _walk(node: dict[str, Any], path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    yield path, node
    for key, sub in node.get("properties", {}).items():
        yield from _walk(sub, (*path, key))
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], (*path, "items"))
    for key, sub in node.get("$defs", {}).items():
        yield from _walk(sub, ("$defs", key))


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...] | None]:
    """The node behind a local $ref, and the definition's path (None when the node is inline)."""
    ref = node.get("$ref")
    if ref is None:
        return node, None
    parts = tuple(ref.removeprefix("#/").split("/"))
    target: dict[str, Any] = root
    for part in parts:
        target = target[part]
    return target, parts


def _nullable(node: dict[str, Any]) -> bool:
    return any(alt.get("type") == "null" for alt in node.get("oneOf", []))


def _expected_types(name: str, path: tuple[str, ...], node: dict[str, Any], root: dict[str, Any]) -> set[str]:
    node, ref_path = _resolve(node, root)
    where = ref_path or path
    if (name, where) in ENUMS:
        return {ENUMS[(name, where)]}
    if (name, where) in OBJECTS:
        return {OBJECTS[(name, where)]}
    if "const" in node:
        return {"Int"} if isinstance(node["const"], int) else {"String"}
    alternatives = [a for a in node.get("oneOf", []) if a.get("type") != "null"]
    if alternatives:
        assert len(alternatives) == 1, f"{name}.{'.'.join(path)}: one non-null alternative expected"
        return _expected_types(name, path, alternatives[0], root)
    kind = node.get("type")
    if kind == "array" and "prefixItems" in node:
        element = set.union(*(_expected_types(name, path, p, root) for p in node["prefixItems"]))
        return {f"[{e}]" for e in element}
    if kind == "array":
        return {f"[{e}]" for e in _expected_types(name, (*path, "items"), node["items"], root)}
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return {f"[String: {v}]" for v in _expected_types(name, path, node["additionalProperties"], root)}
    if kind in SCALARS:
        return SCALARS[kind]
    raise AssertionError(f"{name}.{'.'.join(path)}: no Swift type rule for {node}")


def _object_problems(name: str, path: tuple[str, ...], node: dict[str, Any], root: dict[str, Any],
                     t: SwiftType) -> list[str]:
    where = f"{name}.schema.json {'.'.join(path) or '(top level)'} vs Swift {t.name}"
    props, required = node["properties"], set(node.get("required", []))
    keys = t.coding_keys
    problems = [f"{where}: schema property {p!r} has no Swift coding key" for p in props
                if p not in keys.values()]
    problems += [f"{where}: Swift coding key {k!r} is not a schema property" for k in keys.values() if k not in props]
    problems += [f"{where}: CodingKeys case {c} has no stored property" for c in keys if c not in t.properties]
    problems += [f"{where}: stored property {p} has no CodingKeys case" for p in t.properties if p not in keys]
    for case, key in keys.items():
        if key not in props or case not in t.properties:
            continue
        declared = t.properties[case]
        optional = key not in required or _nullable(props[key])
        if declared.endswith("?") != optional:
            problems.append(f"{where}: {case}: {declared} should {'' if optional else 'not '}be optional")
        expected = _expected_types(name, (*path, key), props[key], root)
        if declared.rstrip("?") not in expected:
            problems.append(f"{where}: {case}: declared {declared}, expected one of {sorted(expected)}")
        if key in required and _nullable(props[key]):
            call = (t.encoded or {}).get(case)
            if call != ("encode", case):
                problems.append(f"{where}: {key!r} is required but nullable: encode(to:) must write it with "
                                f"encode({case}, forKey: .{case}) (synthesized Codable omits nil)")
    if t.encoded is not None:
        problems += [f"{where}: hand-written encode(to:) never writes {k!r}" for c, k in keys.items()
                     if c not in t.encoded]
    return problems


def contract_problems(source: str, docs: dict[str, dict[str, Any]]) -> list[str]:
    types = swift_source.parse_types(source)
    problems: list[str] = []
    for name, root in docs.items():
        for path, node in _walk(root, ()):
            if "properties" in node:
                swift = OBJECTS.get((name, path))
                if swift is None:
                    problems.append(f"{name}.schema.json {'.'.join(path)}: an object with no Swift type in OBJECTS")
                elif swift not in types:
                    problems.append(f"Swift type {swift} (for {name}.schema.json {'.'.join(path)}) not found")
                else:
                    problems += _object_problems(name, path, node, root, types[swift])
            if "enum" in node:
                swift = ENUMS.get((name, path))
                if swift is None or swift not in types:
                    problems.append(f"{name}.schema.json {'.'.join(path)}: enum with no Swift String enum ({swift})")
                elif set(types[swift].cases.values()) != set(node["enum"]):
                    problems.append(f"Swift enum {swift} raw values {sorted(types[swift].cases.values())} != "
                                    f"{name}.schema.json {'.'.join(path)} {sorted(node['enum'])}")
    return problems


def test_swift_types_match_the_schemas() -> None:
    assert contract_problems(kit_source(), schemas()) == []


def test_every_mapped_type_is_read_with_its_keys() -> None:
    # guards the reader itself: an empty parse would make the comparison vacuous
    types = swift_source.parse_types(kit_source())
    for swift in OBJECTS.values():
        assert len(types[swift].coding_keys) >= 2, swift
    assert types["HarnessResult"].coding_keys["jobID"] == "job_id"
    assert types["MemoryReport"].encoded is not None and types["HarnessResult"].encoded is not None
    assert types["ComputeUnits"].cases == {"all": "all", "cpuAndNE": "cpu_and_ne", "cpuAndGPU": "cpu_and_gpu",
                                           "cpuOnly": "cpu_only"}


def test_splitmix64_constants_match_python() -> None:
    source = (KIT / "SeededInputs.swift").read_text()
    assert swift_source.constant(source, "gamma") == int(inputs.GAMMA)
    assert swift_source.constant(source, "m1") == int(inputs.M1)
    assert swift_source.constant(source, "m2") == int(inputs.M2)
    assert swift_source.constant(source, "defaultIntHigh") == inputs.DEFAULT_INT_HIGH
    assert ">> 11) + 1) * 0x1p-53" in source and ">> 11) * 0x1p-53" in source  # Box-Muller uniforms


def _swift_tests() -> str:
    return SWIFT_TESTS.read_text()


def test_swift_golden_vector_is_python_golden() -> None:
    block = re.search(r"let splitMixGolden[^=]*=\s*\[(.*?)\n\]", _swift_tests(), re.S)
    assert block is not None
    swift_golden = {}
    for seed, values in re.findall(r"(\d\w*):\s*\[([^\]]*)\]", block.group(1)):
        swift_golden[int(seed.replace("_", ""), 0)] = swift_source.integer_list(values)
    assert swift_golden == inputs.GOLDEN
    for seed, values in inputs.GOLDEN.items():
        assert inputs.splitmix64(seed, len(values)).tolist() == values


def test_swift_golden_inputs_equal_make_input() -> None:
    found = re.findall(r"GoldenInput\(dtype: \.(\w+), seed: (\d+), high: (\w+),\s*values: \[([^\]]*)\]\)",
                       _swift_tests())
    assert {dtype for dtype, *_ in found} == {"float32", "float16", "int32"}
    for dtype, seed, high, values in found:
        expected = inputs.make_input([len(swift_source.integer_list(values))], dtype, int(seed),
                                     None if high == "nil" else int(high))
        if dtype != "int32":
            expected = expected.view(np.uint32 if dtype == "float32" else np.uint16)
        assert swift_source.integer_list(values) == expected.tolist(), (dtype, seed)


def test_swift_npy_header_golden_is_what_numpy_writes() -> None:
    found = re.findall(r'\("(<\w\d)", \[([\d, ]+)\], "(\{[^"]*\})"\)', _swift_tests())
    assert len(found) >= 3
    for descr, shape, swift_dict in found:
        buffer = io.BytesIO()
        dims = tuple(int(d) for d in shape.split(","))
        np.save(buffer, np.zeros(dims, dtype=np.dtype(descr)))
        raw = buffer.getvalue()
        length = int.from_bytes(raw[8:10], "little")
        assert raw[10:10 + length].decode("latin1").strip() == swift_dict


@pytest.mark.parametrize("name,literal", [("job", "sampleJob"), ("result", "sampleResult")])
def test_swift_sample_documents_validate(name: str, literal: str) -> None:
    doc = json.loads(swift_source.multiline_string(_swift_tests(), literal))
    jsonschema.Draft202012Validator(schema(name)).validate(doc)
    if name == "job":
        assert Job.from_json(doc).inputs[1].high == 1000


# ---- the checker catches one-sided changes -------------------------------------------------------------

def test_renaming_a_swift_key_is_caught() -> None:
    before, after = 'case jobID = "job_id"\n        case status', 'case jobID = "jobid"\n        case status'
    mutated = kit_source().replace(before, after)  # HarnessResult's key only; Job's is followed by `model`
    assert mutated != kit_source()
    problems = contract_problems(mutated, schemas())
    assert any("'job_id' has no Swift coding key" in p for p in problems)
    assert any("'jobid' is not a schema property" in p for p in problems)


def test_renaming_a_schema_property_is_caught() -> None:
    docs = copy.deepcopy(schemas())
    memory = docs["result"]["properties"]["memory"]
    memory["properties"]["peak_footprint_mb"] = memory["properties"].pop("peak_phys_footprint_mb")
    problems = contract_problems(kit_source(), docs)
    assert any("'peak_footprint_mb' has no Swift coding key" in p for p in problems)


def test_a_new_enum_value_or_nested_object_is_caught() -> None:
    docs = copy.deepcopy(schemas())
    docs["job"]["properties"]["compute_units"]["enum"].append("ane_only")
    docs["result"]["properties"]["battery"] = {"type": "object", "properties": {"percent": {"type": "number"}}}
    problems = contract_problems(kit_source(), docs)
    assert any("ComputeUnits" in p and "ane_only" in p for p in problems)
    assert any("battery: an object with no Swift type" in p for p in problems)


def test_a_nullable_key_left_to_synthesized_encoding_is_caught() -> None:
    mutated = kit_source().replace("try c.encode(minAvailableMB, forKey: .minAvailableMB)",
                                   "try c.encodeIfPresent(minAvailableMB, forKey: .minAvailableMB)")
    assert mutated != kit_source()
    assert any("'min_available_mb' is required but nullable" in p for p in contract_problems(mutated, schemas()))


def test_a_wrong_swift_type_is_caught() -> None:
    mutated = kit_source().replace("public let firstPredictMS: Double", "public let firstPredictMS: Int")
    assert any("firstPredictMS: declared Int" in p for p in contract_problems(mutated, schemas()))
