"""A job's predicted peak memory, labelled by the runtime it models, worded once for every surface.

An emulated device (``virtual:ID``, ``host:ID``) has two predictions: the real device's (Core ML, which decides
the plan) and the emulation's (mlfarm's MIL executor, which is what runs here and what its measured peak is
compared with). A real device or the host itself has one. ``mlfarm plan``, the run's job lines and every report
show ``Predictions.text()``, so a figure never appears without the runtime it belongs to.

    Predictions(device_mb=175.4, device_runtime="coreml", emulation_mb=57.0).text()
    -> '175 MB device (Core ML) · 57 MB emulation (MIL executor)'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.plan.model import Candidate, DevicePlan

RUNTIME_NAMES = {"coreml": "Core ML", "mil-executor": "MIL executor"}


def _mb(value: float) -> str:
    """Whole MB, but a figure under 1 MB keeps two significant digits (a tiny model's 0.31 MB is not "0 MB")."""
    return f"{value:,.0f} MB" if abs(value) >= 1 or value == 0 else f"{value:.2g} MB"


@dataclass(frozen=True)
class Predictions:
    device_mb: float  # what the plan modelled for the device (Core ML; the executor for the host itself)
    device_runtime: str = "coreml"
    emulation_mb: float | None = None  # mlfarm's MIL executor on an emulated device, else None

    @property
    def compared_mb(self) -> float:
        """The prediction a measured peak is compared with: the emulation's where there is one."""
        return self.emulation_mb if self.emulation_mb is not None else self.device_mb

    def text(self) -> str:
        device = f"{_mb(self.device_mb)} ({RUNTIME_NAMES.get(self.device_runtime, self.device_runtime)})"
        if self.emulation_mb is None:
            return device
        return f"{_mb(self.device_mb)} device (Core ML) · {_mb(self.emulation_mb)} emulation (MIL executor)"

    def to_json(self) -> dict[str, Any]:
        return {"device_mb": round(self.device_mb, 1), "device_runtime": self.device_runtime,
                "emulation_mb": None if self.emulation_mb is None else round(self.emulation_mb, 1),
                "emulation_runtime": None if self.emulation_mb is None else "mil-executor"}


def device_runtime(family: str) -> str:
    """The runtime a device's own prediction models: the host runs the executor, Apple devices Core ML."""
    return "mil-executor" if family == "host" else "coreml"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _devices(plan: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    devices = plan.get("devices")
    if isinstance(devices, list):
        yield from (d for d in devices if isinstance(d, Mapping) and isinstance(d.get("key"), str))


def stored_predictions(plan: Mapping[str, Any] | None) -> dict[tuple[str, str, str, str], Predictions]:
    """(device key, component, variant, compute units) -> Predictions, read from a stored ``Plan.to_json()``."""
    out: dict[tuple[str, str, str, str], Predictions] = {}
    if not isinstance(plan, Mapping):
        return out
    for device in _devices(plan):
        runtime = device_runtime(str(device.get("family", "")))
        for cand in device.get("candidates") or ():
            if not isinstance(cand, Mapping):
                continue
            device_mb, run_mb = _number(cand.get("predicted_mb")), _number(cand.get("run_predicted_mb"))
            if device_mb is None or not device_mb:
                continue
            emulated = device.get("runtime") != runtime
            key = (device["key"], str(cand.get("component")), str(cand.get("variant")),
                   str(cand.get("compute_units")))
            out[key] = Predictions(device_mb, runtime, run_mb if emulated else None)
    return out


def candidate_predictions(device: DevicePlan, candidate: Candidate) -> Predictions:
    """A plan candidate's predictions, rounded as the stored plan rounds them (so plan and reports agree)."""
    runtime = device_runtime(device.family)
    emulation = round(candidate.run_predicted_mb, 1) if device.runtime != runtime else None
    return Predictions(round(candidate.predicted_mb, 1), runtime, emulation)
