"""The store seals each manifest it writes: a measured figure edited by hand (a PSNR raised from 26.8 to
200 dB) makes the artifact corrupt for `mlfarm artifacts verify` and for lookups, which then rebuild it."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.build.keys import BuildKey
from orchestrator.build.store import ArtifactStore
from tests.build.test_store import package, put  # noqa: F401  (the fixture: a private copy of a real package)


def edit_quality(store: ArtifactStore, sha: str, psnr: float) -> None:
    path = store.blob_dir(sha) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["quality"]["psnr_db"] = psnr
    path.write_text(json.dumps(manifest, indent=2))


def test_an_edited_quality_figure_is_detected_by_verify_and_lookup(package: Path, tmp_path: Path,  # noqa: F811
                                                                   mlfarm) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    entry = store.update_manifest(put(store, package), "quality", {"psnr_db": 26.8, "passed": False})
    assert store.verify(entry) == "ok"
    assert mlfarm("--artifacts", store.root, "artifacts", "verify").exit_code == 0
    edit_quality(store, entry.sha256, 200.0)
    assert store.verify(entry) == "corrupt"
    result = mlfarm("--artifacts", store.root, "artifacts", "verify")
    assert result.exit_code == 2 and entry.id in result.err and "corrupt" in result.err
    lookup = store.lookup("rel", "text_encoder", "fp16-none-original", BuildKey.of({"k": "k1"}))
    assert lookup.entry is None and lookup.reason == "blob corrupt"


def test_a_manifest_written_by_the_store_stays_sealed_across_sections(package: Path, tmp_path: Path) -> None:  # noqa: F811
    store = ArtifactStore(tmp_path / "artifacts")
    entry = put(store, package)
    entry = store.update_manifest(entry, "analysis", {"flops": 12})
    entry = store.update_manifest(entry, "quality", {"psnr_db": 31.5})
    assert store.verify(entry) == "ok" and entry.manifest["quality"] == {"psnr_db": 31.5}
    edit_quality(store, entry.sha256, 31.5)  # rewritten with the same values (other formatting): still sealed
    assert store.verify(entry) == "ok"


def test_a_store_from_before_seals_is_checked_by_its_package(package: Path, tmp_path: Path) -> None:  # noqa: F811
    store = ArtifactStore(tmp_path / "artifacts")
    entry = put(store, package)
    (store.root / "seals" / f"{entry.sha256}.json").unlink()
    assert store.verify(entry) == "ok"
