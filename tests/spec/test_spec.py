"""Release specs: the shipped examples, bad specs (exit 2 naming file + key) and random YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import SpecError
from orchestrator.spec import DeviceRef, load_spec

TINY = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "tiny-sd.yaml").read_text())


def write_spec(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_examples_are_valid(repo, mlfarm):
    for name in ("tiny-sd.yaml", "sd21-base.yaml"):
        result = mlfarm("spec", "check", repo / "examples" / name, "--json")
        assert result.exit_code == 0, result.err
        data = result.json()
        assert data["spec"]["name"] == name.removesuffix(".yaml")
        assert data["variants"]


def test_tiny_example_variant_space(repo):
    spec = load_spec(repo / "examples" / "tiny-sd.yaml")
    ids = [v.id for v in spec.variant_list()]
    assert "fp32-none-original" in ids and "fp16-palette4-g16-split_einsum_v2" in ids
    assert len(ids) == len(set(ids)) == 2 * 5 + 1
    assert spec.model.components["unet"].inputs["sample"].shape == (2, 4, 32, 32)
    assert spec.gates.latency_budget("unet", "iphone") == 2000


def test_defaults_fill_missing_sections(tmp_path):
    spec = load_spec(write_spec(tmp_path, {"name": "m", "devices": ["host"], "model": {
        "source": "builtin:tiny-sd", "components": {"unet": {"inputs": {"x": {"shape": [1]}}}}}}), run_checks=False)
    assert spec.gates.min_psnr_db == 35 and spec.gates.memory_headroom == 0.15
    assert spec.regression.latency_pct == 5 and spec.regression.memory_mb == 32
    assert spec.baseline == "last"


def modified(path: str, value: object) -> dict:
    data = yaml.safe_load(yaml.safe_dump(TINY))
    node = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if value is ...:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return data


@pytest.mark.parametrize("data, key, words", [
    (modified("variants.weights", ["none", "palette5"]), "variants", "unknown value 'palette5'"),
    (modified("measure.iterations", 0), "measure.iterations", "expected an integer >= 1"),
    (modified("model.components.unet.inputs.sample.shape", [2, -4, 32]), "model.components.unet.inputs.sample.shape[1]",
     "got -4"),
    (modified("gates.memory_headroom", 1.5), "gates.memory_headroom", "expected a number >= 0 and < 1"),
    (modified("devices", ["virtual:iphone-99"]), "devices[0]", "unknown device profile 'iphone-99'"),
    (modified("devices", ["bluetooth:foo"]), "devices[0]", "unknown device kind 'bluetooth'"),
    (modified("model", ...), "model", "missing required key"),
    (modified("gates.min_psnr", 30), "gates.min_psnr", "unknown key"),
    (modified("baseline", "yesterday!"), "baseline", "does not match"),
])
def test_bad_specs_exit_2_with_file_and_key(tmp_path, mlfarm, data, key, words):
    result = mlfarm("spec", "check", write_spec(tmp_path, data), "--json")
    assert result.exit_code == 2, result.out
    problems = result.json()["error"]["problems"]
    assert any(p["key"].startswith(key) and words in p["message"] for p in problems), problems
    assert all(p["file"].endswith("spec.yaml") for p in problems)
    assert "Traceback" not in result.err


def test_missing_spec_file(tmp_path, mlfarm):
    result = mlfarm("spec", "check", tmp_path / "nope.yaml")
    assert result.exit_code == 2 and "file not found" in result.err


def test_device_refs():
    assert DeviceRef.parse("host").kind == "host"
    assert DeviceRef.parse("host:iphone-12").profile_id == "iphone-12"
    assert DeviceRef.parse("virtual:iphone-15-pro").kind == "virtual"
    assert DeviceRef.parse("usb:00008101-000A").udid == "00008101-000A"
    assert DeviceRef.parse("iphone-12").kind == "catalog"
    with pytest.raises(ValueError):
        DeviceRef.parse("ssh:foo")


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=15)
sections = st.sampled_from(sorted(TINY))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.one_of(values.map(yaml.safe_dump),
                     st.tuples(sections, values).map(lambda kv: yaml.safe_dump({**TINY, kv[0]: kv[1]})),
                     st.text(max_size=300)))
def test_random_specs_never_traceback(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("spec") / "fuzz.yaml"
    path.write_text(doc)
    try:
        load_spec(path, run_checks=False)
    except SpecError as err:
        assert err.exit_code == 2
        assert all(p.file.endswith("fuzz.yaml") for p in err.problems)
