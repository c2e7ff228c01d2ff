"""Build a release spec into Core ML artifacts: plan (cache lookups), then execute (export, convert, compress, save).

    plan = plan_build(spec, store)              # cheap: no torch, no coremltools; one BuildItem per artifact
    entries = execute(plan, spec, store)        # only the misses are built
    entries = build_spec(spec, store)           # both

Work is shared as far as it can be: one torch export per (component, attention), one conversion per
(component, attention, precision, deployment target), and every compression variant of that conversion is
derived from the converted program. Progress is reported through a callback (``BuildEvent`` per artifact
and stage), so the CLI can draw it and tests can record it.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from orchestrator.build.compress import COMPRESSIONS, CompressionSettings
from orchestrator.build.keys import RECIPE, BuildKey, tool_versions
from orchestrator.build.store import ArtifactEntry, ArtifactStore, Lookup
from orchestrator.build.targets import DeploymentTarget, deployment_target
from orchestrator.errors import UsageError
from orchestrator.models import ModelSource, load_source
from orchestrator.spec.model import ReleaseSpec
from orchestrator.variants import Variant

Stage = Literal["cached", "queued", "export", "convert", "compress", "save", "done", "failed"]


@dataclass(frozen=True)
class BuildEvent:
    component: str
    variant: str
    stage: Stage
    detail: str = ""
    seconds: float | None = None


Progress = Callable[[BuildEvent], None]


@dataclass(frozen=True)
class BuildItem:
    """One artifact to provide: where it would come from (cache or build) and why."""

    component: str
    variant: Variant
    target: DeploymentTarget
    key: BuildKey
    lookup: Lookup

    @property
    def cached(self) -> bool:
        return self.lookup.entry is not None


@dataclass(frozen=True)
class BuildPlan:
    spec_name: str
    source_id: str
    items: tuple[BuildItem, ...]
    settings: CompressionSettings = field(default_factory=CompressionSettings)

    @property
    def misses(self) -> tuple[BuildItem, ...]:
        return tuple(i for i in self.items if not i.cached)


def _selected(spec: ReleaseSpec, components: Sequence[str] | None,
              variants: Sequence[str] | None) -> tuple[list[str], list[Variant]]:
    known_c = list(spec.model.components)
    known_v = list(spec.variant_list())
    chosen_c = list(components) if components else known_c
    bad_c = [c for c in chosen_c if c not in known_c]
    if bad_c:
        raise UsageError(f"--components: {', '.join(bad_c)} not in the spec",
                         fix=f"the spec's components: {', '.join(known_c)}")
    by_id = {v.id: v for v in known_v}
    chosen_v = list(variants) if variants else list(by_id)
    bad_v = [v for v in chosen_v if v not in by_id]
    if bad_v:
        raise UsageError(f"--variants: {', '.join(bad_v)} not in the spec's variants",
                         fix=f"the spec's variants: {', '.join(by_id)}")
    return chosen_c, [by_id[v] for v in chosen_v]


def build_key(spec: ReleaseSpec, source: ModelSource, component: str, variant: Variant,
              target: DeploymentTarget, settings: CompressionSettings) -> BuildKey:
    inputs = spec.model.components[component].inputs
    return BuildKey.of({
        "recipe": RECIPE,
        "source": {"id": source.id, "identity": source.cache_identity(component)},
        "component": component,
        "inputs": [{"name": n, "shape": list(inputs[n].shape), "dtype": inputs[n].dtype}
                   for n in source.input_names(component)],
        "variant": variant.id,
        "target": target.name,
        "compression": COMPRESSIONS[variant.weights].key(settings),
        "tools": tool_versions(),
    })


def plan_build(spec: ReleaseSpec, store: ArtifactStore, *, source: ModelSource | None = None,
               components: Sequence[str] | None = None, variants: Sequence[str] | None = None,
               settings: CompressionSettings | None = None) -> BuildPlan:
    """Look every requested artifact up in the store (verifying blob hashes); nothing is built."""
    settings = settings or CompressionSettings()
    source = source or _source(spec)
    chosen_c, chosen_v = _selected(spec, components, variants)
    items = []
    for component in chosen_c:
        for variant in chosen_v:
            target = deployment_target(variant, min_ios=spec.app.min_ios, min_macos=spec.app.min_macos)
            key = build_key(spec, source, component, variant, target, settings)
            items.append(BuildItem(component, variant, target, key,
                                   store.lookup(spec.name, component, variant.id, key)))
    return BuildPlan(spec.name, source.id, tuple(items), settings)


def _source(spec: ReleaseSpec) -> ModelSource:
    base = spec.path.parent if spec.path is not None else None
    return load_source(spec.model, relative_to=base, file=str(spec.path) if spec.path else None)


def execute(plan: BuildPlan, spec: ReleaseSpec, store: ArtifactStore, *, source: ModelSource | None = None,
            progress: Progress | None = None) -> list[ArtifactEntry]:
    """Build the plan's misses (cache hits are returned as they are); entries in plan order."""
    from orchestrator.build.execute import GroupBuilder

    emit: Progress = progress if progress is not None else (lambda event: None)
    results: dict[tuple[str, str], ArtifactEntry] = {}
    for item in plan.items:
        if item.lookup.entry is not None:
            results[(item.component, item.variant.id)] = _mark(item.lookup.entry, True)
            emit(BuildEvent(item.component, item.variant.id, "cached", item.lookup.entry.id))
        else:
            emit(BuildEvent(item.component, item.variant.id, "queued", item.lookup.reason))
    if plan.misses:
        builder = GroupBuilder(spec, store, source or _source(spec), plan.settings, emit)
        for group in _groups(plan.misses):
            for entry in builder.build_group(group):
                results[(entry.component, entry.variant)] = _mark(entry, False)
            gc.collect()  # drop the group's exported and converted programs before the next one
    return [results[(i.component, i.variant.id)] for i in plan.items]


def _mark(entry: ArtifactEntry, hit: bool) -> ArtifactEntry:
    return replace(entry, cache_hit=hit)


def _groups(items: Sequence[BuildItem]) -> list[list[BuildItem]]:
    """Misses grouped by (component, attention): the unit of one torch export."""
    groups: dict[tuple[str, str], list[BuildItem]] = {}
    for item in items:
        groups.setdefault((item.component, item.variant.attention), []).append(item)
    return list(groups.values())


def build_spec(spec: ReleaseSpec, store: ArtifactStore, *, components: Sequence[str] | None = None,
               variants: Sequence[str] | None = None, settings: CompressionSettings | None = None,
               progress: Progress | None = None, source: ModelSource | None = None) -> list[ArtifactEntry]:
    """Every requested (component, variant) artifact, built or taken from the cache (``entry.cache_hit``)."""
    source = source or _source(spec)
    plan = plan_build(spec, store, source=source, components=components, variants=variants, settings=settings)
    return execute(plan, spec, store, source=source, progress=progress)
