"""The model check in SPEC_CHECKS: component names and input shapes, through load_spec and the CLI."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.errors import SpecError
from orchestrator.models import COMPONENTS
from orchestrator.models.checks import SHAPE_CHECKS, check_model
from orchestrator.spec import load_spec
from orchestrator.spec.loader import SPEC_CHECKS
from tests.fixtures.build import TINY_SPEC_PATH
from tests.models.pipelines import save_hub_cache, save_pipeline

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def tiny_yaml() -> dict[str, Any]:
    data = yaml.safe_load(TINY_SPEC_PATH.read_text())
    assert isinstance(data, dict)
    return data


def write(tmp_path: Path, data: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> Path:
    changed = copy.deepcopy(data)
    edit(changed)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(changed))
    return path


def problems(path: Path) -> dict[str, str]:
    with pytest.raises(SpecError) as err:
        load_spec(path)
    return {p.key: f"{p.message} | fix: {p.fix}" for p in err.value.problems}


def inputs(component: str, name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: d["model"]["components"][component]["inputs"][name]


def test_registered_once_and_complete() -> None:
    assert SPEC_CHECKS.count(check_model) == 1
    assert set(SHAPE_CHECKS) == set(COMPONENTS)


def test_the_example_passes() -> None:
    assert load_spec(TINY_SPEC_PATH).name == "tiny-sd"


def test_unknown_component_names_the_key_and_the_known_ones(tmp_path: Path, tiny_yaml: dict[str, Any]) -> None:
    path = write(tmp_path, tiny_yaml, lambda d: d["model"]["components"].update(
        {"safety_checker": {"inputs": {"images": {"shape": [1, 3, 64, 64]}}}}))
    found = problems(path)
    assert list(found) == ["model.components.safety_checker"]
    assert "unknown component 'safety_checker'" in found["model.components.safety_checker"]
    assert "text_encoder, unet, vae_decoder" in found["model.components.safety_checker"]


@pytest.mark.parametrize(("edit", "key", "words"), [
    (lambda d: inputs("unet", "sample")(d).update(shape=[2, 4, 33, 32]), "model.components.unet.inputs.sample.shape",
     "latent height 33 is not a multiple of 2"),
    (lambda d: inputs("unet", "encoder_hidden_states")(d).update(shape=[2, 77, 768]),
     "model.components.unet.inputs.encoder_hidden_states.shape", "cross_attention_dim 64"),
    (lambda d: inputs("unet", "sample")(d).update(shape=[2, 9, 32, 32]), "model.components.unet.inputs.sample.shape",
     "9 latent channels, the UNet takes 4"),
    (lambda d: inputs("unet", "timestep")(d).update(shape=[3]), "model.components.unet.inputs.timestep.shape",
     "batch 3 does not match the sample batch 2"),
    (lambda d: inputs("text_encoder", "input_ids")(d).update(shape=[1, 78]),
     "model.components.text_encoder.inputs.input_ids.shape", "78 tokens exceed the text encoder's 77"),
    (lambda d: inputs("text_encoder", "input_ids")(d).update(dtype="float32"),
     "model.components.text_encoder.inputs.input_ids.dtype", "input_ids must be int32"),
    (lambda d: inputs("vae_decoder", "z")(d).update(shape=[4, 32, 32]), "model.components.vae_decoder.inputs.z.shape",
     "expected rank 4"),
    (lambda d: d["model"]["components"]["vae_decoder"]["inputs"].update(latents=inputs("vae_decoder", "z")(d)),
     "model.components.vae_decoder.inputs.latents", "vae_decoder has no input 'latents'"),
    (lambda d: d["model"]["components"]["unet"]["inputs"].pop("timestep"), "model.components.unet.inputs",
     "missing input 'timestep'"),
    (lambda d: d["model"].update(source="builtin:sd3"), "model.source", "unknown built-in model 'sd3'"),
    (lambda d: d["model"].update(source="builtin:sd15-unet-random"), "model.components.text_encoder",
     "builtin:sd15-unet-random has no text_encoder"),
])
def test_shape_problems(tmp_path: Path, tiny_yaml: dict[str, Any], edit: Callable[[dict[str, Any]], None],
                        key: str, words: str) -> None:
    found = problems(write(tmp_path, tiny_yaml, edit))
    assert key in found, found
    assert words in found[key]
    assert "| fix: None" not in found[key]


def test_sd15_unet_shapes(tmp_path: Path, tiny_yaml: dict[str, Any]) -> None:
    def sd15(d: dict[str, Any]) -> None:
        d["model"] = {"source": "builtin:sd15-unet-random", "components": {"unet": {"inputs": {
            "sample": {"shape": [2, 4, 60, 64]}, "timestep": {"shape": [2]},
            "encoder_hidden_states": {"shape": [2, 77, 768]}}}}}
    found = problems(write(tmp_path, tiny_yaml, sd15))
    assert "latent height 60 is not a multiple of 8" in found["model.components.unet.inputs.sample.shape"]
    assert "e.g. 56" in found["model.components.unet.inputs.sample.shape"]


def test_local_folder_source_is_checked_against_its_configs(tmp_path: Path, tiny_yaml: dict[str, Any]) -> None:
    save_pipeline(tmp_path / "pipe")

    def local(d: dict[str, Any]) -> None:
        d["model"]["source"] = "pipe"  # relative to the spec's folder
        inputs("unet", "encoder_hidden_states")(d).update(shape=[2, 77, 32])
    found = problems(write(tmp_path, tiny_yaml, local))
    assert list(found) == ["model.components.unet.inputs.encoder_hidden_states.shape"]


def test_uncached_hub_source_gets_the_offline_checks(tmp_path: Path, tiny_yaml: dict[str, Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))

    def hub(d: dict[str, Any]) -> None:
        d["model"]["source"] = f"hf://mlfarm-test/absent@{COMMIT}"
        inputs("unet", "encoder_hidden_states")(d).update(shape=[2, 77, 1024])  # unknowable offline: accepted
        inputs("unet", "sample")(d).update(shape=[2, 4, 32])  # a rank error needs no config
    assert list(problems(write(tmp_path, tiny_yaml, hub))) == ["model.components.unet.inputs.sample.shape"]


def test_cached_hub_source_is_checked_like_a_folder(tmp_path: Path, tiny_yaml: dict[str, Any],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    save_hub_cache(tmp_path / "hub", "mlfarm-test/tiny", COMMIT, ["unet"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))

    def hub(d: dict[str, Any]) -> None:
        d["model"]["source"] = f"hf://mlfarm-test/tiny@{COMMIT}"
        inputs("unet", "encoder_hidden_states")(d).update(shape=[2, 77, 1024])
    found = problems(write(tmp_path, tiny_yaml, hub))
    assert list(found) == ["model.components.unet.inputs.encoder_hidden_states.shape"]


def test_cli_reports_bad_specs_with_exit_2(tmp_path: Path, tiny_yaml: dict[str, Any], mlfarm: Callable[..., Any]
                                           ) -> None:
    path = write(tmp_path, tiny_yaml, lambda d: inputs("unet", "sample")(d).update(shape=[2, 4, 31, 32]))
    for command in (("spec", "check"), ("build",)):
        result = mlfarm(*command, path)
        assert result.exit_code == 2
        assert "model.components.unet.inputs.sample.shape" in result.err
        assert "Traceback" not in result.err
    result = mlfarm("build", path, "--json")
    assert result.json()["error"]["problems"][0]["key"] == "model.components.unet.inputs.sample.shape"
