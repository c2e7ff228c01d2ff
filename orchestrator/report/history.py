"""A figure's history: one point per finished run of a spec, per (device, component, variant, compute units),
with the change points detected over it.

    with ResultsStore(db) as store:
        series = load_series(store, "tiny-sd", "latency_ms", limit=30)      # oldest run first
    for s in series:
        print(s.label, [p.value for p in s.points], s.change_points)

A point is the run's figure for that job: for latency the median of every prediction of every launch (the
report's p50), for a peak its value. Only jobs that finished ``ok`` count. ``mlfarm history`` prints these;
the HTML report plots them; the regression noise floor (``noise``) is learned from the same medians.
"""

from __future__ import annotations

import statistics
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from orchestrator.report.changepoints import e_divisive
from orchestrator.results import ResultsStore, RunRow

Key = tuple[str, str, str, str]
METRICS = {"latency_ms": "ms", "peak_footprint_mb": "MB"}


@dataclass(frozen=True)
class Point:
    run_id: str
    started_at: float
    git_rev: str | None
    value: float
    launches: int  # how many launches the value pools (1 for v1 runs)


@dataclass(frozen=True)
class Series:
    key: Key
    metric: str
    unit: str
    points: tuple[Point, ...]  # oldest first
    change_points: tuple[int, ...] = ()  # index of the first point of each new level

    @property
    def label(self) -> str:
        return " · ".join(self.key)

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(p.value for p in self.points)

    def level_change(self, index: int) -> float | None:
        """The relative change of the median level at change point ``index`` (0.2 = 20% higher after it)."""
        bounds = [0, *self.change_points, len(self.points)]
        at = bounds.index(index)
        before = statistics.median(self.values[bounds[at - 1]:index])
        after = statistics.median(self.values[index:bounds[at + 1]])
        return after / before - 1.0 if before else None


def _run_rows(store: ResultsStore, spec_name: str, until: str | None, limit: int) -> list[RunRow]:
    if until is None:
        rows = store.list_runs(spec_name=spec_name, limit=limit, status=("finished",))
    else:
        run = store.get_run(until)
        rows = store.previous_runs(until, limit=limit - 1) if run is not None else []
        if run is not None:
            rows = [run, *rows]
    return list(reversed(rows))  # oldest first


def _points(store: ResultsStore, rows: Iterable[RunRow], metric: str,
            devices: Sequence[str] | None) -> dict[Key, list[Point]]:
    out: dict[Key, list[Point]] = {}
    for run in rows:
        for job, measurements in store.run_measurements(run.id):
            if job.status != "ok" or (devices and job.device_key not in devices):
                continue
            values = [m.value for m in measurements if m.metric == metric]
            if not values:
                continue
            launches = len({m.launch for m in measurements if m.metric == metric})
            key = (job.device_key, job.component, job.variant, job.compute_units)
            out.setdefault(key, []).append(Point(run.id, run.started_at, run.git_rev, statistics.median(values),
                                                 launches))
    return out


def load_series(store: ResultsStore, spec_name: str, metric: str, *, until: str | None = None, limit: int = 30,
                devices: Sequence[str] | None = None, seed: int = 0) -> tuple[Series, ...]:
    """Every key's series over the last ``limit`` finished runs of ``spec_name`` (ending at run ``until``, which
    counts even while unfinished), with change points; keys sorted."""
    rows = _run_rows(store, spec_name, until, limit)
    unit = METRICS.get(metric, "")
    out = []
    for key, points in sorted(_points(store, rows, metric, devices).items()):
        values = [p.value for p in points]
        cps = e_divisive(values, seed=[seed, zlib.crc32("/".join((*key, metric)).encode())])
        out.append(Series(key, metric, unit, tuple(points), cps))
    return tuple(out)


def run_medians(series: Iterable[Series]) -> Mapping[Key, list[float]]:
    """Key -> its per-run values, oldest first (the noise floor's input)."""
    return {s.key: list(s.values) for s in series}
