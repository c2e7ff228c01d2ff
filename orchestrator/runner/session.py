"""A run from start to end: artifacts ready, devices open, plan made, jobs stored, runner driven, run closed.

    run_id = await start_run(spec, settings=..., catalog=..., options=RunOptions(refs), ui=ui)
    run_id = await resume_run(spec, run_id, settings=..., catalog=..., ui=ui)   # after a crash or Ctrl-C

The plan is stored in the run (``runs.plan``), the spec as JSON in ``runs.options["spec"]``, so reports and
resumes never depend on files that may have changed since. Resuming checks that the spec is the same
(digest), puts jobs left ``running`` back to ``pending`` and runs only what is not finished.

A run holds its ``RunLock`` (``results/run_lock.py``) while it executes, so a second ``--resume`` of a run in
progress is refused, and keeps its host job folders under ``.mlfarm/runs/<run id>/``, removed at the end, so
two runs at once on one machine never touch each other's files.
"""

from __future__ import annotations

import contextlib
import platform
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from orchestrator import __version__
from orchestrator.config import Settings
from orchestrator.errors import UsageError
from orchestrator.harness.contract import InputSpec, Job
from orchestrator.plan import Candidate, Plan, PlanTarget, make_plan
from orchestrator.plan.facts import facts_from_manifest, history_from_store, previous_choices
from orchestrator.plan.memory import Overheads
from orchestrator.plan.predictions import stored_predictions
from orchestrator.profiles import Catalog
from orchestrator.results.run_lock import RunLock
from orchestrator.results.store import DeviceRow, Event, JobRow, NewJob, ResultsStore, new_run_id
from orchestrator.runner.engine import ProgressSink, Runner, RunSummary, WorkItem
from orchestrator.runner.pool import DevicePool, PoolOptions
from orchestrator.serialize import jsonable
from orchestrator.spec.loader import DeviceRef
from orchestrator.spec.model import ReleaseSpec

HARD_RULES = ("os-version", "compute-units-os", "neural-engine", "attention-ane", "fp32-ane", "ane-size")


class RunUI(ProgressSink, Protocol):
    def stage(self, text: str) -> None: ...

    def build_event(self, event: Any) -> None: ...

    def check_event(self, event: Any) -> None: ...


@dataclass(frozen=True)
class RunOptions:
    refs: Sequence[DeviceRef]
    all_variants: bool = False
    harness_ipa: Path | None = None


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def spec_git_rev(path: Path | None) -> str | None:
    """The commit the spec file was read at, ``<sha>-dirty`` when the file differs from that commit (edited or
    never committed); None outside a git checkout."""
    if path is None:
        return None
    folder = path.resolve().parent
    rev = _git(["rev-parse", "HEAD"], folder)
    if not rev:
        return None
    status = _git(["status", "--porcelain", "--", path.resolve().name], folder)
    return f"{rev}-dirty" if status else rev


def environment(spec: ReleaseSpec) -> dict[str, Any]:
    import coremltools
    import torch

    return {"mlfarm": __version__, "python": platform.python_version(), "platform": platform.platform(),
            "coremltools": coremltools.__version__, "torch": torch.__version__,
            "spec_git_rev": spec_git_rev(spec.path)}


def prepare_artifacts(spec: ReleaseSpec, settings: Settings, ui: RunUI, *,
                      psnr: bool = True) -> dict[tuple[str, str], Any]:
    """Build what is missing (cached) and analyse what has no analysis (and, with ``psnr``, no quality) yet;
    entries by key. Each artifact is analysed once: its manifest keeps the result."""
    from orchestrator.build.builder import build_spec
    from orchestrator.build.store import ArtifactStore
    from orchestrator.mil.check import check_spec

    store = ArtifactStore(settings.artifacts_dir)
    ui.stage("build")
    entries = build_spec(spec, store, progress=ui.build_event)
    if any("analysis" not in e.manifest or (psnr and "quality" not in e.manifest) for e in entries):
        ui.stage("analyze")
        check_spec(spec, store, spec_dir=spec.path.parent if spec.path else None, psnr=psnr,
                   progress=ui.check_event)
    return {(e.component, e.variant): store.get(spec.name, e.component, e.variant) for e in entries}


