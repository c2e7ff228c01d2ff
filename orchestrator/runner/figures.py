"""Turn one job's outcomes (one per launch) into the rows of the ``measurements`` table (names: see the report)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from orchestrator.devices.base import MemoryFigures, RunOutcome
from orchestrator.results.store import Measurement
from orchestrator.serialize import PSNR_CAP_DB


def outputs_psnr(reference: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> float | None:
    """The worst PSNR over the outputs both sides have; None when nothing comparable came back."""
    from orchestrator.mil.quality import psnr  # one formula for artifacts and devices (imports torch: lazily)

    values = [psnr(reference[name], outputs[name]) for name in reference if name in outputs]
    return min(values) if values else None


def measurements(outcome: RunOutcome, *, predicted_mb: float | None, limit_mb: float,
                 reference: Mapping[str, np.ndarray] | None) -> tuple[list[Measurement], float | None]:
    """All figures of a job measured in one launch, and its PSNR (None when not measurable)."""
    return job_measurements([outcome], predicted_mb=predicted_mb, limit_mb=limit_mb, reference=reference)


def job_memory(outcomes: Sequence[RunOutcome]) -> MemoryFigures | None:
    """The job's memory: the launch that failed (its footprint at the kill), else the launch with the highest peak
    (the figure a limit must hold for every launch)."""
    last = outcomes[-1] if outcomes else None
    if last is not None and last.status != "ok" and last.memory is not None:
        return last.memory
    peaks = [o.memory for o in outcomes if o.memory is not None]
    return max(peaks, key=lambda m: m.peak_mb) if peaks else None


def _memory_rows(mem: MemoryFigures) -> list[Measurement]:
    rows = [Measurement("peak_footprint_mb", mem.peak_mb, "MB"),
            Measurement("raw_peak_footprint_mb", mem.raw_peak_mb, "MB"),
            Measurement("baseline_footprint_mb", mem.baseline_mb, "MB")]
    if mem.system_delta_mb is not None:
        rows.append(Measurement("system_delta_mb", mem.system_delta_mb, "MB"))
    if mem.min_available_mb is not None:
        rows.append(Measurement("min_available_mb", mem.min_available_mb, "MB"))
    return rows


def _launch_rows(raw: Mapping[str, Any], launch: int, first_idx: int) -> list[Measurement]:
    """Timings of one launch: load and first predict at idx = launch, latencies numbered on from ``first_idx``."""
    rows = []
    if raw["status"] == "ok":  # an error/timeout result writes 0 for what it never measured
        rows += [Measurement("load_cold_ms", raw["load_ms"]["cold"], "ms", launch, launch),
                 Measurement("load_warm_ms", raw["load_ms"]["warm"], "ms", launch, launch),
                 Measurement("first_predict_ms", raw["first_predict_ms"], "ms", launch, launch)]
    rows += [Measurement("latency_ms", ms, "ms", first_idx + i, launch) for i, ms in enumerate(raw["latencies_ms"])]
    return rows


def job_measurements(outcomes: Sequence[RunOutcome], *, predicted_mb: float | None, limit_mb: float,
                     reference: Mapping[str, np.ndarray] | None) -> tuple[list[Measurement], float | None]:
    """All figures of a job measured in ``outcomes`` (one per launch, in launch order), and its PSNR.

    Latency samples carry their launch index and are numbered across launches; load times and the first
    predict are one value per launch. Memory is one figure per job (``job_memory``); PSNR comes from the first
    launch that returned outputs (a launch runs the same model on the same inputs)."""
    rows: list[Measurement] = [Measurement("limit_mb", limit_mb, "MB")]
    if predicted_mb is not None:
        rows.append(Measurement("predicted_peak_mb", round(predicted_mb, 3), "MB"))
    mem = job_memory(outcomes)
    if mem is not None:
        rows += _memory_rows(mem)
    latencies = 0
    for launch, outcome in enumerate(outcomes):
        if outcome.result is not None:
            launch_rows = _launch_rows(outcome.result.raw, launch, latencies)
            latencies += sum(1 for r in launch_rows if r.metric == "latency_ms")
            rows += launch_rows
    if not any(r.metric == "min_available_mb" for r in rows):
        reported = [v for o in outcomes if o.result is not None
                    and (v := o.result.raw["memory"].get("min_available_mb")) is not None]
        if reported:
            rows.append(Measurement("min_available_mb", min(reported), "MB"))
    psnr = None
    with_outputs = next((o for o in outcomes if o.result is not None and o.outputs), None)
    if reference is not None and with_outputs is not None:
        psnr = outputs_psnr(reference, with_outputs.outputs)
        if psnr is not None and not math.isnan(psnr):  # bit-identical outputs store as the cap, as manifests do
            rows.append(Measurement("psnr_db", round(max(min(psnr, PSNR_CAP_DB), -PSNR_CAP_DB), 3), "dB"))
    return rows, psnr
