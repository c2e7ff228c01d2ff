"""Static analysis of a MIL program: weight bytes, op histogram, FLOPs, and activation liveness. Pure and fast:
nothing is executed.

Liveness model (DESIGN.md section 3): walk the ops in program order; every run-time tensor (model inputs and op
outputs, not weights) is alive from the op that produces it (inputs: from the start) to its last consumer
(model outputs: to the end), at the precision the program runs at (``program.held_dtype``). The live bytes at
op *i* are the tensors alive at *i*, including *i*'s own outputs, plus any temporary a fused op materialises
(the scores of ``scaled_dot_product_attention``). The peak is the largest such sum; the analysis reports the op
where it happens and every tensor alive there. ``Executor`` tracks the same figure while it runs.

    a = analyze(program)
    a.activation_peak_bytes, a.peak_op, a.top_tensors(3)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import ArtifactError
from orchestrator.mil.executor_memory import executor_weight_bytes, temporaries
from orchestrator.mil.flops import op_flops, workspace_elements, workspace_shape
from orchestrator.mil.program import Op, Program, TensorType, held_dtype, is_exact_fp32, resolve_precision


@dataclass(frozen=True)
class LiveTensor:
    """A tensor alive at the activation peak."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str  # as held at the analysed precision
    bytes: int
    producer: str  # the op type that made it, "input", or "workspace" for a fused op's temporary

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "bytes": self.bytes,
                "producer": self.producer}


@dataclass(frozen=True)
class Analysis:
    """What a program costs: weights as stored and decompressed, FLOPs, and its activation peak."""

    source: str
    precision: str
    weights_bytes_stored: int  # constants as stored: palettes' packed indices + LUTs, int8 data + scales, ...
    weights_bytes_decompressed: int  # every weight after decompression, at its declared dtype (fp16 usually)
    flops: int  # multiply-adds x 2 of conv, conv_transpose, linear, matmul, einsum, attention
    flops_by_op_type: dict[str, int]
    activation_peak_bytes: int
    peak_op: str | None  # the op running at the peak (None: the inputs alone are the peak)
    peak_op_type: str | None
    alive_at_peak: tuple[LiveTensor, ...]  # largest first
    op_histogram: dict[str, int]
    # mlfarm's executor (host and virtual devices): its weight copies and its activation peak with the fp32
    # temporaries of fp16 kernels (orchestrator/mil/executor_memory.py)
    executor_weights_bytes: int = 0
    executor_activation_peak_bytes: int = 0

    def top_tensors(self, n: int = 5) -> tuple[LiveTensor, ...]:
        return self.alive_at_peak[:n]

    def to_dict(self, top: int = 5) -> dict[str, Any]:
        """The manifest's ``analysis`` section."""
        return {
            "precision": self.precision,
            "weights_bytes_stored": self.weights_bytes_stored,
            "weights_bytes_decompressed": self.weights_bytes_decompressed,
            "flops": self.flops,
            "flops_by_op_type": dict(self.flops_by_op_type),
            "activation_peak_bytes": self.activation_peak_bytes,
            "peak_op": self.peak_op,
            "peak_op_type": self.peak_op_type,
            "top_tensors": [t.to_dict() for t in self.top_tensors(top)],
            "op_histogram": dict(self.op_histogram),
            "executor_weights_bytes": self.executor_weights_bytes,
            "executor_activation_peak_bytes": self.executor_activation_peak_bytes,
        }


def analysis_from_dict(data: Mapping[str, Any], source: str) -> Analysis:
    """An ``Analysis`` back from a manifest's ``analysis`` section (only its top tensors at the peak were kept)."""
    return Analysis(
        source=source, precision=str(data["precision"]),
        weights_bytes_stored=int(data["weights_bytes_stored"]),
        weights_bytes_decompressed=int(data["weights_bytes_decompressed"]),
        flops=int(data["flops"]), flops_by_op_type=dict(data.get("flops_by_op_type", {})),
        activation_peak_bytes=int(data["activation_peak_bytes"]),
        peak_op=data.get("peak_op"), peak_op_type=data.get("peak_op_type"),
        alive_at_peak=tuple(LiveTensor(t["name"], tuple(t["shape"]), t["dtype"], int(t["bytes"]), t["producer"])
                            for t in data.get("top_tensors", [])),
        op_histogram=dict(data.get("op_histogram", {})),
    )


def analyze_program(program: Program, precision: str | None = "auto") -> Analysis:
    precision = resolve_precision(program, precision)
    stored, decompressed = weight_bytes(program)
    flops: Counter[str] = Counter()
    for op in program.ops:
        n = op_flops(op, program.types, program.constants)
        if n:
            flops[op.type] += n
    peak, peak_index, alive = liveness(program, precision)
    executor_peak, _, _ = liveness(program, precision, extra=temporaries(program, precision))
    run_ops = [op for op in program.ops if not op.is_constexpr]
    peak_op = run_ops[peak_index] if peak_index is not None else None
    return Analysis(
        source=program.source,
        precision=precision,
        weights_bytes_stored=stored,
        weights_bytes_decompressed=decompressed,
        flops=sum(flops.values()),
        flops_by_op_type=dict(flops.most_common()),
        activation_peak_bytes=peak,
        peak_op=peak_op.name if peak_op else None,
        peak_op_type=peak_op.type if peak_op else None,
        alive_at_peak=tuple(sorted(alive, key=lambda t: (-t.bytes, t.name))),
        op_histogram=dict(Counter(op.type for op in program.ops).most_common()),
        executor_weights_bytes=executor_weight_bytes(program),
        executor_activation_peak_bytes=executor_peak,
    )