def choose_jobs(plan: Plan, *, all_variants: bool, emulated: Mapping[str, bool]) -> list[tuple[str, Candidate]]:
    """(device key, candidate) to run: the plan's choices, or every built variant (the frontier).

    With ``all_variants``, each (component, variant) runs once per device with its best compute units; on a
    real device candidates rejected by compatibility rules are skipped (they would stall or fail to load),
    while memory- and quality-rejected ones run, so the report shows where the limit really is."""
    out = []
    for d in plan.devices:
        if not all_variants:
            out += [(d.key, c) for c in d.chosen.values() if c is not None]
            continue
        best: dict[tuple[str, str], Candidate] = {}
        for c in d.candidates:
            rules = {r.rule for r in c.reasons}
            if "not-built" in rules or (not emulated.get(d.key, False) and rules & set(HARD_RULES)):
                continue
            key = (c.component, c.variant)
            rank = (c.verdict != "chosen", c.rejected, c.latency.ms or 0.0)
            if key not in best or rank < (best[key].verdict != "chosen", best[key].rejected,
                                          best[key].latency.ms or 0.0):
                best[key] = c
        out += [(d.key, c) for c in best.values()]
    return out


def harness_job(spec: ReleaseSpec, job: JobRow, inputs: Sequence[InputSpec]) -> Job:
    m = spec.measure
    return Job(job_id=job.id, model="", compute_units=job.compute_units, inputs=tuple(inputs), warmup=m.warmup,
               iterations=m.iterations, sample_interval_ms=m.sample_interval_ms, timeout_s=m.timeout_s,
               return_outputs=m.return_outputs)


class References:
    """fp32 PyTorch outputs per component on the jobs' inputs, computed once per run when first needed."""

    def __init__(self, spec: ReleaseSpec) -> None:
        self.spec = spec
        self._refs: Any = None

    def __call__(self, component: str) -> Mapping[str, np.ndarray] | None:
        if self._refs is None:
            from orchestrator.mil.check import References as MilReferences
            from orchestrator.models import load_source

            source = load_source(self.spec.model, relative_to=self.spec.path.parent if self.spec.path else None)
            self._refs = MilReferences(source, self.spec.measure.seed)
        outputs: Mapping[str, np.ndarray] = self._refs.get(component, self.spec.model.components[component])[1]
        return outputs


def work_items(spec: ReleaseSpec, store: ResultsStore, run_id: str, settings: Settings) -> list[WorkItem]:
    from orchestrator.build.store import ArtifactStore
    from orchestrator.models import load_source

    artifacts = ArtifactStore(settings.artifacts_dir)
    source = load_source(spec.model, relative_to=spec.path.parent if spec.path else None)
    run = store.get_run(run_id)
    predictions = stored_predictions(run.plan if run is not None else None)
    items = []
    for job in store.jobs(run_id, status=("pending",)):
        entry = artifacts.find(job.artifact_id or "")
        plans = source.input_plan(job.component, spec.model.components[job.component], spec.measure.seed)
        inputs = [InputSpec(p.name, p.shape, p.dtype, p.seed, p.high) for p in plans]
        items.append(WorkItem(job.id, job.device_key, job.component, job.variant, entry.path, entry.sha256,
                              harness_job(spec, job, inputs), job.predicted_peak_mb, job.limit_mb or 0.0,
                              predictions.get((job.device_key, job.component, job.variant, job.compute_units))))
    return items


async def _drive(spec: ReleaseSpec, store: ResultsStore, run_id: str, pool: DevicePool, settings: Settings,
                 ui: RunUI) -> RunSummary:
    ui.stage("run")
    runner = Runner(store, run_id, references=References(spec), retries=spec.measure.retries,
                    cooldown_s=spec.measure.cooldown_s, progress=ui, launches=spec.measure.launches)
    items = work_items(spec, store, run_id, settings)
    for item in items:
        if item.device_key not in pool.devices:  # e.g. a device that is no longer attached on resume
            store.finish_job(item.store_id, "error", error=f"device {item.device_key} is not available",
                             events=[Event("error", f"device {item.device_key} is not available")])
    items = [i for i in items if i.device_key in pool.devices]
    try:
        summary = await runner.run(pool.devices, items)
    except BaseException:
        store.set_run_status(run_id, "interrupted")
        raise
    store.set_run_status(run_id, "finished")
    return summary


