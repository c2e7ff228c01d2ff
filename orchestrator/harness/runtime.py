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
    """mlfarm's MIL executor in the program's own precision: fp16 programs run in fp16 mode (each op's output
    rounded and held as fp16, like a device), fp32 programs in fp32."""

    executor: Any
    runtime: str = "mil-executor"

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result: dict[str, np.ndarray] = self.executor.run(inputs).outputs
        return result


def coreml_loader(path: Path, compute_units: str) -> Predictor:
    import coremltools as ct

    units = getattr(ct.ComputeUnit, COREML_COMPUTE_UNITS[compute_units])
    return CoreMLPredictor(ct.models.MLModel(str(path), compute_units=units))


def mil_loader(path: Path, compute_units: str) -> Predictor:
    from orchestrator import mil

    return MilPredictor(mil.Executor(mil.load(path), precision="auto"))


def import_runtime(runtime: str) -> None:
    """Import the runtime's libraries up front: a Swift app has Core ML linked before it loads a model, so
    library import time belongs to neither the cold load nor the footprint above the baseline."""
    if runtime == "coreml":
        import coremltools
    else:
        # the executor, and the coremltools parts its loader uses (imported lazily by orchestrator.mil.load)
        import coremltools  # noqa: F401
        from coremltools.converters.mil.frontend.milproto import load  # noqa: F401
        from coremltools.converters.mil.mil import types  # noqa: F401

        from orchestrator import mil  # noqa: F401


def choose_loader(force: str | None = None) -> Callable[[Path, str], Predictor]:
    """Core ML where it exists; the MIL executor otherwise (or when ``force == "mil-executor"``)."""
    if force == "mil-executor" or (force is None and not coreml_available()):
        return mil_loader
    return coreml_loader
