"""Turn one job's outcome into the rows of the ``measurements`` table (names in INTERFACES / report)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from orchestrator.devices.base import RunOutcome
from orchestrator.results.store import Measurement
from orchestrator.serialize import PSNR_CAP_DB


def outputs_psnr(reference: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> float | None:
    """The worst PSNR over the outputs both sides have; None when nothing comparable came back."""
    from orchestrator.mil.quality import psnr  # one formula for artifacts and devices (imports torch: lazily)

    values = [psnr(reference[name], outputs[name]) for name in reference if name in outputs]
    return min(values) if values else None


def measurements(outcome: RunOutcome, *, predicted_mb: float | None, limit_mb: float,
                 reference: Mapping[str, np.ndarray] | None) -> tuple[list[Measurement], float | None]:
    """All figures of one job, and its PSNR (None when not measurable)."""
    rows: list[Measurement] = [Measurement("limit_mb", limit_mb, "MB")]
    if predicted_mb is not None:
        rows.append(Measurement("predicted_peak_mb", round(predicted_mb, 3), "MB"))
    mem = outcome.memory
    if mem is not None:
        rows += [Measurement("peak_footprint_mb", mem.peak_mb, "MB"),
                 Measurement("raw_peak_footprint_mb", mem.raw_peak_mb, "MB"),
                 Measurement("baseline_footprint_mb", mem.baseline_mb, "MB")]
        if mem.system_delta_mb is not None:
            rows.append(Measurement("system_delta_mb", mem.system_delta_mb, "MB"))
        if mem.min_available_mb is not None:
            rows.append(Measurement("min_available_mb", mem.min_available_mb, "MB"))
    result = outcome.result
    psnr = None
    if result is not None:
        raw = result.raw
        if result.status == "ok":  # an error/timeout result writes 0 for what it never measured
            rows += [Measurement("load_cold_ms", raw["load_ms"]["cold"], "ms"),
                     Measurement("load_warm_ms", raw["load_ms"]["warm"], "ms"),
                     Measurement("first_predict_ms", raw["first_predict_ms"], "ms")]
        rows += [Measurement("latency_ms", ms, "ms", i) for i, ms in enumerate(raw["latencies_ms"])]
        if raw["memory"].get("min_available_mb") is not None and (mem is None or mem.min_available_mb is None):
            rows.append(Measurement("min_available_mb", raw["memory"]["min_available_mb"], "MB"))
        if reference is not None and outcome.outputs:
            psnr = outputs_psnr(reference, outcome.outputs)
            if psnr is not None and not math.isnan(psnr):  # bit-identical outputs store as the cap, as manifests do
                rows.append(Measurement("psnr_db", round(max(min(psnr, PSNR_CAP_DB), -PSNR_CAP_DB), 3), "dB"))
    return rows, psnr
