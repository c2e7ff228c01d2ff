"""Check built artifacts: static analysis plus PSNR against the fp32 PyTorch reference, written into each
artifact's manifest (sections ``analysis`` and ``quality``) through the artifact store.

    checks = check_spec(spec, store, spec_dir=path.parent)     # every built (component, variant) of a spec
    check = check_entry(entry, store, seed=0, gate_db=35.0)     # one artifact, reference from its manifest
    check = check_package(path)                                 # any .mlpackage: analysis only

The two parts cost very differently at SD scale and are cached separately in the manifest (which belongs to
one artifact hash): the static analysis reads only the package's protobuf (``static_load``; a second or so for
an SD-1.5 UNet) and is never redone for an artifact whose manifest holds it; PSNR executes the artifact on the
MIL executor (minutes for an SD-1.5 UNet) and is redone only for another input seed. Pass ``psnr=False`` when
no gate needs it (a 0 dB gate).

The PyTorch reference of a component (``original`` attention, fp32) is computed once per component and shared
by all its variants, on the inputs every job of the release uses (``source.example_inputs`` with the spec's
seed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.errors import ArtifactError, MlfarmError
from orchestrator.mil.analysis import Analysis, analysis_from_dict, analyze_program
from orchestrator.mil.quality import Quality, evaluate, quality_from_dict, reference_outputs
from orchestrator.mil.static_load import load_static

if TYPE_CHECKING:
    from orchestrator.build.store import ArtifactEntry, ArtifactStore
    from orchestrator.models.source import ModelSource
    from orchestrator.spec.model import ComponentSpec, ReleaseSpec



@dataclass(frozen=True)
class CheckEvent:
    """Progress of one artifact: ``stage`` is ``analysed`` / ``cached`` (static analysis), ``psnr`` (ops of the
    PSNR run done / total, repeated), ``psnr-done`` or ``psnr-cached``."""

    name: str
    stage: str
    done: int = 0
    total: int = 0
    seconds: float | None = None


Progress = Callable[[CheckEvent], None]


@dataclass(frozen=True)
class ArtifactCheck:
    """The outcome for one artifact: analysis, quality (None when there is no reference), or an error."""

    name: str  # spec/component/variant, or the package path
    component: str | None
    variant: str | None
    path: str
    artifact_id: str | None = None
    analysis: Analysis | None = None
    quality: Quality | None = None
    note: str | None = None  # why quality is missing
    error: str | None = None  # why the artifact could not be checked at all

    def to_dict(self, top: int = 5) -> dict[str, Any]:
        return {"id": self.artifact_id, "name": self.name, "component": self.component, "variant": self.variant,
                "path": self.path, "analysis": self.analysis.to_dict(top) if self.analysis else None,
                "quality": self.quality.to_dict() if self.quality else None, "note": self.note, "error": self.error}


class References:
    """fp32 PyTorch outputs per component, computed on first use and kept for the other variants."""

    def __init__(self, source: ModelSource, seed: int) -> None:
        self.source = source
        self.seed = seed
        self._cache: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}

    def get(self, component: str, spec: ComponentSpec) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(inputs, reference outputs) of ``component``."""
        if component not in self._cache:
            inputs = self.source.example_inputs(component, spec, self.seed)
            self._cache[component] = (inputs, reference_outputs(self.source, component, inputs))
        return self._cache[component]


def check_package(path: Path) -> ArtifactCheck:
    """Analysis of any .mlpackage; no quality (there is no reference model to compare with)."""
    program = load_static(path)
    return ArtifactCheck(str(path), None, None, str(path), analysis=analyze_program(program),
                         note="no PyTorch reference for a package outside the artifact store "
                              "(pass an artifact id or a SPEC for PSNR)")


def check_spec(spec: ReleaseSpec, store: ArtifactStore, *, spec_dir: Path | None = None,
               progress: Progress | None = None, psnr: bool = True) -> list[ArtifactCheck]:
    """Check every built artifact of ``spec`` and store the results in their manifests (PSNR only if ``psnr``)."""
    from orchestrator.models import load_source

    source = load_source(spec.model, relative_to=spec_dir)
    references = References(source, spec.measure.seed)
    checks = []
    for component, component_spec in spec.model.components.items():
        for variant in spec.variant_list():
            entry = store.get(spec.name, component, variant.id)
            name = f"{spec.name}/{component}/{variant.id}"
            if entry is None:
                checks.append(ArtifactCheck(name, component, variant.id, "", note="not built"))
                continue
            quality = references if psnr else None
            checks.append(_check(entry, store, quality, component_spec, spec.gates.min_psnr_db, progress))
    return checks


def check_entry(entry: ArtifactEntry, store: ArtifactStore, *, seed: int, gate_db: float,
                progress: Progress | None = None) -> ArtifactCheck:
    """Check one stored artifact; its model source and input shapes come from its manifest."""
    manifest = entry.manifest
    source, note = _reference_source(manifest)
    if source is None or not manifest.get("inputs"):
        return _analysis_only(entry, store, note or "the manifest lists no inputs", progress)
    return _check(entry, store, References(source, seed), _component_spec(manifest), gate_db, progress)


