"""A reference executor for MIL programs on CPU (torch kernels), with its own accounting of live memory.

Lifecycle: ``Executor(program, precision)`` checks every op has a kernel (else ``UnsupportedOpError`` naming
the op and the artifact), converts constants and decompresses ``constexpr_*`` weights once, and plans which
tensors each op frees. ``run(inputs)`` can then be called any number of times; each run walks the ops in
program order, frees every tensor right after its last consumer (a plan made here from the op list, not from
``analysis``), and tracks the bytes of live intermediates as it goes, so its peak checks the static liveness
figure of ``orchestrator.mil.analysis`` against what actually happened (every tensor counts numel x element
size of what is held; a view made by reshape/transpose/slice counts as its own tensor, as in the static model).
One run at a time per ``Executor``
(its per-op call objects are reused); build one per thread to run in parallel.

Precision: ``fp32`` computes and holds everything in fp32 (the reference). ``fp16`` emulates the device: kernels
compute in fp32 and every op's float output is rounded to fp16 and held as fp16 (see ``program.held_dtype``),
so rounding accumulates op by op as on Core ML's fp16 compute units. Data movement, + - * /, and the kernels in
``elementwise.NATIVE_FP16`` take fp16 inputs directly, where torch's result is bit for bit the fp32-then-round
one. ``auto`` uses the program's own precision.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from orchestrator.errors import ArtifactError, UnsupportedOpError
from orchestrator.mil.kernels import KERNELS, KernelRegistry, OpCall
from orchestrator.mil.kernels.index import IndexOutOfRange
from orchestrator.mil.kernels.registry import Kernel, as_tensor
from orchestrator.mil.program import (
    NUMPY_DTYPES,
    Op,
    Program,
    held_dtype,
    is_exact_fp32,
    resolve_precision,
)

_TORCH_DTYPES: dict[str, torch.dtype] = {
    "fp16": torch.float16, "fp32": torch.float32, "fp64": torch.float32, "bool": torch.bool,
    "int8": torch.int8, "uint8": torch.uint8, "int16": torch.int16, "int32": torch.int32, "int64": torch.int64,
    "uint16": torch.int32, "uint32": torch.int64,
}


@dataclass(frozen=True)
class Execution:
    """One run's outputs (keyed by the model's output names) and its live-memory accounting."""

    outputs: dict[str, np.ndarray]
    precision: str
    peak_live_bytes: int  # largest sum of live intermediate tensors (inputs, op outputs, op workspaces)
    peak_op: str | None  # name of the op running at the peak; None when the inputs alone are the peak
    seconds: float
    seconds_by_op_type: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Step:
    op: Op
    kernel: Kernel
    call: OpCall  # kept for every run: it memoises the op's constant arguments
    held: tuple[torch.dtype, ...]
    shapes: tuple[tuple[int, ...] | None, ...]  # declared output shapes (None: dynamic), checked after each run
    frees: tuple[str, ...]  # run-time tensors whose last consumer is this op (or that nobody consumes)
    float_width: int  # bytes per element of a float temporary (workspace) at this op


class Executor:
    """Runs one ``Program``; see the module docstring for its lifecycle and precision modes."""

    def __init__(self, program: Program, precision: str | None = "auto", *,
                 registry: KernelRegistry = KERNELS) -> None:
        self.program = program
        if not program.weights_loaded:
            raise ValueError(f"{program.source} was read for static analysis only; load it with mil.load to run it")
        self.precision = resolve_precision(program, precision)
        missing = registry.missing(program.op_types())
        if missing:
            raise UnsupportedOpError(missing[0], artifact=program.source, fix=_missing_fix(missing))
        self._weights = self._prepare_weights(registry)
        self._steps, self._consumed = self._plan(registry)

    # -- preparation -----------------------------------------------------------------------------------

    def _prepare_weights(self, registry: KernelRegistry) -> dict[str, Any]:
        weights: dict[str, Any] = {}
        for name, value in self.program.constants.items():
            is_tensor = isinstance(value, np.ndarray | np.generic) and np.asarray(value).dtype.kind in "biuf"
            weights[name] = as_tensor(value) if is_tensor else value
        for op in self.program.ops:
            if op.is_constexpr:
                out_types = tuple(self.program.types[o] for o in op.outputs)
                kernel = registry.get(op.type)
                assert kernel is not None
                result = kernel(OpCall(op, out_types, weights))
                for name, value, declared in zip(op.outputs, _as_tuple(result), out_types, strict=True):
                    tensor = as_tensor(value)
                    if declared.dtype == "fp16":  # the device decompresses to fp16: round like it does
                        tensor = tensor.half().float()
                    weights[name] = tensor
        return weights

    def _plan(self, registry: KernelRegistry) -> tuple[list[_Step], set[str]]:
        """One step per run-time op, and the set of tensors anything reads (inputs outside it are dropped)."""
        ops = [op for op in self.program.ops if not op.is_constexpr]
        last_use: dict[str, int] = {}
        for i, op in enumerate(ops):
            for name in op.input_names():
                if name not in self._weights:
                    last_use[name] = i
        keep = set(self.program.outputs)
        frees: list[list[str]] = [[] for _ in ops]
        for name, i in last_use.items():
            if name not in keep:
                frees[i].append(name)
        steps = []
        for i, op in enumerate(ops):
            unused = [o for o in op.outputs if o not in last_use and o not in keep]
            out_types = tuple(self.program.types[o] for o in op.outputs)
            held = tuple(_TORCH_DTYPES.get(held_dtype(t.dtype, self.precision, exact=is_exact_fp32(op, t.dtype)),
                                           torch.float32) for t in out_types)
            kernel = registry.get(op.type)
            assert kernel is not None
            shapes = tuple(t.shape if t.is_static else None for t in out_types)
            steps.append(_Step(op, kernel, OpCall(op, out_types, self._weights), held, shapes,  # type: ignore[arg-type]
                               tuple(frees[i] + unused), 2 if held and held[0] == torch.float16 else 4))
        return steps, {n for op in ops for n in op.input_names()} | keep

    def prepared_weight(self, name: str) -> np.ndarray:
        """A constant or decompressed weight as the executor holds it (fp32 values), for inspection."""
        value = self._weights[name]
        return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)

    # -- running ---------------------------------------------------------------------------------------

    def run(self, inputs: Mapping[str, Any], *, profile: bool = False,
            on_op: Callable[[int, int], None] | None = None) -> Execution:
        """Execute once; ``inputs`` maps every model input name to an array of its declared shape.
        ``on_op(done, total)`` is called after each op (progress of a long run)."""
        env: dict[str, Any] = dict(self._weights)
        live = 0
        for name, tensor in self._bind_inputs(inputs).items():
            env[name] = tensor
            live += _nbytes(tensor)
        peak, peak_op = live, None
        for name in self.program.inputs:  # inputs nobody reads are dropped at once
            if name not in self._consumed:
                live -= _nbytes(env.pop(name))
        by_type: dict[str, float] = {}
        start = time.perf_counter()
        with torch.inference_mode():
            for index, step in enumerate(self._steps, 1):
                t0 = time.perf_counter() if profile else 0.0
                call = step.call.bind(env)
                outs = self._call(step, call)
                added = 0
                for name, tensor in zip(step.op.outputs, outs, strict=True):
                    env[name] = tensor
                    added += _nbytes(tensor)
                workspace = call.workspace_elements * step.float_width
                if live + added + workspace > peak:
                    peak, peak_op = live + added + workspace, step.op.name
                live += added
                for name in step.frees:
                    live -= _nbytes(env.pop(name))
                if profile:
                    by_type[step.op.type] = by_type.get(step.op.type, 0.0) + time.perf_counter() - t0
                if on_op is not None:
                    on_op(index, len(self._steps))
        seconds = time.perf_counter() - start
        return Execution(self._collect(env), self.precision, peak, peak_op, seconds, by_type)

    def _call(self, step: _Step, call: OpCall) -> list[torch.Tensor]:
        op = step.op
        try:
            result = step.kernel(call)
        except UnsupportedOpError as exc:  # a kernel that handles only some forms of its op
            raise UnsupportedOpError(exc.op_type, artifact=self.program.source) from exc
        except IndexOutOfRange as exc:
            raise ArtifactError(f"{self.program.source}: op '{op.name}' ({op.type}): {exc}", path=self.program.source,
                                fix="integer inputs that index a table (token ids, positions) must be within it; "
                                    "check the input values") from exc
        except Exception as exc:
            raise RuntimeError(f"{self.program.source}: kernel for '{op.type}' failed on op '{op.name}': "
                               f"{type(exc).__name__}: {exc}") from exc
        outs = []
        for tensor, held, shape in zip(_as_tuple(result), step.held, step.shapes, strict=True):
            t = tensor if isinstance(tensor, torch.Tensor) else as_tensor(tensor)
            if t.dtype != held:
                t = t.to(held)
            if shape is not None and t.shape != shape:
                raise RuntimeError(f"{self.program.source}: kernel for '{op.type}' made shape {tuple(t.shape)} "
                                   f"on op '{op.name}', the program declares {shape}")
            outs.append(t)
        return outs

    def _bind_inputs(self, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        program = self.program
        unknown = sorted(set(inputs) - set(program.inputs))
        missing = [n for n in program.inputs if n not in inputs]
        if unknown or missing:
            want = ", ".join(f"{n}: {program.types[n]}" for n in program.inputs)
            raise ArtifactError(f"{program.source}: inputs do not match the model (missing: {missing or '-'}, "
                                f"unknown: {unknown or '-'})", path=program.source, fix=f"pass exactly: {want}")
        bound = {}
        for name in program.inputs:
            declared = program.types[name]
            array = np.asarray(inputs[name])
            if declared.is_static and tuple(array.shape) != declared.shape:
                raise ArtifactError(f"{program.source}: input '{name}' has shape {tuple(array.shape)}, the model "
                                    f"takes {declared}", path=program.source, fix=f"pass '{name}' as {declared}")
            dtype = held_dtype(declared.dtype, self.precision, exact=True)
            bound[name] = torch.from_numpy(np.ascontiguousarray(array.astype(NUMPY_DTYPES.get(dtype, array.dtype))))
        return bound

    def _collect(self, env: dict[str, Any]) -> dict[str, np.ndarray]:
        out = {}
        for name in self.program.outputs:
            value = env[name]
            array = value.detach().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            declared = self.program.types[name].dtype
            want = "float32" if self.precision == "fp32" and array.dtype.kind == "f" else NUMPY_DTYPES.get(declared)
            out[name] = array.astype(want) if want and array.dtype != np.dtype(want) else array.copy()
        return out


def _as_tuple(result: Any) -> tuple[Any, ...]:
    return (result,) if isinstance(result, torch.Tensor | np.ndarray) else tuple(result)


def _nbytes(t: Any) -> int:
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


def _missing_fix(missing: list[str]) -> str:
    listed = ", ".join(missing)
    return (f"ops without a kernel: {listed}. Add kernels in orchestrator/mil/kernels "
            "(README 'Where to add things'), or convert the model so it avoids these ops")
