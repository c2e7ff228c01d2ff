"""Run and measure Core ML artifacts anywhere, without Core ML: load an ``.mlpackage`` as a MIL program, analyse
it (weights, FLOPs, activation liveness) and execute it with mlfarm's reference executor (torch, CPU).

    import orchestrator.mil as mil
    program = mil.load("unet.mlpackage")
    a = mil.analyze(program)                    # a.activation_peak_bytes, a.peak_op, a.top_tensors()
    out = mil.execute(program, {"sample": x, "timestep": t, "encoder_hidden_states": e}, precision="fp16")
    mil.psnr(reference["noise_pred"], out["noise_pred"])

Everything accepts a path, a ``Program``, or an in-memory coremltools MIL program. Bad packages raise
``ArtifactError``; ops without a kernel raise ``UnsupportedOpError`` naming the op and the artifact.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.mil.analysis import Analysis, LiveTensor, analyze_program
from orchestrator.mil.load import from_mil, load  # after ``import orchestrator.mil.load``: the function, not the module
from orchestrator.mil.program import Op, Program, TensorType
from orchestrator.mil.quality import psnr

if TYPE_CHECKING:
    from orchestrator.mil.executor import Execution, Executor

__all__ = [
    "Analysis", "Execution", "Executor", "LiveTensor", "Op", "Program", "TensorType",
    "analyze", "as_program", "execute", "from_mil", "load", "psnr",
]

# Imported on first use: the executor imports torch (seconds), and importing any module of this package (e.g.
# ``mil.static_load`` for a quick analysis) runs this file first. (The loader imports coremltools lazily.)
_LAZY = {"Execution": "executor", "Executor": "executor"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"orchestrator.mil.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'orchestrator.mil' has no attribute {name!r}")


def as_program(path_or_program: str | Path | Program | Any) -> Program:
    """A ``Program`` from a package path, a ``Program`` (returned as is) or a coremltools MIL program."""
    if isinstance(path_or_program, Program):
        return path_or_program
    if isinstance(path_or_program, str | Path):
        return load(path_or_program)
    if hasattr(path_or_program, "functions"):
        return from_mil(path_or_program)
    raise TypeError(f"expected an .mlpackage path or a MIL program, got {type(path_or_program).__name__}")


def analyze(path_or_program: str | Path | Program | Any, precision: str | None = "auto") -> Analysis:
    """Weights, FLOPs and activation peak of a program (static; nothing runs)."""
    return analyze_program(as_program(path_or_program), precision)


def execute(path_or_program: str | Path | Program | Any, inputs: Mapping[str, np.ndarray],
            precision: str | None = "auto") -> dict[str, np.ndarray]:
    """Run a program once on CPU; outputs keyed by the model's output names.

    ``precision``: ``fp32`` (reference), ``fp16`` (every op's output rounded to fp16, as on the device) or
    ``auto`` (the program's own compute precision). Build an ``Executor`` to run one program many times.
    """
    from orchestrator.mil.executor import Executor

    return Executor(as_program(path_or_program), precision).run(inputs).outputs