def _reference_source(manifest: Mapping[str, Any]) -> tuple[ModelSource | None, str | None]:
    """The model source an artifact was built from, if it can still give the same weights; else why not."""
    from orchestrator.models import load_source

    built_from = manifest.get("source") or {}
    source_id = built_from.get("id")
    if not source_id:
        return None, "the manifest names no model source"
    try:
        source = load_source(str(source_id))
    except MlfarmError as exc:
        return None, f"model source {source_id!r} unavailable: {exc.message}"
    if built_from.get("revision") not in (None, source.revision):
        return None, (f"built from {source_id} revision {built_from.get('revision')}, the source is now at "
                      f"{source.revision}: no matching reference")
    return source, None


def _component_spec(manifest: Mapping[str, Any]) -> ComponentSpec:
    from orchestrator.spec.model import ComponentSpec, TensorSpec

    return ComponentSpec(inputs={i["name"]: TensorSpec(tuple(i["shape"]), i.get("dtype", "float32"))
                                 for i in manifest["inputs"]})


def _analysis_only(entry: ArtifactEntry, store: ArtifactStore, note: str,
                   progress: Progress | None = None) -> ArtifactCheck:
    try:
        analysis = _analysis(entry, store, progress)
    except ArtifactError as exc:
        return ArtifactCheck(entry.name, entry.component, entry.variant, str(entry.path), entry.id, error=exc.message)
    return ArtifactCheck(entry.name, entry.component, entry.variant, str(entry.path), entry.id, analysis, note=note)


def _analysis(entry: ArtifactEntry, store: ArtifactStore, progress: Progress | None) -> Analysis:
    """The manifest's analysis if it has one (same artifact hash, same figures), else the static analysis."""
    name = f"{entry.component} {entry.variant}"
    cached = entry.manifest.get("analysis")
    if isinstance(cached, Mapping):
        try:
            analysis = analysis_from_dict(cached, str(entry.path))
        except (KeyError, TypeError, ValueError):
            analysis = None  # an older or damaged section: analyse again
        if analysis is not None:
            if progress:
                progress(CheckEvent(name, "cached"))
            return analysis
    start = time.perf_counter()
    analysis = analyze_program(load_static(entry.path))
    store.update_manifest(entry, "analysis", analysis.to_dict())
    if progress:
        progress(CheckEvent(name, "analysed", seconds=time.perf_counter() - start))
    return analysis


def _quality(entry: ArtifactEntry, store: ArtifactStore, references: References, component_spec: ComponentSpec,
             gate_db: float, progress: Progress | None) -> Quality:
    """PSNR from the manifest when it was measured on the same seed, else one executor run (with progress)."""
    from orchestrator.mil.load import load

    name = f"{entry.component} {entry.variant}"
    cached = entry.manifest.get("quality")
    if isinstance(cached, Mapping) and cached.get("seed") == references.seed and cached.get("psnr_db"):
        if progress:
            progress(CheckEvent(name, "psnr-cached"))
        return quality_from_dict(cached, gate_db)
    start = time.perf_counter()
    program = load(entry.path)
    inputs, reference = references.get(entry.component, component_spec)
    on_op = (lambda done, total: progress(CheckEvent(name, "psnr", done, total))) if progress else None
    quality = evaluate(program, reference, inputs, seed=references.seed, gate_db=gate_db, on_op=on_op,
                       label=references.source.reference_label)
    store.update_manifest(entry, "quality", quality.to_dict())
    if progress:
        progress(CheckEvent(name, "psnr-done", seconds=time.perf_counter() - start))
    return quality


def _check(entry: ArtifactEntry, store: ArtifactStore, references: References | None,
           component_spec: ComponentSpec, gate_db: float, progress: Progress | None = None) -> ArtifactCheck:
    def result(**found: Any) -> ArtifactCheck:
        return ArtifactCheck(entry.name, entry.component, entry.variant, str(entry.path), entry.id, **found)

    try:
        analysis = _analysis(entry, store, progress)
        if references is None:
            return result(analysis=analysis, note="PSNR not computed: the spec's quality gate is 0 dB")
        quality = _quality(entry, store, references, component_spec, gate_db, progress)
    except ArtifactError as exc:
        return result(error=exc.message)
    return result(analysis=analysis, quality=quality)


def find_artifact(store: ArtifactStore, ident: str) -> ArtifactEntry | None:
    """A stored artifact by id / name / sha prefix, or by the path of its package; None for other paths."""
    path = Path(ident)
    if path.exists():
        resolved = path.resolve()
        blobs = store.blobs.resolve()
        if resolved.parent.parent == blobs:
            sha = resolved.parent.name
            matches = [e for e in store.entries() if e.sha256 == sha]
            return matches[0] if matches else None
        return None
    return store.find(ident)
