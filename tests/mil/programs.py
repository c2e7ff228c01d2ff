"""Small MIL programs for kernel tests, built in memory with coremltools' Builder (no conversion, no files)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from orchestrator.mil import Executor, Program, from_mil


def build(fn: Callable[..., Any], shapes: Mapping[str, tuple[int, ...]], *, opset: str = "iOS17",
          dtype: str = "fp32") -> Program:
    """A program whose inputs are ``shapes`` (name -> shape) and whose body is ``fn(**inputs)``."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import Function, types
    from coremltools.converters.mil.mil import Program as MilProgram

    mil_dtype = {"fp32": types.fp32, "fp16": types.fp16, "int32": types.int32}[dtype]
    placeholders = {name: mb.placeholder(shape=shape, dtype=mil_dtype) for name, shape in shapes.items()}
    program = MilProgram()
    with Function(placeholders, opset_version=getattr(ct.target, opset)) as func:
        out = fn(**func.inputs)
        func.set_outputs(list(out) if isinstance(out, list | tuple) else [out])
    program.add_function("main", func)
    return from_mil(program)


def run(program: Program, inputs: Mapping[str, np.ndarray], precision: str = "fp32") -> list[np.ndarray]:
    out = Executor(program, precision).run(inputs).outputs
    return [out[name] for name in program.outputs]


def run1(fn: Callable[..., Any], **arrays: np.ndarray) -> np.ndarray:
    """Build a one-output fp32 program over ``arrays`` and run it."""
    program = build(fn, {k: v.shape for k, v in arrays.items()})
    return run(program, arrays)[0]


def rand(*shape: int, seed: int = 0, low: float = -2.0, high: float = 2.0) -> np.ndarray:
    return np.random.default_rng(seed + sum(shape)).uniform(low, high, size=shape).astype(np.float32)


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a))


def close(a: np.ndarray, b: np.ndarray | torch.Tensor, tol: float = 1e-5) -> None:
    expected = b.numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert a.shape == expected.shape, (a.shape, expected.shape)
    np.testing.assert_allclose(a, expected, rtol=tol, atol=tol)
