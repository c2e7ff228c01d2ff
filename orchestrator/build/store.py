"""The artifact store: content-addressed Core ML packages, named build entries pointing at them.

    artifacts/                                  Settings.artifacts_dir (MLFARM_ARTIFACTS, --artifacts)
    ├── blobs/
    │   └── <sha256>/                           sha256 of the package tree (package.tree_hash)
    │       ├── <component>.mlpackage/          immutable once stored
    │       └── manifest.json                   what it is: variant, source, tools, sizes, target, build time;
    │                                           later stages add sections ("analysis", "quality")
    ├── seals/<sha256>.json                     {"manifest_sha256"}: the manifest as the store last wrote it
    ├── builds/
    │   └── <spec-name>/<component>/<variant-id>.json
    │                                           {"id", "sha256", "build_key", "key_inputs", "created_at"}
    ├── keys/<build-key>.json                   {"sha256"}: the same inputs built under another spec name
    └── tmp/                                    staging; packages are renamed into blobs/ when complete

A lookup is a hit when the entry's build key equals the requested one *and* the blob still hashes to its
name *and* its manifest still hashes to its seal (a measured figure edited by hand, e.g. a PSNR raised from
26.8 to 200 dB, makes the blob corrupt); a corrupt or missing blob is reported as such and never returned.
Blobs stored before seals existed have none and are checked by their package alone. Writes are atomic renames, so an
interrupted build leaves at most a folder in tmp/ (``gc`` removes it).

    store = ArtifactStore(settings.artifacts_dir)
    entry = store.get("tiny-sd", "unet", "fp16-palette6-split_einsum_v2")
    entry.path                                  # .../blobs/<sha>/unet.mlpackage
    store.update_manifest(entry, "analysis", {...})
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from orchestrator.build.keys import BuildKey, changed_fields
from orchestrator.build.package import tree_hash
from orchestrator.errors import ArtifactError

BlobState = Literal["ok", "missing", "corrupt"]


@dataclass(frozen=True)
class ArtifactEntry:
    """One named build (spec, component, variant) and the blob it points at. ``id`` is stable per content."""

    spec_name: str
    component: str
    variant: str
    sha256: str
    path: Path
    manifest: Mapping[str, Any]
    build_key: str
    key_inputs: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    created_at: float = 0.0
    cache_hit: bool | None = field(default=None, compare=False)  # set by build_spec: hit or freshly built

    @property
    def id(self) -> str:
        return artifact_id(self.component, self.variant, self.sha256)

    @property
    def name(self) -> str:
        return f"{self.spec_name}/{self.component}/{self.variant}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "spec": self.spec_name, "component": self.component,
                "variant": self.variant, "sha256": self.sha256, "path": str(self.path),
                "build_key": self.build_key, "created_at": self.created_at, "cache_hit": self.cache_hit,
                "bytes_on_disk": self.manifest.get("files", {}).get("bytes_on_disk")}


def artifact_id(component: str, variant: str, sha256: str) -> str:
    return f"{component}-{variant}@{sha256[:12]}"


@dataclass(frozen=True)
class Lookup:
    """The result of asking the store for a build key: a verified entry, or why there is none."""

    entry: ArtifactEntry | None
    reason: str  # "hit" | "new" | "inputs changed: ..." | "blob corrupt" | "blob missing"
    stale_sha: str | None = None  # the blob a corrupt/missing entry pointed at


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def _manifest_digest(manifest: Mapping[str, Any]) -> str:
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class ArtifactStore:
    """A folder of artifacts (see the module docstring). Cheap to create; every method reads the disk afresh."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs, self.builds, self.keys, self.tmp = (self.root / n for n in ("blobs", "builds", "keys", "tmp"))

    # ---- reading -----------------------------------------------------------------------------------
    def _entry_path(self, spec_name: str, component: str, variant: str) -> Path:
        return self.builds / spec_name / component / f"{variant}.json"

    def blob_dir(self, sha256: str) -> Path:
        return self.blobs / sha256

    def package_path(self, sha256: str, component: str) -> Path:
        return self.blob_dir(sha256) / f"{component}.mlpackage"

    def _entry_from(self, data: Mapping[str, Any]) -> ArtifactEntry:
        sha, component = str(data["sha256"]), str(data["component"])
        manifest = _read_json(self.blob_dir(sha) / "manifest.json") or {}
        return ArtifactEntry(str(data["spec"]), component, str(data["variant"]), sha,
                             self.package_path(sha, component), manifest, str(data["build_key"]),
                             data.get("key_inputs") or {}, float(data.get("created_at", 0.0)))

    def get(self, spec_name: str, component: str, variant: str) -> ArtifactEntry | None:
        """The named entry (not verified; see ``verify``), or None."""
        data = _read_json(self._entry_path(spec_name, component, variant))
        return self._entry_from(data) if data else None

    def entries(self, spec_name: str | None = None) -> list[ArtifactEntry]:
        folder = self.builds / spec_name if spec_name else self.builds
        found = []
        for path in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
            data = _read_json(path)
            if data and {"sha256", "component", "variant", "spec", "build_key"} <= set(data):
                found.append(self._entry_from(data))
        return found

    def find(self, ident: str) -> ArtifactEntry:
        """An entry by id, by ``spec/component/variant``, or by a unique sha256 prefix (>= 6 characters)."""
        entries = self.entries()
        matches = [e for e in entries if ident in (e.id, e.name)]
        if not matches and len(ident) >= 6:
            matches = [e for e in entries if e.sha256.startswith(ident)]
        ids = sorted({e.id for e in matches})
        if len(ids) == 1:
            return matches[0]
        if not ids:
            raise ArtifactError(f"no artifact {ident!r} in {self.root}",
                                fix="list them with `mlfarm artifacts list`; build with `mlfarm build SPEC`")
        raise ArtifactError(f"{ident!r} matches {len(ids)} artifacts: {', '.join(ids[:5])}",
                            fix="give the full id or SPEC/COMPONENT/VARIANT")

    # ---- verification ------------------------------------------------------------------------------
    def _seal_path(self, sha256: str) -> Path:
        return self.root / "seals" / f"{sha256}.json"

    def _write_manifest(self, sha256: str, manifest: Mapping[str, Any]) -> None:
        _write_json(self.blob_dir(sha256) / "manifest.json", manifest)
        written = _read_json(self.blob_dir(sha256) / "manifest.json") or {}
        _write_json(self._seal_path(sha256), {"manifest_sha256": _manifest_digest(written)})

    def manifest_sealed(self, sha256: str) -> bool:
        """The manifest is as the store last wrote it (True also for a blob from before seals)."""
        seal = _read_json(self._seal_path(sha256))
        if seal is None:
            return True
        manifest = _read_json(self.blob_dir(sha256) / "manifest.json")
        return manifest is not None and seal.get("manifest_sha256") == _manifest_digest(manifest)

    def blob_state(self, sha256: str, component: str) -> BlobState:
        package = self.package_path(sha256, component)
        if not package.is_dir():
            return "missing"
        return "ok" if tree_hash(package) == sha256 and self.manifest_sealed(sha256) else "corrupt"

    def verify(self, entry: ArtifactEntry) -> BlobState:
        return self.blob_state(entry.sha256, entry.component)

    def lookup(self, spec_name: str, component: str, variant: str, key: BuildKey) -> Lookup:
        """A verified entry for this build key (own entry first, then the same key built under another spec)."""
        entry = self.get(spec_name, component, variant)
        if entry is not None and entry.build_key == key.digest:
            state = self.verify(entry)
            if state == "ok":
                return Lookup(entry, "hit")
            return Lookup(None, f"blob {state}", stale_sha=entry.sha256)
        shared = _read_json(self.keys / f"{key.digest}.json")
        if shared and self.blob_state(str(shared["sha256"]), component) == "ok":
            return Lookup(self._link(spec_name, component, variant, key, str(shared["sha256"])), "hit")
        if entry is None:
            return Lookup(None, "new")
        return Lookup(None, "inputs changed: " + (", ".join(changed_fields(entry.key_inputs, key.inputs)) or "?"))

    # ---- writing -----------------------------------------------------------------------------------
    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh folder under tmp/ for a package being written; removed afterwards unless moved away."""
        folder = self.tmp / uuid.uuid4().hex
        folder.mkdir(parents=True)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _link(self, spec_name: str, component: str, variant: str, key: BuildKey, sha256: str) -> ArtifactEntry:
        data = {"id": artifact_id(component, variant, sha256), "spec": spec_name, "component": component,
                "variant": variant, "sha256": sha256, "build_key": key.digest, "key_inputs": key.inputs,
                "created_at": time.time()}
        _write_json(self._entry_path(spec_name, component, variant), data)
        _write_json(self.keys / f"{key.digest}.json", {"sha256": sha256})
        return self._entry_from(data)

    def put(self, package: Path, *, spec_name: str, component: str, variant: str, key: BuildKey,
            manifest: Mapping[str, Any]) -> ArtifactEntry:
        """Move a staged package into blobs/<sha>/, write its manifest, and point the named entry at it."""
        sha = tree_hash(package)
        target = self.package_path(sha, component)
        if self.blob_state(sha, component) != "ok":
            shutil.rmtree(self.blob_dir(sha), ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(package, target)
            except OSError:
                # Another build stored the same bytes a moment ago; theirs is as good as ours.
                if self.blob_state(sha, component) != "ok":
                    raise
        full = {"id": artifact_id(component, variant, sha), "sha256": sha, **manifest}
        existing = _read_json(self.blob_dir(sha) / "manifest.json") or {}
        # Sections added by later stages describe the same bytes: keep them when the same blob is rebuilt.
        self._write_manifest(sha, {**full, **{k: v for k, v in existing.items() if k not in full}})
        return self._link(spec_name, component, variant, key, sha)

    def update_manifest(self, entry: ArtifactEntry, section: str, data: Mapping[str, Any]) -> ArtifactEntry:
        """Set one section of the blob's manifest (e.g. "analysis", "quality"); return the refreshed entry."""
        path = self.blob_dir(entry.sha256) / "manifest.json"
        manifest = _read_json(path)
        if manifest is None:
            raise ArtifactError(f"artifact {entry.id} has no readable manifest at {path}", path=path,
                                fix="rebuild it with `mlfarm build SPEC`")
        manifest[section] = dict(data)
        self._write_manifest(entry.sha256, manifest)
        return replace(entry, manifest=manifest)

    def discard_blob(self, sha256: str) -> None:
        """Remove a blob that failed verification (it must never be used)."""
        shutil.rmtree(self.blob_dir(sha256), ignore_errors=True)
        self._seal_path(sha256).unlink(missing_ok=True)
