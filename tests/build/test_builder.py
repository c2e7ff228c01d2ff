"""build_spec: cache hits, what a change rebuilds, corruption, shared work, and errors that name the artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.build.builder import BuildEvent, build_spec, execute, plan_build
from orchestrator.build.store import ArtifactStore
from orchestrator.errors import BuildError, UsageError
from orchestrator.spec import ReleaseSpec, load_spec
from tests.fixtures.build import TINY_SPEC_PATH
from tests.models.pipelines import save_hub_cache, save_pipeline

PAIR = ["fp16-none-original", "fp16-palette4-original"]
COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def spec_with(folder: Path, name: str = "tiny-sd", *, check: bool = True, **edits: Any) -> ReleaseSpec:
    """examples/tiny-sd.yaml with top-level sections replaced and/or text encoder inputs changed."""
    data = yaml.safe_load(TINY_SPEC_PATH.read_text())
    data["name"] = name
    if "tokens" in edits:
        data["model"]["components"]["text_encoder"]["inputs"]["input_ids"]["shape"] = [1, edits.pop("tokens")]
    data.update(edits)
    path = folder / f"{name}-{abs(hash(str(data)))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_spec(path, run_checks=check)


class Recorder(list[BuildEvent]):
    def __call__(self, event: BuildEvent) -> None:
        self.append(event)

    def stages(self, variant: str) -> list[str]:
        return [e.stage for e in self if e.variant == variant]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("builder")


@pytest.fixture(scope="module")
def store(folder: Path) -> ArtifactStore:
    return ArtifactStore(folder / "artifacts")


@pytest.fixture(scope="module")
def first(folder: Path, store: ArtifactStore) -> tuple[list[Any], Recorder]:
    events = Recorder()
    entries = build_spec(spec_with(folder), store, components=["text_encoder"], variants=PAIR, progress=events)
    return entries, events


def test_a_cold_build_goes_through_every_stage(first: tuple[list[Any], Recorder]) -> None:
    entries, events = first
    assert [e.variant for e in entries] == PAIR and not any(e.cache_hit for e in entries)
    assert events.stages("fp16-palette4-original") == ["queued", "export", "convert", "compress", "save", "done"]
    # Both variants share one export and one conversion: the stage events arrive together.
    exports = [i for i, e in enumerate(events) if e.stage == "export"]
    assert exports == [2, 3]
    manifest = entries[1].manifest
    assert manifest["build"]["shared"] == {"export": 2, "convert": 2}
    assert manifest["source"]["id"] == "builtin:tiny-sd" and len(manifest["source"]["weights_hash"]) == 64
    assert set(manifest["tools"]) >= {"coremltools", "torch", "mlfarm"}
    assert manifest["variant"] == {"id": "fp16-palette4-original", "precision": "fp16", "weights": "palette4",
                                   "attention": "original"}


def test_an_identical_build_is_all_cache_hits(first: tuple[list[Any], Recorder], folder: Path,
                                              store: ArtifactStore) -> None:
    events = Recorder()
    again = build_spec(spec_with(folder), store, components=["text_encoder"], variants=PAIR, progress=events)
    assert all(e.cache_hit for e in again)
    assert [e.sha256 for e in again] == [e.sha256 for e in first[0]]
    assert {e.stage for e in events} == {"cached"}


def test_adding_a_variant_builds_only_that_one(first: tuple[list[Any], Recorder], folder: Path,
                                               store: ArtifactStore) -> None:
    spec = spec_with(folder, variants={"precision": ["fp16"], "weights": ["none", "palette4", "int8"],
                                       "attention": ["original"]})
    plan = plan_build(spec, store, components=["text_encoder"])
    assert {i.variant.id: i.lookup.reason for i in plan.items} == {
        "fp16-none-original": "hit", "fp16-int8-original": "new", "fp16-palette4-original": "hit"}
    events = Recorder()
    entries = execute(plan, spec, store, progress=events)
    assert [e.cache_hit for e in entries] == [True, False, True]
    assert events.stages("fp16-int8-original")[-1] == "done"
    assert events.stages("fp16-none-original") == ["cached"]


def test_changing_an_input_shape_rebuilds_and_says_why(first: tuple[list[Any], Recorder], folder: Path,
                                                       store: ArtifactStore) -> None:
    plan = plan_build(spec_with(folder, tokens=64), store, components=["text_encoder"], variants=PAIR)
    assert {i.lookup.reason for i in plan.items} == {"inputs changed: inputs"}


def test_the_same_inputs_under_another_spec_name_reuse_the_blob(first: tuple[list[Any], Recorder], folder: Path,
                                                                 store: ArtifactStore) -> None:
    events = Recorder()
    entries = build_spec(spec_with(folder, name="tiny-sd-copy"), store, components=["text_encoder"],
                         variants=PAIR, progress=events)
    assert all(e.cache_hit for e in entries) and {e.stage for e in events} == {"cached"}
    assert [e.sha256 for e in entries] == [e.sha256 for e in first[0]]
    assert store.get("tiny-sd-copy", "text_encoder", PAIR[0]) is not None


def test_a_corrupt_blob_is_rebuilt_never_used(first: tuple[list[Any], Recorder], folder: Path,
                                              store: ArtifactStore) -> None:
    entry = store.get("tiny-sd", "text_encoder", "fp16-none-original")
    assert entry is not None
    weights = entry.path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert store.verify(entry) == "corrupt"
    events = Recorder()
    rebuilt = build_spec(spec_with(folder), store, components=["text_encoder"], variants=["fp16-none-original"],
                         progress=events)[0]
    assert events[0].stage == "queued" and events[0].detail == "blob corrupt"
    assert rebuilt.cache_hit is False and store.verify(rebuilt) == "ok"


def test_unknown_selection_is_a_usage_error(folder: Path, store: ArtifactStore) -> None:
    with pytest.raises(UsageError, match="not in the spec's variants") as err:
        plan_build(spec_with(folder), store, variants=["fp16-palette5-original"])
    assert err.value.fix and "fp16-palette6-split_einsum_v2" in err.value.fix
    with pytest.raises(UsageError, match="safety_checker"):
        plan_build(spec_with(folder), store, components=["safety_checker"])


def test_a_failing_export_names_component_variants_and_fix(folder: Path, tmp_path: Path) -> None:
    # 78 tokens passes nothing but the schema (checks off): CLIP has 77 positions, so tracing fails.
    spec = spec_with(folder, tokens=78, check=False)
    store = ArtifactStore(tmp_path / "artifacts")  # its own empty store: nothing else can be in it afterwards
    events = Recorder()
    with pytest.raises(BuildError) as err:
        build_spec(spec, store, components=["text_encoder"], variants=PAIR, progress=events)
    assert "text_encoder" in err.value.message and "fp16-palette4-original" in err.value.message
    assert err.value.fix and err.value.__cause__ is not None
    assert events.stages("fp16-none-original")[-1] == "failed"
    assert store.entries() == []  # nothing was recorded
    assert all(item.lookup.entry is None and item.lookup.reason == "new" for item in plan_build(
        spec, store, components=["text_encoder"], variants=PAIR).items)


@pytest.mark.parametrize("kind", ["folder", "hub"])
def test_a_folder_or_hub_copy_of_the_weights_builds_the_same_bytes(
        kind: str, first: tuple[list[Any], Recorder], store: ArtifactStore, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if kind == "folder":
        save_pipeline(tmp_path / "pipe", ["text_encoder"], index_components=["text_encoder"])
        source, source_id = "pipe", str((tmp_path / "pipe").resolve())  # relative to the spec's folder
    else:
        save_hub_cache(tmp_path / "hub", "mlfarm-test/tiny-sd", COMMIT, ["text_encoder"])
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
        source, source_id = f"hf://mlfarm-test/tiny-sd@{COMMIT}", "hf://mlfarm-test/tiny-sd"
    data = yaml.safe_load(TINY_SPEC_PATH.read_text())
    data["model"] = {"source": source, "components": {"text_encoder": data["model"]["components"]["text_encoder"]}}
    budgets = data["gates"]["latency_budget_ms"]  # budgets may name only components the model has
    data["gates"]["latency_budget_ms"] = {"text_encoder": budgets["text_encoder"]}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(data))
    entry = build_spec(load_spec(tmp_path / "spec.yaml"), ArtifactStore(tmp_path / "artifacts"),
                       variants=["fp16-none-original"])[0]
    assert entry.manifest["source"]["id"] == source_id
    if kind == "hub":
        assert entry.manifest["source"]["identity"] == f"commit:{COMMIT}"
    builtin = store.get("tiny-sd", "text_encoder", "fp16-none-original")
    assert builtin is not None
    # Same weights, same conversion: byte-identical packages, whatever the source.
    assert entry.sha256 == builtin.sha256
