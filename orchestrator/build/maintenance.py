"""Store upkeep: verify artifacts against their hashes, and garbage-collect unreferenced blobs.

``plan_gc`` is pure reading and returns a frozen ``GcPlan`` that does nothing until ``execute()``, so
``mlfarm artifacts gc --dry-run`` prints exactly what a real run would delete.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.build.package import tree_files
from orchestrator.build.store import ArtifactEntry, ArtifactStore, BlobState

STALE_TMP_SECONDS = 3600  # staging folders younger than this may belong to a build running right now


@dataclass(frozen=True)
class Verified:
    entry: ArtifactEntry
    state: BlobState

    def to_json(self) -> dict[str, str]:
        return {"id": self.entry.id, "name": self.entry.name, "state": self.state, "path": str(self.entry.path)}


def verify_entries(store: ArtifactStore, entries: list[ArtifactEntry]) -> list[Verified]:
    """Hash every entry's package; blobs shared by several entries are hashed once."""
    states: dict[tuple[str, str], BlobState] = {}
    results = []
    for entry in entries:
        key = (entry.sha256, entry.component)
        if key not in states:
            states[key] = store.verify(entry)
        results.append(Verified(entry, states[key]))
    return results


def _size(path: Path) -> int:
    return sum(tree_files(path).values()) if path.is_dir() else 0


@dataclass(frozen=True)
class GcPlan:
    """What a garbage collection would delete: blobs no entry points at, their key records, stale tmp/."""

    root: Path
    blobs: tuple[Path, ...]
    keys: tuple[Path, ...]
    tmp: tuple[Path, ...]
    bytes_freed: int

    def execute(self) -> None:
        for path in (*self.blobs, *self.tmp):
            shutil.rmtree(path, ignore_errors=True)
        for path in self.keys:
            path.unlink(missing_ok=True)

    def to_json(self) -> dict[str, object]:
        return {"root": str(self.root), "blobs": [p.name for p in self.blobs], "keys": len(self.keys),
                "tmp": [p.name for p in self.tmp], "bytes_freed": self.bytes_freed}


def _key_sha(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return str(data.get("sha256")) if isinstance(data, dict) else None


def plan_gc(store: ArtifactStore, *, now: float | None = None) -> GcPlan:
    now = time.time() if now is None else now
    referenced = {e.sha256 for e in store.entries()}
    blobs = tuple(sorted(p for p in store.blobs.iterdir() if p.is_dir() and p.name not in referenced)
                  ) if store.blobs.is_dir() else ()
    keys = tuple(p for p in sorted(store.keys.glob("*.json")) if store.keys.is_dir()
                 and _key_sha(p) not in referenced)
    tmp = tuple(sorted(p for p in store.tmp.iterdir() if now - p.stat().st_mtime > STALE_TMP_SECONDS)
                ) if store.tmp.is_dir() else ()
    return GcPlan(store.root, blobs, keys, tmp, sum(_size(p) for p in (*blobs, *tmp)))
