"""Model sources: built-in, a local diffusers folder, and a Hub repo (through a locally written cache)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from orchestrator.errors import SpecError
from orchestrator.harness.inputs import make_input
from orchestrator.models import BuiltinSource, FolderSource, HubSource, SourceProblem, load_source, open_source
from orchestrator.models.hub import HubOptions, component_patterns
from orchestrator.spec import ReleaseSpec
from tests.models.pipelines import save_hub_cache, save_pipeline

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _outputs(source: object, component: str, spec: ReleaseSpec) -> tuple[torch.Tensor, ...]:
    assert hasattr(source, "module") and hasattr(source, "example_inputs")
    inputs = source.example_inputs(component, spec.model.components[component], seed=5)
    with torch.no_grad():
        return tuple(source.module(component, "original")(**{k: torch.from_numpy(v) for k, v in inputs.items()}))


def test_builtin_tiny_sd_identity_and_components() -> None:
    src = load_source("builtin:tiny-sd")
    assert isinstance(src, BuiltinSource)
    assert (src.id, src.revision) == ("builtin:tiny-sd", "seed0-v2")
    assert src.components() == ("text_encoder", "unet", "vae_decoder")
    assert src.input_names("unet") == ("sample", "timestep", "encoder_hidden_states")
    assert src.output_names("text_encoder") == ("last_hidden_state", "pooled_outputs")
    assert load_source("builtin:sd15-unet-random").components() == ("unet",)


def test_builtin_weights_are_seeded_and_independent_of_attention() -> None:
    src = load_source("builtin:tiny-sd")
    torch.manual_seed(123)
    before = torch.rand(1)
    assert src.weights_hash("unet") == src.weights_hash("unet")
    torch.manual_seed(123)
    src.module("unet", "split_einsum_v2")
    assert torch.equal(torch.rand(1), before)  # building did not disturb the caller's RNG
    a = src.module("unet", "original").state_dict()
    b = src.module("unet", "split_einsum_v2").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_module_outputs_have_the_declared_order_and_shapes(tiny_spec: ReleaseSpec) -> None:
    src = load_source(tiny_spec.model)
    hidden, pooled = _outputs(src, "text_encoder", tiny_spec)
    assert hidden.shape == (1, 77, 64) and pooled.shape == (1, 64)
    (noise,) = _outputs(src, "unet", tiny_spec)
    assert noise.shape == (2, 4, 32, 32)
    (image,) = _outputs(src, "vae_decoder", tiny_spec)
    assert image.shape == (1, 3, 64, 64)


def test_example_inputs_use_the_job_seeds(tiny_spec: ReleaseSpec) -> None:
    src = load_source(tiny_spec.model)
    unet = tiny_spec.model.components["unet"]
    inputs = src.example_inputs("unet", unet, seed=10)
    for k, (name, tensor) in enumerate(unet.inputs.items()):
        assert np.array_equal(inputs[name], make_input(tensor.shape, tensor.dtype, 10 + k))
    ids = src.input_plan("text_encoder", tiny_spec.model.components["text_encoder"], seed=0)[0]
    assert (ids.seed, ids.high, ids.dtype) == (0, 1024, "int32")  # token ids stay below the vocab size


def test_local_folder_loads_the_saved_weights(tmp_path: Path, tiny_spec: ReleaseSpec) -> None:
    folder = save_pipeline(tmp_path / "pipe")
    src = load_source("pipe", relative_to=tmp_path)
    assert isinstance(src, FolderSource) and src.id == str(folder.resolve())
    assert src.components() == ("text_encoder", "unet", "vae_decoder")
    assert src.facts("unet").cross_attention_dim == 64 and src.facts("unet").downsample == 2
    builtin = load_source("builtin:tiny-sd")
    for component in ("text_encoder", "vae_decoder"):
        for got, want in zip(_outputs(src, component, tiny_spec), _outputs(builtin, component, tiny_spec),
                             strict=True):
            assert torch.equal(got, want)


def test_local_folder_identity_follows_its_files(tmp_path: Path) -> None:
    folder = save_pipeline(tmp_path / "pipe", ["text_encoder", "vae_decoder"],
                           index_components=["text_encoder", "vae_decoder"])
    src = FolderSource(folder)
    te, vae = src.cache_identity("text_encoder"), src.cache_identity("vae_decoder")
    hashed = src.weights_hash("vae_decoder")
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    again = FolderSource(folder)
    assert again.cache_identity("text_encoder") == te  # only the changed component's identity moves
    assert again.cache_identity("vae_decoder") != vae
    assert again.weights_hash("vae_decoder") != hashed


def test_local_folder_problems(tmp_path: Path) -> None:
    with pytest.raises(SourceProblem, match=r"no model_index\.json"):
        open_source(str(tmp_path))
    with pytest.raises(SpecError, match="neither a built-in model"):
        load_source("does/not/exist", relative_to=tmp_path)
    folder = save_pipeline(tmp_path / "pipe", ["unet"], index_components=["unet"])
    with pytest.raises(SourceProblem, match="has no text_encoder/"):
        FolderSource(folder).facts("text_encoder")


def test_hub_source_from_an_offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          tiny_spec: ReleaseSpec) -> None:
    save_hub_cache(tmp_path / "hub", "mlfarm-test/tiny-sd", COMMIT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    src = load_source("hf://mlfarm-test/tiny-sd@main")
    assert isinstance(src, HubSource) and src.options == HubOptions(tmp_path / "hub", True)
    facts = src.facts("text_encoder")
    assert facts is not None and facts.max_positions == 77
    assert src.cache_identity("unet") == f"commit:{COMMIT}"  # the branch resolved through refs/main
    builtin = load_source("builtin:tiny-sd")
    (image,) = _outputs(src, "vae_decoder", tiny_spec)
    assert torch.equal(image, _outputs(builtin, "vae_decoder", tiny_spec)[0])
    pinned = load_source(f"hf://mlfarm-test/tiny-sd@{COMMIT}")
    assert pinned.cache_identity("unet") == f"commit:{COMMIT}"  # a commit is its own identity
    assert pinned.weights_hash("vae_decoder") == src.weights_hash("vae_decoder")


def test_hub_cache_found_through_hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_hub_cache(tmp_path / "home" / "hub", "mlfarm-test/tiny-sd", COMMIT, ["unet"])
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    src = load_source(f"hf://mlfarm-test/tiny-sd@{COMMIT}")
    assert src.cache_identity("unet") == f"commit:{COMMIT}"  # the snapshot under $HF_HOME/hub
    # the snapshot's weights (the built-in's, as saved by save_hub_cache), in the requested attention layout
    unet = src.module("unet", "split_einsum").state_dict()
    builtin = load_source("builtin:tiny-sd").module("unet", "split_einsum").state_dict()
    assert unet.keys() == builtin.keys() and all(torch.equal(unet[k], builtin[k]) for k in builtin)
    with pytest.raises(SourceProblem, match="no text_encoder/"):
        src.module("text_encoder")


def test_hub_source_offline_and_not_cached(tmp_path: Path) -> None:
    src = open_source(f"hf://mlfarm-test/absent@{COMMIT}",
                      env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path)})
    assert src.facts("unet") is None  # nothing to inspect offline; the spec check falls back to names/ranks
    with pytest.raises(SourceProblem, match="not in the Hub cache") as err:
        src.module("unet")
    assert err.value.fix and "HF_HUB_OFFLINE" in err.value.fix


def test_hub_strings() -> None:
    with pytest.raises(SourceProblem, match="does not pin a revision"):
        open_source("hf://org/repo")
    with pytest.raises(SourceProblem, match="not a Hub source"):
        open_source("hf://just-a-name@main")
    with pytest.raises(SourceProblem, match="unknown source scheme"):
        open_source("s3://bucket/model")
    with pytest.raises(SourceProblem, match="unknown built-in"):
        open_source("builtin:tiny-sdxl")
    assert component_patterns("unet") == ["model_index.json", "unet/*.json", "unet/*.safetensors",
                                          "scheduler/scheduler_config.json"]
