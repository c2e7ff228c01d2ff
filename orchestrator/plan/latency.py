"""Predicted latency of one prediction: measured history first, a FLOPs-based estimate second.

The estimate divides the artifact's FLOPs by an effective throughput of the compute units on that device:
peak figures from the profile (Neural Engine TOPS; GPU cores x a per-core fp16 rate; a per-device CPU rate)
times a utilisation factor. It is meant to order candidates on one device, not to promise milliseconds, and
it is always labelled ``estimate``. Apple's TOPS for A17 Pro / M4 and later are int8 figures: halved for fp16.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator.plan.model import LatencyEstimate, Runtime
from orchestrator.profiles.model import DeviceProfile

GPU_CORE_FP16_GFLOPS = 330.0  # ~128 ALUs x 2 FLOP x ~1.3 GHz, fp16 rate on Apple GPUs
CPU_GFLOPS = {"iphone": 80.0, "ipad": 100.0, "mac": 150.0, "host": 40.0}
UTILISATION = {"ane": 0.25, "gpu": 0.35, "cpu": 0.5}
INT8_TOPS_CHIPS = ("A17", "A18", "A19", "M4", "M5")
FP32_SLOWDOWN = 2.0  # fp32 programs run at roughly half the fp16 rate on GPU/CPU
# Chips without a published Neural Engine figure yet: assumed no slower than their predecessor's figure (A18:
# 35, M4: 38; both int8 TOPS), rather than the generic A12/A13-class guess, which would rank an M5 below an M1.
PREDECESSOR_TOPS = {"A19": 35.0, "M5": 38.0}


# A measurement is never trusted to better than +-5% (clock and thermal state move between days); an estimate
# with nothing to calibrate it, or one calibration point, is trusted to a factor of 2 either way.
MEASURED_MIN_SPREAD = 0.05
ESTIMATE_DEFAULT_FACTOR = 2.0
ESTIMATE_MIN_FACTOR = 1.25


@dataclass(frozen=True)
class History:
    """Measured median latency (ms) by (profile id, component, variant id, compute units), and the relative
    half-width of what was measured (``spread``: 0.1 = +-10%, from the launch medians of those runs)."""

    p50_ms: Mapping[tuple[str, str, str, str], float] = field(default_factory=dict)
    spread: Mapping[tuple[str, str, str, str], float] = field(default_factory=dict)

    def get(self, profile_id: str, component: str, variant: str, compute_units: str) -> float | None:
        return self.p50_ms.get((profile_id, component, variant, compute_units))

    def half_width(self, profile_id: str, component: str, variant: str, compute_units: str) -> float:
        return max(MEASURED_MIN_SPREAD, self.spread.get((profile_id, component, variant, compute_units), 0.0))


def _ane_tflops(profile: DeviceProfile) -> float | None:
    if not profile.has_usable_ane or profile.ane is None:
        return None
    tops = profile.ane.tops
    if tops is None:
        family = next((chip for chip in PREDECESSOR_TOPS if profile.chip.startswith(chip)), None)
        tops = PREDECESSOR_TOPS[family] if family else 5.0 * profile.ane.cores / 8  # A12/A13 class
    if profile.chip.startswith(INT8_TOPS_CHIPS):
        tops /= 2.0
    return tops


def _gpu_tflops(profile: DeviceProfile) -> float | None:
    cores = profile.gpu_cores
    if cores is None:
        return None
    n = min(cores) if isinstance(cores, tuple) else cores
    return n * GPU_CORE_FP16_GFLOPS / 1000.0


def effective_tflops(profile: DeviceProfile, compute_units: str, precision: str, runtime: Runtime) -> float:
    cpu = CPU_GFLOPS.get(profile.family, 40.0) / 1000.0 * UTILISATION["cpu"]
    if runtime == "mil-executor":
        return cpu / (FP32_SLOWDOWN if precision == "fp32" else 1.0)
    ane = _ane_tflops(profile)
    gpu = _gpu_tflops(profile)
    options = [cpu / (FP32_SLOWDOWN if precision == "fp32" else 1.0)]
    if compute_units in ("all", "cpu_and_ne") and ane is not None and precision == "fp16":
        options.append(ane * UTILISATION["ane"])
    if compute_units in ("all", "cpu_and_gpu") and gpu is not None:
        options.append(gpu * UTILISATION["gpu"] / (FP32_SLOWDOWN if precision == "fp32" else 1.0))
    return max(options)


def estimate(profile: DeviceProfile, *, component: str, variant: str, precision: str, compute_units: str,
             flops: float, runtime: Runtime, history: History) -> LatencyEstimate:
    measured = history.get(profile.id, component, variant, compute_units)
    guess = None
    if flops > 0:
        guess = round(flops / (effective_tflops(profile, compute_units, precision, runtime) * 1e12) * 1000.0, 3)
    if measured is not None:
        h = history.half_width(profile.id, component, variant, compute_units)
        return LatencyEstimate(round(measured, 3), "measured", guess, low_ms=round(measured * (1 - h), 3),
                               high_ms=round(measured * (1 + h), 3))
    if guess is None:
        return LatencyEstimate(None, "unknown")
    return _with_factor(LatencyEstimate(guess, "estimate", guess), ESTIMATE_DEFAULT_FACTOR)


def _with_factor(x: LatencyEstimate, factor: float) -> LatencyEstimate:
    ms = x.ms or 0.0
    return dataclasses.replace(x, low_ms=round(ms / factor, 3), high_ms=round(ms * factor, 3))


def calibrate(latencies: list[LatencyEstimate]) -> list[LatencyEstimate]:
    """Scale the estimates of one device by the median measured/estimated ratio of its measured candidates, so
    a measured candidate is not compared with an estimate that is off by an order of magnitude."""
    ratios = sorted(x.ms / x.estimate_ms for x in latencies
                    if x.source == "measured" and x.ms and x.estimate_ms)
    if not ratios:
        return latencies
    k = ratios[len(ratios) // 2]
    factor = calibrated_error(ratios, k)
    return [_with_factor(LatencyEstimate(round(x.ms * k, 3), "estimate", x.estimate_ms, round(k, 4)), factor)
            if x.source == "estimate" and x.ms is not None else x for x in latencies]


def calibrated_error(ratios: list[float], k: float) -> float:
    """How far a scaled estimate may be off, as a factor: the worst measured/estimated ratio relative to the
    scale ``k`` among the device's measured candidates (one ratio says nothing about the error: the default)."""
    if len(ratios) < 2:
        return ESTIMATE_DEFAULT_FACTOR
    worst = max(abs(math.log(r / k)) for r in ratios)
    return max(ESTIMATE_MIN_FACTOR, math.exp(worst))
