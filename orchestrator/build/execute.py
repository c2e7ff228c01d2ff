"""Executing a build plan: the work behind ``builder.execute`` for one group of misses at a time.

A group is every missing variant of one (component, attention): exported once, converted once per
(precision, deployment target), then each variant is compressed from its conversion and saved into the store
with its manifest. Imports torch and coremltools (through export/convert/compress); keep it out of the
cache-hit path.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.build.builder import BuildEvent, BuildItem, Stage
from orchestrator.build.compress import COMPRESSIONS, CompressionSettings, compress
from orchestrator.build.convert import Converted, convert
from orchestrator.build.export import export_component
from orchestrator.build.keys import tool_versions
from orchestrator.build.logs import captured
from orchestrator.build.package import PackageFacts, normalize_identifiers, package_facts
from orchestrator.build.store import ArtifactEntry, ArtifactStore
from orchestrator.errors import BuildError
from orchestrator.models import ModelSource, SourceProblem
from orchestrator.spec.model import ReleaseSpec

MANIFEST_VERSION = 1


class GroupBuilder:
    """Builds groups of misses for one spec and source; remembers per-component weight hashes between groups."""

    def __init__(self, spec: ReleaseSpec, store: ArtifactStore, source: ModelSource,
                 settings: CompressionSettings, emit: Callable[[BuildEvent], None]) -> None:
        self.spec, self.store, self.source, self.settings, self.emit = spec, store, source, settings, emit
        self._weights: dict[str, str] = {}
        with captured():  # their import-time warnings (untested torch/sklearn versions) are noise here
            import coremltools  # noqa: F401
            import torch  # noqa: F401

    def _stage(self, items: list[BuildItem], stage: Stage, detail: str = "") -> None:
        for item in items:
            self.emit(BuildEvent(item.component, item.variant.id, stage, detail))

    def build_group(self, items: list[BuildItem]) -> list[ArtifactEntry]:
        component, attention = items[0].component, items[0].variant.attention
        for item in items:
            if item.lookup.stale_sha and item.lookup.reason == "blob corrupt":
                self.store.discard_blob(item.lookup.stale_sha)  # never used, rebuilt below
        done: list[ArtifactEntry] = []
        try:
            self._stage(items, "export")
            for stats, sub, converted in self._conversions(component, attention, items):
                done += [self._finish(item, stats, converted, len(sub)) for item in sub]
                del converted
        except BuildError as exc:
            finished = {e.variant for e in done}
            failed = [i for i in items if i.variant.id not in finished]
            self._stage(failed, "failed", exc.message.splitlines()[0])
            ids = ", ".join(i.variant.id for i in failed)
            raise BuildError(f"{exc.message}\n(not built: {component} {ids})", fix=exc.fix) from exc
        return done

    def _conversions(self, component: str, attention: str,
                     items: list[BuildItem]) -> Iterator[tuple[ExportStats, list[BuildItem], Converted]]:
        """One export, then one conversion per (precision, target) with the items derived from it."""
        try:
            prebuilt = self.source.prebuilt(component)
        except SourceProblem as exc:
            raise BuildError(f"cannot import {component}: {exc.message}", fix=exc.fix) from exc
        if prebuilt is not None:
            yield from self._imports(component, prebuilt, items)
            return
        spec = self.spec.model.components[component]
        exported = export_component(self.source, component, spec, attention, seed=self.spec.measure.seed)
        stats = ExportStats(exported.exporter, exported.seconds, len(items))
        bases = _by_base(items)
        for n, sub in enumerate(bases):
            self._stage(sub, "convert")
            converted = convert(exported, spec, sub[0].variant.precision, sub[0].target)
            if n == len(bases) - 1:
                del exported  # its fp32 torch weights (3.4 GB for SD-1.5) are not needed to compress
            _release_program(converted)
            yield stats, sub, converted

    def _imports(self, component: str, package: Path,
                 items: list[BuildItem]) -> Iterator[tuple[ExportStats, list[BuildItem], Converted]]:
        """A prebuilt package: imported once per deployment target its variants need, nothing exported."""
        from orchestrator.build.imported import import_package

        stats = ExportStats("import", 0.0, len(items))
        for sub in _by_base(items):
            self._stage(sub, "convert", "import")
            converted = import_package(package, component, sub[0].variant.precision, sub[0].target)
            yield stats, sub, converted

    def _finish(self, item: BuildItem, exported: ExportStats, converted: Converted, sub: int) -> ArtifactEntry:
        where = f"{item.component} {item.variant.id}"
        self.emit(BuildEvent(item.component, item.variant.id, "compress"))
        compressed = compress(converted.model, item.variant.weights, self.settings, where=where)
        self.emit(BuildEvent(item.component, item.variant.id, "save"))
        start = time.perf_counter()
        with self.store.staging() as folder:
            package = folder / f"{item.component}.mlpackage"
            with captured() as log:
                try:
                    compressed.model.save(str(package))
                    normalize_identifiers(package)
                except Exception as exc:  # coremltools' save raises RuntimeError/OSError
                    raise BuildError(f"{where}: saving the package failed: {exc}\n{log.tail(4)}".rstrip(),
                                     fix="check free disk space and permissions of the artifact store") from exc
                facts = package_facts(package)
            stages = {"export": exported.seconds, "convert": converted.seconds, "compress": compressed.seconds,
                      "save": time.perf_counter() - start}
            manifest = self._manifest(item, facts, stages, exporter=exported.exporter,
                                      shared={"export": exported.artifacts, "convert": sub})
            manifest["min_deployment_target"] = converted.target.to_json()
            entry = self.store.put(package, spec_name=self.spec.name, component=item.component,
                                   variant=item.variant.id, key=item.key, manifest=manifest)
        # a rebuild of a damaged artifact is announced, never silent: its figures may differ from the lost ones
        note = f" (rebuilt: the stored one was {item.lookup.reason.removeprefix('blob ')})" \
            if item.lookup.reason in ("blob corrupt", "blob missing") else ""
        self.emit(BuildEvent(item.component, item.variant.id, "done", entry.id + note,
                             round(sum(stages.values()), 3)))
        return entry

    def weights_hash(self, component: str) -> str:
        if component not in self._weights:
            try:
                self._weights[component] = self.source.weights_hash(component)
            except SourceProblem as exc:
                raise BuildError(f"cannot read the weights of {component}: {exc.message}", fix=exc.fix) from exc
        return self._weights[component]

    def _manifest(self, item: BuildItem, facts: PackageFacts, stages: dict[str, float], *, exporter: str,
                  shared: dict[str, int]) -> dict[str, Any]:
        v = item.variant
        return {
            "schema_version": MANIFEST_VERSION,
            "component": item.component,
            "variant": {"id": v.id, "precision": v.precision, "weights": v.weights, "attention": v.attention},
            "source": {"id": self.source.id, "revision": self.source.revision,
                       "identity": self.source.cache_identity(item.component),
                       "weights_hash": self.weights_hash(item.component)},
            "tools": tool_versions(),
            "inputs": facts.inputs,
            "outputs": facts.outputs,
            "files": {"bytes_on_disk": facts.bytes_on_disk, "weight_file_bytes": facts.weight_file_bytes},
            "weights": {"bytes_stored": facts.weight_file_bytes,
                        "bytes_decompressed_fp16": facts.bytes_decompressed_fp16,
                        "tensors": facts.tensors, "compressed_tensors": facts.compressed_tensors},
            "compression": COMPRESSIONS[v.weights].key(self.settings),
            "min_deployment_target": item.target.to_json(),
            "opset": facts.opset,
            "ops": facts.ops,
            # export and convert are shared by `shared[...]` artifacts of this build; their times are not split.
            "build": {"seconds": round(sum(stages.values()), 3),
                      "stages": {k: round(s, 3) for k, s in stages.items()}, "shared": shared,
                      "exporter": exporter, "built_at": time.time(), "build_key": item.key.digest,
                      "spec": self.spec.name},
        }


@dataclass(frozen=True)
class ExportStats:
    """What the manifest needs from an export, kept after the exported program itself is released."""

    exporter: str
    seconds: float
    artifacts: int  # how many artifacts share this export


def _release_program(converted: Converted) -> None:
    """Drop the in-memory MIL program of a converted model (every weight again, 1.7 GB for SD-1.5 in fp16).

    Nothing downstream reads it: coremltools' compression reloads the program from the saved package files,
    and saving copies those files.
    """
    if getattr(converted.model, "_mil_program", None) is not None:
        converted.model._mil_program = None
    gc.collect()


def _by_base(items: list[BuildItem]) -> list[list[BuildItem]]:
    """Items grouped by (precision, deployment target): the unit of one conversion."""
    groups: dict[tuple[str, str], list[BuildItem]] = {}
    for item in items:
        groups.setdefault((item.variant.precision, item.target.name), []).append(item)
    return list(groups.values())