def weight_bytes(program: Program) -> tuple[int, int]:
    """(stored, decompressed) bytes of the program's weights.

    Weights are the float constant tensors ops read, plus whatever ``constexpr_*`` ops decompress from (indices,
    LUTs, int8 data, scales); scalar and integer constants (axes, shapes, epsilons) are op attributes, not
    weights. Stored: those constants at their storage width (sub-byte indices packed). Decompressed: the
    tensors the ops finally consume: float constants read directly, and the outputs of the last
    ``constexpr_*`` op of each chain, at their declared dtype (fp16 in an fp16 program).
    """
    types = program.types
    feeds_constexpr = {n for op in program.ops if op.is_constexpr for n in op.input_names()}
    direct = [n for n in program.constants if n not in feeds_constexpr and _float_tensor(types[n])]
    stored = sum(types[n].nbytes for n in direct) + sum(
        types[n].nbytes for n in program.constants if n in feeds_constexpr and _numeric(types[n]))
    produced = [o for op in program.ops if op.is_constexpr for o in op.outputs if o not in feeds_constexpr]
    return stored, sum(types[n].nbytes for n in direct + produced)


def _numeric(t: TensorType) -> bool:
    return t.bits > 0 and t.is_static


def _float_tensor(t: TensorType) -> bool:
    return t.is_float and len(t.shape) >= 1 and t.is_static


def liveness(program: Program, precision: str, *, extra: Callable[[Op], int] | None = None,
             ) -> tuple[int, int | None, list[LiveTensor]]:
    """(peak bytes, index of the peak op among non-constexpr ops or None, tensors alive there). ``extra`` adds
    bytes a runtime holds at an op beyond its live tensors (the executor's fp32 temporaries)."""
    weights = program.weight_names()
    ops = [op for op in program.ops if not op.is_constexpr]
    end_of_program = len(ops)
    spans: dict[str, tuple[int, int, str, str]] = {}  # name -> (start, end, held dtype, producer)
    for name in program.inputs:
        spans[name] = (-1, -1, held_dtype(program.types[name].dtype, precision, exact=True), "input")
    for i, op in enumerate(ops):
        for name in op.input_names():
            if name in spans:
                start, _, dtype, producer = spans[name]
                spans[name] = (start, i, dtype, producer)
        for name in op.outputs:
            declared = program.types[name].dtype
            spans[name] = (i, i, held_dtype(declared, precision, exact=is_exact_fp32(op, declared)), op.type)
    for name in program.outputs:
        if name in spans and name not in weights:
            start, _, dtype, producer = spans[name]
            spans[name] = (start, end_of_program, dtype, producer)
    dynamic = [name for name in spans if not program.types[name].is_static]
    if dynamic:
        raise ArtifactError(f"{program.source}: tensor '{dynamic[0]}' is {program.types[dynamic[0]]}: activation "
                            "liveness needs fixed shapes", path=program.source,
                            fix="convert with fixed input shapes (ct.TensorType(shape=...) without RangeDim)")
    sizes = {name: _held_bytes(program.types[name], dtype) for name, (_, _, dtype, _) in spans.items()}
    delta = [0] * (end_of_program + 3)  # index k+1 holds step k, for k = -1 .. end_of_program
    for name, (start, end, _, _) in spans.items():
        delta[start + 1] += sizes[name]
        delta[end + 2] -= sizes[name]
    work = [_workspace_bytes(op, program, precision) + (extra(op) if extra else 0) for op in ops]
    live, best, best_step = 0, -1, -1
    for step in range(-1, end_of_program):
        live += delta[step + 1]
        total = live + (work[step] if step >= 0 else 0)
        if total > best:
            best, best_step = total, step
    alive = [LiveTensor(n, program.types[n].shape, dtype, sizes[n], producer)
             for n, (start, end, dtype, producer) in spans.items() if start <= best_step <= end]
    if best_step >= 0 and work[best_step]:
        op = ops[best_step]
        alive.append(LiveTensor(f"{op.name}:scores", workspace_shape(op, program.types) or (),
                                _work_dtype(op, program, precision), work[best_step], "workspace"))
    return max(best, 0), (best_step if best_step >= 0 else None), alive


def _held_bytes(t: TensorType, dtype: str) -> int:
    return TensorType(t.shape, dtype).nbytes


def _work_dtype(op: Op, program: Program, precision: str) -> str:
    return held_dtype(program.types[op.outputs[0]].dtype, precision)


def _workspace_bytes(op: Op, program: Program, precision: str) -> int:
    elements = workspace_elements(op, program.types)
    if not elements:
        return 0
    return elements * (2 if _work_dtype(op, program, precision) == "fp16" else 4)
