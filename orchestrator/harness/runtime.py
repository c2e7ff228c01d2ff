"""What executes a model inside the host harness: Core ML on macOS, mlfarm's MIL executor elsewhere.

On Linux there is no Core ML runtime, so host latencies are those of the MIL executor, not of Core ML;
results say so (``harness.runtime = "mil-executor"``). A Predictor is created by ``load`` (timed as the
model load) and then called many times (each call timed as one prediction).
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

# job compute_units -> coremltools.ComputeUnit member name
COREML_COMPUTE_UNITS = {"all": "ALL", "cpu_and_ne": "CPU_AND_NE", "cpu_and_gpu": "CPU_AND_GPU", "cpu_only": "CPU_ONLY"}


class Predictor(Protocol):
    runtime: str

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def coreml_available() -> bool:
    return platform.system() == "Darwin"


@dataclass
class CoreMLPredictor:
    """Core ML through coremltools (macOS only): ``MLModel(path, compute_units=...)`` then ``predict``."""

    model: Any
    runtime: str = "coreml"

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.model.predict(inputs)
        return {k: np.asarray(v) for k, v in out.items()}


@dataclass
class MilPredictor:
    """mlfarm's MIL executor; fp16 artifacts run in fp16 mode (each op's output rounded like a device)."""

    executor: Any
    runtime: str = "mil-executor"

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result: dict[str, np.ndarray] = self.executor.run(inputs)
        return result


def artifact_precision(path: Path) -> str:
    """fp16 or fp32, from the artifact's manifest when present (mlfarm builds), else fp16 (Core ML default)."""
    import json

    for manifest in (path / "manifest.json", path.parent / "manifest.json"):
        try:
            data = json.loads(manifest.read_text())
            return str(data["variant"]["precision"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return "fp16"


def coreml_loader(path: Path, compute_units: str) -> Predictor:
    import coremltools as ct

    units = getattr(ct.ComputeUnit, COREML_COMPUTE_UNITS[compute_units])
    return CoreMLPredictor(ct.models.MLModel(str(path), compute_units=units))


def mil_loader(path: Path, compute_units: str) -> Predictor:
    from orchestrator import mil

    return MilPredictor(mil.Executor(path, precision=artifact_precision(path)))


def import_runtime(runtime: str) -> None:
    """Import the runtime's libraries up front: a Swift app has Core ML linked before it loads a model, so
    library import time belongs to neither the cold load nor the footprint above the baseline."""
    if runtime == "coreml":
        import coremltools  # noqa: F401
    else:
        from orchestrator import mil  # noqa: F401


def choose_loader(force: str | None = None) -> Callable[[Path, str], Predictor]:
    """Core ML where it exists; the MIL executor otherwise (or when ``force == "mil-executor"``)."""
    if force == "mil-executor" or (force is None and not coreml_available()):
        return mil_loader
    return coreml_loader
