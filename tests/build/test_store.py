"""The artifact store on real packages: content addressing, lookups, corruption, manifests, gc."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from orchestrator.build.keys import BuildKey, changed_fields
from orchestrator.build.maintenance import STALE_TMP_SECONDS, plan_gc, verify_entries
from orchestrator.build.package import tree_hash
from orchestrator.build.store import ArtifactEntry, ArtifactStore
from orchestrator.errors import ArtifactError


@pytest.fixture
def package(tiny_artifacts: dict[tuple[str, str], ArtifactEntry], tmp_path: Path) -> Path:
    """A private copy of a real package (the session's artifacts stay untouched)."""
    source = tiny_artifacts[("text_encoder", "fp16-none-original")].path
    return Path(shutil.copytree(source, tmp_path / "staged" / "text_encoder.mlpackage"))


def put(store: ArtifactStore, package: Path, variant: str = "fp16-none-original", spec: str = "rel",
        key: str = "k1") -> ArtifactEntry:
    return store.put(package, spec_name=spec, component="text_encoder", variant=variant,
                     key=BuildKey.of({"k": key}), manifest={"component": "text_encoder", "note": key})


def flip_a_weight_byte(entry: ArtifactEntry) -> None:
    weights = entry.path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0x01
    weights.write_bytes(bytes(data))


def test_blobs_are_named_by_their_tree_hash(package: Path, tmp_path: Path) -> None:
    expected = tree_hash(package)
    store = ArtifactStore(tmp_path / "artifacts")
    entry = put(store, package)
    assert entry.sha256 == expected and entry.path == store.blobs / expected / "text_encoder.mlpackage"
    assert not package.exists()  # moved, not copied
    assert entry.id == f"text_encoder-fp16-none-original@{expected[:12]}"
    assert entry.manifest["sha256"] == expected and entry.manifest["id"] == entry.id
    assert store.get("rel", "text_encoder", "fp16-none-original") == entry


def test_tree_hash_sees_content_and_names(package: Path, tmp_path: Path) -> None:
    before = tree_hash(package)
    copy = Path(shutil.copytree(package, tmp_path / "copy.mlpackage"))
    assert tree_hash(copy) == before
    (copy / "Manifest.json").rename(copy / "Manifest2.json")
    assert tree_hash(copy) != before


def test_lookup_hits_only_verified_blobs(package: Path, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    entry = put(store, package)
    key = BuildKey.of({"k": "k1"})
    assert store.lookup("rel", "text_encoder", "fp16-none-original", key).reason == "hit"
    assert store.lookup("rel", "text_encoder", "fp16-none-original", BuildKey.of({"k": "k2"})).reason == \
        "inputs changed: k"
    assert store.lookup("rel", "text_encoder", "fp16-palette6-original", key).reason == "hit"  # same key, shared
    flip_a_weight_byte(entry)
    missed = store.lookup("rel", "text_encoder", "fp16-none-original", key)
    assert (missed.entry, missed.reason, missed.stale_sha) == (None, "blob corrupt", entry.sha256)
    shutil.rmtree(entry.path)
    assert store.lookup("rel", "text_encoder", "fp16-none-original", key).reason == "blob missing"


def test_verify_names_each_bad_artifact(package: Path, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    entry = put(store, package)
    put(store, Path(shutil.copytree(entry.path, tmp_path / "b" / "text_encoder.mlpackage")), spec="other")
    results = verify_entries(store, store.entries())
    assert [r.state for r in results] == ["ok", "ok"]
    flip_a_weight_byte(entry)
    assert [(r.entry.name, r.state) for r in verify_entries(store, store.entries())] == [
        ("other/text_encoder/fp16-none-original", "corrupt"), ("rel/text_encoder/fp16-none-original", "corrupt")]


def test_find_by_id_name_or_prefix(package: Path, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    entry = put(store, package)
    assert store.find(entry.id) == entry
    assert store.find("rel/text_encoder/fp16-none-original") == entry
    assert store.find(entry.sha256[:8]) == entry
    with pytest.raises(ArtifactError, match="no artifact") as err:
        store.find("unet-fp16-none-original@000000000000")
    assert err.value.fix and "mlfarm artifacts list" in err.value.fix


def test_manifest_sections_survive_a_rebuild_of_the_same_bytes(package: Path, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    backup = Path(shutil.copytree(package, tmp_path / "again" / "text_encoder.mlpackage"))
    entry = put(store, package)
    updated = store.update_manifest(entry, "analysis", {"flops": 1.5e9})
    assert updated.manifest["analysis"] == {"flops": 1.5e9}
    assert store.get("rel", "text_encoder", "fp16-none-original").manifest["analysis"] == {"flops": 1.5e9}  # type: ignore[union-attr]
    again = put(store, backup, key="k2")
    assert again.sha256 == entry.sha256 and again.manifest["analysis"] == {"flops": 1.5e9}
    assert again.manifest["note"] == "k2"


def test_gc_plans_then_deletes_only_garbage(package: Path, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    keep = put(store, package)
    orphan = store.blobs / ("f" * 64)
    shutil.copytree(keep.path, orphan / "text_encoder.mlpackage")
    (store.keys / "orphan.json").write_text('{"sha256": "' + "f" * 64 + '"}')
    old_tmp, new_tmp = store.tmp / "old", store.tmp / "new"
    old_tmp.mkdir(parents=True)
    new_tmp.mkdir()
    past = time.time() - STALE_TMP_SECONDS - 10
    os.utime(old_tmp, (past, past))
    plan = plan_gc(store)
    assert plan.blobs == (orphan,) and plan.tmp == (old_tmp,) and [p.name for p in plan.keys] == ["orphan.json"]
    assert plan.bytes_freed > 0 and orphan.exists()  # planning deletes nothing
    plan.execute()
    assert not orphan.exists() and not old_tmp.exists() and new_tmp.exists()
    assert store.verify(keep) == "ok" and plan_gc(store).blobs == ()


def test_changed_fields_explain_rebuilds() -> None:
    old = BuildKey.of({"inputs": [{"shape": (1, 77)}], "tools": {"torch": "2.13.0", "coremltools": "9.0"}})
    new = BuildKey.of({"inputs": [{"shape": (1, 64)}], "tools": {"torch": "2.13.0", "coremltools": "9.1"}})
    assert changed_fields(old.inputs, new.inputs) == ["inputs", "tools.coremltools"]
    assert BuildKey.of({"a": (1, 2)}) == BuildKey.of({"a": [1, 2]})
