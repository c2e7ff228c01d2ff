"""`model.source: X.mlpackage` / a folder of packages: the spec is completed from the packages' own
descriptions, and every bad input is one exit-2 message naming the file, the key and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import coremltools as ct
import pytest
import yaml

from orchestrator.models import PackageSource, load_source
from orchestrator.spec import load_spec
from orchestrator.spec.model import TensorSpec
from tests.models.packages import convert_classifier, convert_embedder


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("packages")
    convert_classifier(root / "Classifier.mlpackage")
    convert_classifier(root / "Flexible.mlpackage", flexible=True)
    (root / "pair").mkdir()
    convert_classifier(root / "pair" / "vision.mlpackage")
    convert_embedder(root / "pair" / "text.mlpackage")
    return root


def write_spec(folder: Path, model: dict, name: str = "pkg", **extra: object) -> Path:
    data = {"name": name, "model": model, "devices": ["host"],
            "variants": {"weights": ["none"], "attention": ["original"]}, **extra}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_single_package_is_one_component_named_by_the_spec_or_its_stem(packages):
    named = load_spec(write_spec(packages, {"source": "Classifier.mlpackage", "components": {"classifier": {}}}))
    assert list(named.model.components) == ["classifier"]
    # coremltools 9 gives an fp16 program of an iOS 16+ target fp16 inputs and outputs
    assert named.model.components["classifier"].inputs == {"image": TensorSpec((1, 3, 16, 16), "float16")}
    bare = load_spec(write_spec(packages, {"source": "Classifier.mlpackage"}))
    assert list(bare.model.components) == ["Classifier"]
    source = load_source(bare.model, relative_to=packages)
    assert isinstance(source, PackageSource)
    assert source.output_names("Classifier") == ("logits",)
    assert source.prebuilt("Classifier") == (packages / "Classifier.mlpackage").resolve()


def test_a_folder_of_packages_gives_one_component_per_stem(packages):
    spec = load_spec(write_spec(packages, {"source": "pair/", "components": {
        "text": {"inputs": {"input_ids": {"shape": [1, 8], "high": 100}}}}}))
    assert sorted(spec.model.components) == ["text", "vision"]
    assert spec.model.components["text"].inputs["input_ids"] == TensorSpec((1, 8), "int32", 100)


def test_cache_identity_survives_coremltools_rewriting_the_manifest(packages):
    source = PackageSource.single((packages / "Classifier.mlpackage").resolve(), "c")
    before = source.cache_identity("c")
    ct.models.MLModel(str(source.prebuilt("c")), skip_model_load=True)  # touches Manifest.json
    assert source.cache_identity("c") == before


def check(mlfarm, spec: Path):
    result = mlfarm("spec", "check", spec)
    return result.exit_code, result.err


def test_an_input_the_package_does_not_have(packages, mlfarm):
    code, err = check(mlfarm, write_spec(packages, {"source": "Classifier.mlpackage", "components": {
        "c": {"inputs": {"pixels": {"shape": [1, 3, 16, 16]}}}}}))
    assert code == 2 and "model.components.c.inputs.pixels" in err and "has no input 'pixels'" in err
    assert "image [1, 3, 16, 16]" in err and "Traceback" not in err


def test_a_shape_the_package_does_not_allow(packages, mlfarm):
    code, err = check(mlfarm, write_spec(packages, {"source": "Classifier.mlpackage", "components": {
        "c": {"inputs": {"image": {"shape": [1, 3, 32, 32]}}}}}))
    assert code == 2 and "model.components.c.inputs.image.shape" in err and "fixed: [1, 3, 16, 16]" in err


def test_a_flexible_package_needs_a_fixed_shape_within_its_range(packages, mlfarm):
    code, err = check(mlfarm, write_spec(packages, {"source": "Flexible.mlpackage"}))
    assert code == 2 and "Flexible.inputs.image.shape" in err and "8..64" in err
    code, err = check(mlfarm, write_spec(packages, {"source": "Flexible.mlpackage", "components": {
        "f": {"inputs": {"image": {"shape": [1, 3, 128, 16]}}}}}))
    assert code == 2 and "not a shape the package accepts" in err
    code, err = check(mlfarm, write_spec(packages, {"source": "Flexible.mlpackage", "components": {
        "f": {"inputs": {"image": {"shape": [1, 3, 32, 24]}}}}}))
    assert code == 0, err


def test_an_int_input_needs_its_bound(packages, mlfarm):
    code, err = check(mlfarm, write_spec(packages, {"source": "pair"}))
    assert code == 2 and "model.components.text.inputs.input_ids.high" in err and "high: VOCAB_SIZE" in err


def test_a_package_that_is_not_an_ml_program(packages, mlfarm, tmp_path):
    fake = tmp_path / "Old.mlpackage"
    shutil.copytree(packages / "Classifier.mlpackage", fake)
    model = fake / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = ct.utils.load_spec(str(model))
    spec.ClearField("mlProgram")
    spec.neuralNetwork.SetInParent()  # an empty neural network: the pre-ML-program format
    model.write_bytes(spec.SerializeToString())
    code, err = check(mlfarm, write_spec(tmp_path, {"source": "Old.mlpackage"}))
    assert code == 2 and "model.components.Old" in err and "not an ML program" in err
    assert "convert_to='mlprogram'" in err


def test_a_broken_package_and_a_missing_one(packages, mlfarm, tmp_path):
    broken = tmp_path / "Broken.mlpackage"
    broken.mkdir()
    (broken / "Manifest.json").write_text("{not json")
    code, err = check(mlfarm, write_spec(tmp_path, {"source": "Broken.mlpackage"}))
    assert code == 2 and "model.components.Broken" in err and "Broken.mlpackage" in err and "Traceback" not in err
    code, err = check(mlfarm, write_spec(tmp_path, {"source": "Missing.mlpackage"}))
    assert code == 2 and "model.source" in err and "does not exist" in err


def test_the_spec_cannot_ask_a_package_for_another_precision(packages, mlfarm):
    code, err = check(mlfarm, write_spec(packages, {"source": "Classifier.mlpackage"}, name="fp32",
                                         variants={"precision": ["fp32"], "attention": ["original"]}))
    assert code == 2 and "variants.precision" in err and "[fp16]" in err


def test_torch_sources_still_need_their_components(repo, mlfarm, tmp_path):
    code, err = check(mlfarm, write_spec(tmp_path, {"source": "builtin:tiny-sd"}))
    assert code == 2 and "model.components" in err and "text_encoder" in err
