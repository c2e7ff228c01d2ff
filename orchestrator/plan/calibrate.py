"""Refit the memory model's runtime overheads from measured peaks (``mlfarm calibrate``).

For every finished job: residual = measured peak - (app footprint + resident weights + activation peak), with the
resident weights the memory model would predict for that job's device, runtime and compute units. The median residual
per (runtime, family, compute units) replaces the prior in ``overhead.yaml`` (``Overheads.refit``), and each
component's median residual sets its offset from its runtime's (``components:``); the result
is written to ``.mlfarm/overhead.yaml`` under the working folder, which the planner then prefers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from orchestrator.plan.facts import facts_from_manifest
from orchestrator.plan.memory import Overheads, predict
from orchestrator.plan.model import Runtime
from orchestrator.profiles import Catalog, host_profile
from orchestrator.results.store import ResultsStore, RunRow
from orchestrator.variants import Variant


@dataclass(frozen=True)
class Observation:
    runtime: str
    family: str
    compute_units: str
    residual_mb: float
    job_id: str
    component: str = ""


def observations(store: ResultsStore, runs: Iterable[RunRow], catalog: Catalog) -> list[Observation]:
    out = []
    for run in runs:
        devices = {d.key: d for d in store.devices(run.id)}
        app_mb = float(run.options.get("spec", {}).get("app", {}).get("footprint_mb", 25.0))
        for job in store.jobs(run.id, status=("ok",)):
            device = devices.get(job.device_key)
            manifest = store.artifact_manifest(job.artifact_id) if job.artifact_id else None
            facts = facts_from_manifest(manifest, artifact_id=job.artifact_id) if manifest else None
            peak = [m.value for m in store.measurements(job.id) if m.metric == "peak_footprint_mb"]
            if device is None or facts is None or not peak:
                continue
            profile = host_profile() if device.profile_id == "host" else catalog.find(device.profile_id)
            if profile is None:
                continue
            runtime: Runtime = "coreml" if device.backend == "usbmux" else "mil-executor"
            os_major = profile.os.max
            if runtime == "coreml" and device.os_version:
                os_major = int(device.os_version.split(".")[0]) if device.os_version[0].isdigit() else os_major
            pred = predict(facts, Variant.parse(job.variant), os_name=profile.os.name, os_major=os_major,
                           compute_units=job.compute_units, family=profile.family,
                           has_ane=profile.has_usable_ane, runtime=runtime, overheads=Overheads.default())
            residual = peak[0] - app_mb - pred.weights_mb - pred.activations_mb
            out.append(Observation(runtime, profile.family, job.compute_units, residual, job.id, job.component))
    return out


def refit(prior: Overheads, obs: Iterable[Observation]) -> Overheads:
    obs = list(obs)
    return prior.refit([(o.runtime, o.family, o.compute_units, o.residual_mb) for o in obs],
                       [(o.runtime, o.component, o.residual_mb) for o in obs if o.component])


def write(overheads: Overheads, workdir: Path) -> Path:
    path = workdir / ".mlfarm" / "overhead.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Written by `mlfarm calibrate`: runtime overheads (MB) refitted from measured peaks.\n"
              "# Delete this file to return to the defaults in orchestrator/plan/overhead.yaml.\n")
    path.write_text(header + yaml.safe_dump(overheads.to_json(), sort_keys=True))
    return path
