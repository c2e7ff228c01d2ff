"""Variants built from a prebuilt package: imported as `none`, compressed from the package itself, sizes as
the schemes promise, PSNR against the package's own outputs in each manifest; `mlfarm qualify` runs on it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from orchestrator.build.builder import build_spec
from orchestrator.build.store import ArtifactStore
from orchestrator.mil.check import check_spec
from orchestrator.spec import load_spec
from tests.build.programs import compressed_ops, load_program
from tests.models.packages import convert_classifier, convert_embedder

pytestmark = pytest.mark.slow

WEIGHTS = ["none", "palette6", "int4-b32"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("from-package")
    package = convert_classifier(root / "Classifier.mlpackage", channels=64)
    spec_path = root / "pkg.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "pkg", "model": {"source": "Classifier.mlpackage", "components": {"classifier": {}}},
        "variants": {"weights": WEIGHTS, "attention": ["original"]}, "devices": ["host"]}))
    spec = load_spec(spec_path)
    store = ArtifactStore(root / "artifacts")
    entries = {e.variant.split("-", 1)[1].rsplit("-", 1)[0]: e for e in build_spec(spec, store)}
    checks = check_spec(spec, store, spec_dir=root)
    return package, store, {w: store.get("pkg", "classifier", e.variant) for w, e in entries.items()}, checks


def test_none_is_the_package_itself(built):
    package, _, entries, _ = built
    source_weights = (package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").read_bytes()
    stored = (entries["none"].path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").read_bytes()
    assert stored == source_weights
    assert entries["none"].manifest["build"]["exporter"] == "import"
    assert entries["none"].manifest["min_deployment_target"]["iOS"] == 16  # the package's own opset


def test_palette6_and_int4_b32_store_what_their_bits_promise(built):
    _, _, entries, _ = built
    palette = compressed_ops(load_program(entries["palette6"].path))
    assert palette and {c.op_type for c in palette} == {"constexpr_lut_to_dense"}
    for c in palette:
        luts = 2 * 64  # 64 fp16 entries per tensor
        assert c.stored_bytes == pytest.approx(c.dense_fp16_bytes * 6 / 16 + luts, rel=0.02)
    blocks = compressed_ops(load_program(entries["int4-b32"].path))
    assert blocks and {c.op_type for c in blocks} == {"constexpr_blockwise_shift_scale"}
    for c in blocks:
        out_channels, in_channels = c.op.outputs[0].shape[:2]
        scales = 2 * out_channels * math.ceil(in_channels / 32)  # one fp16 scale per block of 32 input channels
        assert c.stored_bytes == pytest.approx(c.dense_fp16_bytes * 4 / 16 + scales, rel=0.02)
    assert entries["int4-b32"].manifest["min_deployment_target"]["iOS"] == 18
    assert entries["int4-b32"].manifest["weights"]["bytes_stored"] < entries["palette6"].manifest["weights"][
        "bytes_stored"] < entries["none"].manifest["weights"]["bytes_stored"]


def test_psnr_against_the_package_is_in_every_manifest(built):
    _, store, entries, checks = built
    assert all(c.error is None for c in checks), [c.error for c in checks]
    quality = {w: store.get("pkg", "classifier", e.variant).manifest["quality"] for w, e in entries.items()}
    assert {q["reference"] for q in quality.values()} == {"package"}
    assert quality["none"]["psnr_min_db"] == 200.0  # identical to itself (capped)
    assert 25 < quality["int4-b32"]["psnr_min_db"] < quality["palette6"]["psnr_min_db"] < 200
    assert all(math.isfinite(q["psnr_min_db"]) for q in quality.values())


def test_analyze_by_artifact_id_reopens_the_package_as_reference(built, mlfarm):
    _, store, entries, _ = built
    result = mlfarm("--artifacts", store.root, "analyze", entries["int4-b32"].id, "--json")
    assert result.exit_code in (0, 1), result.err
    (item,) = result.json()["artifacts"]
    assert item["quality"]["reference"] == "package" and item["quality"]["psnr_min_db"] > 25


def _qualify(mlfarm, spec: Path) -> tuple[int, dict]:
    result = mlfarm("qualify", spec, "--devices", "host", "--format", "json", "--json")
    return result.exit_code, (result.json() if result.out.strip() else {"err": result.err})


def test_qualify_a_single_package_converted_elsewhere(mlfarm, tmp_path):
    convert_classifier(tmp_path / "Net.mlpackage")
    spec = tmp_path / "net.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "net", "model": {"source": "Net.mlpackage"}, "devices": ["host"], "baseline": "none",
        "variants": {"weights": ["none", "int8"], "attention": ["original"], "compute_units": ["cpu_only"]},
        "measure": {"warmup": 1, "iterations": 3}}))
    code, out = _qualify(mlfarm, spec)
    assert code in (0, 1), out
    verdicts = out["report"]["verdicts"]
    assert {v["component"] for v in verdicts} == {"Net"}
    assert all(v["job_status"] == "ok" for v in verdicts), verdicts


def test_qualify_a_folder_of_two_packages(mlfarm, tmp_path):
    (tmp_path / "models").mkdir()
    convert_classifier(tmp_path / "models" / "vision.mlpackage")
    convert_embedder(tmp_path / "models" / "text.mlpackage")
    spec = tmp_path / "pair.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "pair", "devices": ["host"], "baseline": "none",
        "model": {"source": "models", "components": {"text": {"inputs": {"input_ids": {"shape": [1, 8],
                                                                                       "high": 100}}}}},
        "variants": {"weights": ["none"], "attention": ["original"], "compute_units": ["cpu_only"]},
        "measure": {"warmup": 1, "iterations": 3}}))
    code, out = _qualify(mlfarm, spec)
    assert code in (0, 1), out
    verdicts = out["report"]["verdicts"]
    assert {v["component"] for v in verdicts} == {"text", "vision"}
    assert all(v["job_status"] == "ok" for v in verdicts), verdicts
