"""Load a run (and its baseline runs) from the results store into plain, frozen dataclasses.

Everything a report needs is read here once, so qualification, regression and the renderers never touch
SQLite. Gates and regression thresholds come from the spec JSON stored with the run (``runs.options.spec``),
not from a spec file, so ``mlfarm report RUN`` works years later without the YAML.

    with ResultsStore(db) as store:
        run = load_run(store, "20250101-120000-ab12", catalog)
        baseline = load_baseline(store, run, "window:5", catalog)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import UnknownProfileError, UsageError
from orchestrator.plan.predictions import Predictions, stored_predictions
from orchestrator.profiles import Catalog, DeviceProfile
from orchestrator.report.plan_view import Choice, plan_choices
from orchestrator.results import DeviceRow, EventRow, JobRow, ResultsStore
from orchestrator.spec.model import GateSpec, RegressionSpec
from orchestrator.validate import parse


@dataclass(frozen=True)
class DeviceData:
    """One device of a run, with what the catalog says about its profile."""

    key: str
    backend: str  # host | usbmux | virtual
    profile_id: str
    name: str
    family: str  # iphone | ipad | mac | host (or "unknown" when the profile is gone from the catalog)
    os_version: str | None
    limit_mb: float | None  # the ceiling the run applied (device info first, then the profile)
    emulated: bool  # a virtual device or an emulated limit: latency is this machine's, not the device's
    unverified: tuple[str, ...]  # profile keys no source confirms (e.g. memory.app_limit_mb)

    @property
    def limit_unverified(self) -> bool:
        return "memory.app_limit_mb" in self.unverified or "memory.app_limit_increased_mb" in self.unverified

    @property
    def label(self) -> str:
        return f"{self.key} (emulated)" if self.emulated else self.key


@dataclass(frozen=True)
class EventData:
    kind: str
    message: str
    data: Mapping[str, Any]
    job_id: str | None
    device_key: str | None


@dataclass(frozen=True)
class JobData:
    """One job of a run: its outcome, every figure by metric name (values in ``idx`` order) and its events."""

    id: str
    device_key: str
    component: str
    variant: str
    compute_units: str
    status: str
    predicted_peak_mb: float | None
    limit_mb: float | None
    error: str | None
    metrics: Mapping[str, tuple[float, ...]]
    events: tuple[EventData, ...] = ()
    artifact_psnr_db: float | None = None  # the build-time PSNR from the artifact manifest, when known
    runtime: str | None = None  # what executed the model: "coreml", or "mil-executor" (mlfarm's, on Linux)
    thermal: str | None = None  # the device's thermal state after the job (nominal ... critical)
    launch_count: int = 0  # fresh launches the job was measured in (0: recorded before launches were)
    lane_shared: bool = False  # a launch shared this machine's CPU with another measurement (see runner/lane.py)
    # metric -> the launch each value of ``metrics[metric]`` was taken in (same order); absent: all launch 0
    launch_ids: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.device_key, self.component, self.variant, self.compute_units)

    def values(self, metric: str) -> tuple[float, ...]:
        return self.metrics.get(metric, ())

    def launches(self, metric: str) -> tuple[tuple[float, ...], ...]:
        """The values of ``metric`` grouped by launch, in launch order (one group for v1 data)."""
        values = self.values(metric)
        ids = self.launch_ids.get(metric) or (0,) * len(values)
        groups: dict[int, list[float]] = {}
        for launch, v in zip(ids, values, strict=True):
            groups.setdefault(launch, []).append(v)
        return tuple(tuple(groups[k]) for k in sorted(groups))

    def value(self, metric: str) -> float | None:
        vals = self.metrics.get(metric)
        return vals[0] if vals else None


@dataclass(frozen=True)
class RunData:
    id: str
    spec_name: str
    status: str
    started_at: float
    finished_at: float | None
    git_rev: str | None
    spec: Mapping[str, Any]
    gates: GateSpec
    regression: RegressionSpec
    baseline_setting: str  # the spec's ``baseline:`` (used when the command line gives none)
    increased_memory_limit: bool
    components: tuple[str, ...]
    devices: tuple[DeviceData, ...]
    jobs: tuple[JobData, ...]
    choices: Mapping[tuple[str, str], Choice] = field(default_factory=dict)
    events: tuple[EventData, ...] = ()
    warnings: tuple[str, ...] = ()
    # (device, component, variant, units) -> the plan's labelled predictions (device's and emulation's)
    predictions: Mapping[tuple[str, str, str, str], Predictions] = field(default_factory=dict)

    def device(self, key: str) -> DeviceData | None:
        return next((d for d in self.devices if d.key == key), None)


@dataclass(frozen=True)
class Baseline:
    """The runs a candidate is compared with: none, one (a run id or ``last``), or a pooled window."""

    setting: str  # as given: none | last | window:N | a run id
    runs: tuple[RunData, ...]
    note: str = ""

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.runs)


# ---- run id and baseline arguments ---------------------------------------------------------------------
_BASELINE = re.compile(r"none|last|window:([0-9]+)|[A-Za-z0-9_-]+")


def resolve_run_id(store: ResultsStore, run: str) -> str:
    """``last`` is the newest run in the store; anything else must be an existing run id."""
    if run == "last":
        rows = store.list_runs(limit=1)
        if not rows:
            raise UsageError(f"no runs in {store.path}",
                             fix="start one with `mlfarm qualify SPEC` or `mlfarm run SPEC`")
        return rows[0].id
    if store.get_run(run) is None:
        raise UsageError(f"unknown run {run!r} in {store.path}", fix="run `mlfarm runs` to list the runs")
    return run


def check_baseline_setting(text: str) -> str:
    """Validate ``--baseline`` (none, last, window:N with N >= 1, or a run id); return it stripped."""
    text = text.strip()
    m = _BASELINE.fullmatch(text)
    if m is None or (text.startswith("window:") and (m.group(1) is None or int(m.group(1)) < 1)):
        raise UsageError(f"bad baseline {text!r}", fix="use a run id, `last`, `window:N` (N >= 1) or `none`")
    return text


# ---- loading -------------------------------------------------------------------------------------------
def _parse_section(cls: type, data: Any, key: str, warnings: list[str]) -> Any:
    if data is None:
        warnings.append(f"the run's spec has no {key} section; using the default {key}")
        return cls()
    value, problems = parse(cls, data, file="run options", key=f"spec.{key}")
    if value is None:
        warnings.append(f"{'; '.join(str(p) for p in problems)}; using the default {key}")
        return cls()
    return value


def _profile(catalog: Catalog, profile_id: str) -> DeviceProfile | None:
    try:
        return catalog.get(profile_id)
    except UnknownProfileError:
        return None


def _device(row: DeviceRow, catalog: Catalog, increased: bool) -> DeviceData:
    profile = _profile(catalog, row.profile_id)
    info = row.info or {}
    limit = info.get("limit_mb")
    if limit is None and profile is not None:
        limit = profile.limit_mb(increased=increased)
    emulated = bool(info.get("emulated", row.backend == "virtual"))
    return DeviceData(
        key=row.key, backend=row.backend, profile_id=row.profile_id,
        name=row.name or (profile.name if profile else row.profile_id),
        family=profile.family if profile else str(info.get("family", "unknown")),
        os_version=row.os_version, limit_mb=float(limit) if limit is not None else None,
        emulated=emulated, unverified=tuple(profile.unverified) if profile else (),
    )


def _event(e: EventRow) -> EventData:
    return EventData(e.kind, e.message, e.data, e.job_id, e.device_key)


def _artifact_psnr(store: ResultsStore, job: JobRow, cache: dict[str, float | None]) -> float | None:
    if job.artifact_id is None:
        return None
    if job.artifact_id not in cache:
        manifest = store.artifact_manifest(job.artifact_id) or {}
        value = (manifest.get("quality") or {}).get("psnr_min_db")
        cache[job.artifact_id] = float(value) if isinstance(value, int | float) else None
    return cache[job.artifact_id]


def _result_field(job: JobRow, section: str, key: str) -> str | None:
    value = ((job.result or {}).get(section) or {}).get(key)
    return value if isinstance(value, str) else None


def _launches(job: JobRow) -> list[Mapping[str, Any]]:
    launches = (job.result or {}).get("launches")
    return [x for x in launches if isinstance(x, Mapping)] if isinstance(launches, list) else []


def _jobs(store: ResultsStore, run_id: str, events: list[EventData]) -> tuple[JobData, ...]:
    by_job: dict[str, list[EventData]] = {}
    for e in events:
        if e.job_id:
            by_job.setdefault(e.job_id, []).append(e)
    psnr_cache: dict[str, float | None] = {}
    out = []
    for job, measurements in store.run_measurements(run_id):
        metrics: dict[str, list[float]] = {}
        launch_ids: dict[str, list[int]] = {}
        for m in sorted(measurements, key=lambda m: (m.metric, m.idx)):
            metrics.setdefault(m.metric, []).append(m.value)
            launch_ids.setdefault(m.metric, []).append(m.launch)
        out.append(JobData(
            id=job.id, device_key=job.device_key, component=job.component, variant=job.variant,
            compute_units=job.compute_units, status=job.status, predicted_peak_mb=job.predicted_peak_mb,
            limit_mb=job.limit_mb, error=job.error, metrics={k: tuple(v) for k, v in metrics.items()},
            events=tuple(by_job.get(job.id, ())), artifact_psnr_db=_artifact_psnr(store, job, psnr_cache),
            runtime=_result_field(job, "harness", "runtime"),
            thermal=_result_field(job, "device", "thermal_state_after"),
            launch_count=len(_launches(job)), lane_shared=any(bool(x.get("shared")) for x in _launches(job)),
            launch_ids={k: tuple(v) for k, v in launch_ids.items()},
        ))
    return tuple(out)


def load_run(store: ResultsStore, run_id: str, catalog: Catalog) -> RunData:
    """Everything a report needs about one run. Raises UsageError for an unknown run id."""
    row = store.get_run(run_id)
    if row is None:
        raise UsageError(f"unknown run {run_id!r} in {store.path}", fix="run `mlfarm runs` to list the runs")
    warnings: list[str] = []
    spec = row.options.get("spec")
    if not isinstance(spec, Mapping) or not spec:
        warnings.append("the run does not record its spec; default gates and regression thresholds used")
        spec = {"gates": {}, "regression": {}}
    gates = _parse_section(GateSpec, spec.get("gates"), "gates", warnings)
    regression = _parse_section(RegressionSpec, spec.get("regression"), "regression", warnings)
    increased = bool((spec.get("app") or {}).get("increased_memory_limit", False))
    events = [_event(e) for e in store.events(run_id)]
    jobs = _jobs(store, run_id, events)
    components = tuple((spec.get("model") or {}).get("components") or ()) or tuple(
        dict.fromkeys(j.component for j in jobs))
    return RunData(
        id=row.id, spec_name=row.spec_name, status=row.status, started_at=row.started_at,
        finished_at=row.finished_at, git_rev=row.git_rev, spec=spec, gates=gates, regression=regression,
        baseline_setting=str(spec.get("baseline") or "last"), increased_memory_limit=increased,
        components=components, devices=tuple(_device(d, catalog, increased) for d in store.devices(run_id)),
        jobs=jobs, choices=plan_choices(row.plan), events=tuple(e for e in events if e.job_id is None),
        warnings=tuple(warnings), predictions=stored_predictions(row.plan),
    )


def load_baseline(store: ResultsStore, run: RunData, setting: str | None, catalog: Catalog) -> Baseline:
    """The baseline runs for ``run``: ``setting`` (or the run's spec setting when None) resolved in the store."""
    setting = check_baseline_setting(setting if setting is not None else run.baseline_setting)
    if setting == "none":
        return Baseline(setting, (), "no baseline requested")
    if setting == "last" or setting.startswith("window:"):
        n = 1 if setting == "last" else int(setting.split(":", 1)[1])
        rows = store.previous_runs(run.id, limit=n)
        runs = tuple(load_run(store, r.id, catalog) for r in rows)
        if not runs:
            return Baseline(setting, (), f"no earlier finished run of {run.spec_name!r} to compare with")
        note = "" if len(runs) == n else f"only {len(runs)} earlier finished run(s) of {n} requested"
        return Baseline(setting, runs, note)
    if setting == run.id:
        raise UsageError(f"run {run.id} cannot be its own baseline", fix="pass another run id, `last` or `window:N`")
    if store.get_run(setting) is None:
        raise UsageError(f"unknown baseline run {setting!r} in {store.path}",
                         fix="run `mlfarm runs` to list the runs, or use `last`, `window:N` or `none`")
    base = load_run(store, setting, catalog)
    note = "" if base.spec_name == run.spec_name else f"baseline is a run of another spec ({base.spec_name!r})"
    return Baseline(setting, (base,), note)