async def start_run(spec: ReleaseSpec, *, settings: Settings, catalog: Catalog, options: RunOptions,
                    ui: RunUI) -> tuple[str, RunSummary]:
    entries = prepare_artifacts(spec, settings, ui)
    facts = {k: f for k, e in entries.items() if e is not None
             and (f := facts_from_manifest(e.manifest, artifact_id=e.id)) is not None}
    run_id = new_run_id()
    pool_options = PoolOptions(increased_memory_limit=spec.app.increased_memory_limit,
                               app_footprint_mb=spec.app.footprint_mb, harness_ipa=options.harness_ipa,
                               work_root=run_work_root(settings, run_id))
    with RunLock(settings.db_path, run_id), ResultsStore(settings.db_path) as store, \
            _work_folder(pool_options.work_root):
        ui.stage("devices")
        async with DevicePool(options.refs, settings=settings, catalog=catalog, options=pool_options) as pool:
            targets = [PlanTarget(key, d.info.profile, os_major=_os_major(d.info.os_version, d.info.backend),
                                  runs_on="coreml" if d.info.backend == "usbmux" else "mil-executor")
                       for key, d in pool.devices.items()]
            plan = make_plan(spec, targets, facts, history_from_store(store, spec_name=spec.name),
                             Overheads.load(settings.workdir), previous_choices(store, spec_name=spec.name))
            env = environment(spec)
            store.create_run(
                run_id=run_id, spec_name=spec.name, spec_digest=spec.digest,
                spec_path=str(spec.path) if spec.path else None,
                plan=plan.to_json(), environment=env, git_rev=env["spec_git_rev"],
                options={"spec": jsonable(spec), "all_variants": options.all_variants,
                         "devices": [r.text for r in options.refs]})
            for key, d in pool.devices.items():
                store.add_device(run_id, DeviceRow(key, d.info.backend, d.info.profile.id, d.info.udid, d.info.name,
                                                   d.info.product_type, d.info.os_version,
                                                   {"emulated": d.info.emulated, **d.info.extra}))
            for e in entries.values():
                if e is not None:
                    store.upsert_artifact(e.id, component=e.component, variant=e.variant, sha256=e.sha256,
                                          manifest=dict(e.manifest))
            emulated = {k: d.info.emulated for k, d in pool.devices.items()}
            chosen = choose_jobs(plan, all_variants=options.all_variants, emulated=emulated)
            limits = {d.key: d.limit_mb for d in plan.devices}
            store.add_jobs(run_id, [NewJob(key, c.component, c.variant, c.compute_units, c.artifact_id,
                                           round(c.run_predicted_mb, 3), limits[key]) for key, c in chosen])
            summary = await _drive(spec, store, run_id, pool, settings, ui)
    return run_id, summary


async def resume_run(spec: ReleaseSpec, run_id: str, *, settings: Settings, catalog: Catalog,
                     harness_ipa: Path | None, ui: RunUI) -> tuple[str, RunSummary]:
    # the store first: opening it marks the run interrupted if its process died, before we take its lock
    with ResultsStore(settings.db_path) as store, RunLock(settings.db_path, run_id), \
            _work_folder(run_work_root(settings, run_id)):
        run = store.get_run(run_id)
        if run is None:
            raise UsageError(f"no run {run_id!r} in {settings.db_path}", fix="`mlfarm runs` lists the runs")
        if run.spec_digest != spec.digest:
            raise UsageError(f"{spec.path} changed since run {run_id} started (spec digest differs)",
                             fix="resume with the spec as it was, or start a new run")
        requeued = store.requeue_interrupted(run_id)
        ui.stage(f"resume ({requeued} interrupted job(s) requeued)")
        refs = [DeviceRef.parse(d.key) for d in store.devices(run_id)]
        pool_options = PoolOptions(increased_memory_limit=spec.app.increased_memory_limit,
                                   app_footprint_mb=spec.app.footprint_mb, harness_ipa=harness_ipa,
                                   work_root=run_work_root(settings, run_id))
        async with DevicePool(refs, settings=settings, catalog=catalog, options=pool_options) as pool:
            summary = await _drive(spec, store, run_id, pool, settings, ui)
    return run_id, summary


def run_work_root(settings: Settings, run_id: str) -> Path:
    """Host device folders of one run: concurrent runs never share (nor clean up) each other's job folders."""
    return settings.workdir / ".mlfarm" / "runs" / run_id / "devices"


@contextlib.contextmanager
def _work_folder(root: Path | None) -> Iterator[None]:
    try:
        yield
    finally:
        if root is not None:
            shutil.rmtree(root.parent, ignore_errors=True)


def _os_major(version: str, backend: str) -> int | None:
    """The OS a real device runs (from lockdown); emulated devices are planned at their profile's latest OS."""
    if backend != "usbmux":
        return None
    try:
        return int(version.split(".")[0])
    except ValueError:
        return None
