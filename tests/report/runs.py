"""Realistic runs written through the real ResultsStore, the way the runner writes them.

Tests describe a run as a list of ``FakeJob`` and get a run id back; the report code then reads a real
SQLite file. ``tiny_sd_jobs`` is the shape of ``mlfarm qualify examples/tiny-sd.yaml``: the host and two
virtual iPhones, three components each.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.results import DeviceRow, Event, Measurement, NewJob, ResultsStore
from orchestrator.serialize import jsonable
from orchestrator.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
DEVICES = (
    DeviceRow("host", "host", "host", name="this machine", info={"limit_mb": 24000.0}),
    DeviceRow("virtual:iphone-12", "virtual", "iphone-12", name="iPhone 12 (virtual)", os_version="17.5",
              info={"emulated": True}),
    DeviceRow("virtual:iphone-15-pro", "virtual", "iphone-15-pro", name="iPhone 15 Pro (virtual)",
              os_version="18.1", info={"emulated": True}),
)
# component -> (median latency ms on this machine, peak MB, predicted MB, artifact PSNR dB)
TINY = {"text_encoder": (6.0, 180.0, 170.0, 52.0), "unet": (48.0, 320.0, 300.0, 41.5),
        "vae_decoder": (30.0, 260.0, 280.0, 47.0)}
VARIANT = "fp16-palette6-split_einsum_v2"


@dataclass
class FakeJob:
    device: str
    component: str
    variant: str = VARIANT
    units: str = "cpu_only"
    status: str = "ok"
    latencies: Sequence[float] = ()
    peak_mb: float | None = None
    predicted_mb: float | None = None
    limit_mb: float | None = None
    psnr_db: float | None = None
    artifact_psnr_db: float | None = None
    error: str | None = None
    events: Sequence[Event] = ()
    thermal: str = "nominal"
    extra: dict[str, float] = field(default_factory=dict)
    launches: int = 3  # latencies are split into this many consecutive launches, as measure.launches does

    def measurements(self) -> list[Measurement]:
        n = len(self.latencies)
        out = [Measurement("latency_ms", v, "ms", i, launch=i * self.launches // n)
               for i, v in enumerate(self.latencies)]
        for metric, value, unit in (("peak_footprint_mb", self.peak_mb, "MB"), ("psnr_db", self.psnr_db, "dB"),
                                    ("predicted_peak_mb", self.predicted_mb, "MB"),
                                    ("limit_mb", self.limit_mb, "MB")):
            if value is not None:
                out.append(Measurement(metric, value, unit))
        out += [Measurement(k, v, "ms" if k.endswith("_ms") else "MB") for k, v in self.extra.items()]
        return out


def tiny_spec(**overrides: Any) -> dict[str, Any]:
    """The example spec as the runner stores it in ``runs.options.spec`` (JSON), with sections overridden."""
    spec: dict[str, Any] = jsonable(load_spec(REPO / "examples" / "tiny-sd.yaml"))
    for key, value in overrides.items():
        spec[key] = value if not isinstance(value, dict) else {**spec.get(key, {}), **value}
    return spec


def latencies(median: float, n: int, rng: np.random.Generator, cv: float = 0.04) -> list[float]:
    return [float(x) for x in rng.normal(median, median * cv, n).clip(min=median * 0.5)]


def tiny_sd_jobs(rng: np.random.Generator, *, n: int = 30, slow: float = 1.0, cv: float = 0.04,
                 devices: Iterable[str] = tuple(d.key for d in DEVICES)) -> list[FakeJob]:
    jobs = []
    for device in devices:
        for comp, (lat, peak, pred, psnr) in TINY.items():
            jobs.append(FakeJob(device, comp, latencies=latencies(lat * slow, n, rng, cv), peak_mb=peak,
                                predicted_mb=pred, artifact_psnr_db=psnr, psnr_db=psnr - 0.3))
    return jobs


class RunWriter:
    """Writes runs into one store with a clock that moves forward one minute per run."""

    def __init__(self, db: Path) -> None:
        self._ticks = itertools.count(1_760_000_000, 60)
        self.store = ResultsStore(db, clock=lambda: float(next(self._ticks)))

    def close(self) -> None:
        self.store.close()

    def run(self, jobs: Sequence[FakeJob], *, spec: dict[str, Any] | None = None, plan: dict[str, Any] | None = None,
            devices: Sequence[DeviceRow] = DEVICES, status: str = "finished", spec_name: str = "tiny-sd") -> str:
        spec = spec if spec is not None else tiny_spec()
        run_id = self.store.create_run(spec_name=spec_name, spec_digest="d", plan=plan or {},
                                       options={"spec": spec}, git_rev="abc1234")
        used = {j.device for j in jobs}
        for d in devices:
            if d.key in used:
                self.store.add_device(run_id, d)
        for job in jobs:
            artifact = None
            if job.artifact_psnr_db is not None:
                artifact = f"{job.component}/{job.variant}/{job.artifact_psnr_db}"
                self.store.upsert_artifact(artifact, component=job.component, variant=job.variant, sha256="0" * 64,
                                           manifest={"quality": {"psnr_min_db": job.artifact_psnr_db}})
            [job_id] = self.store.add_jobs(run_id, [NewJob(job.device, job.component, job.variant, job.units,
                                                           artifact, job.predicted_mb, job.limit_mb)])
            self.store.start_job(job_id)
            result = {"status": job.status, "harness": {"runtime": "mil-executor"},
                      "device": {"thermal_state_after": job.thermal}}
            self.store.finish_job(job_id, job.status, result=result, error=job.error,
                                  measurements=job.measurements(), events=job.events)
        self.store.set_run_status(run_id, status)
        return run_id


def with_job(jobs: list[FakeJob], device: str, component: str, **changes: Any) -> list[FakeJob]:
    """``jobs`` with the (device, component) job changed."""
    return [replace(j, **changes) if (j.device, j.component) == (device, component) else j for j in jobs]


def jetsam_event(footprint: float, limit: float) -> Event:
    return Event("jetsam", "per-process-limit", {"reason": "per-process-limit", "footprint_mb": footprint,
                                                 "limit_mb": limit, "emulated": True, "largest_process": "harness"})
