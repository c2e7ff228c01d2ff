"""Seeded inputs for any program, from its declared input types alone (``mlfarm run-artifact --inputs seed:N``).

Input k gets seed ``N + k`` through ``orchestrator.harness.inputs.make_input``, as jobs do. An integer input that
indexes a table (token ids into an embedding) draws below the table's size, found by following the input
through casts and reshapes to a ``gather``; other integer inputs draw below ``make_input``'s default.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from orchestrator.errors import ArtifactError
from orchestrator.harness.inputs import DEFAULT_INT_HIGH, make_input
from orchestrator.mil.program import Op, Program

_NUMPY_INPUT = {"fp32": "float32", "fp16": "float16", "int32": "int32"}
_PASS_THROUGH = {"cast", "reshape", "expand_dims", "squeeze", "transpose", "slice_by_index", "slice_by_size"}


def seeded_inputs(program: Program, seed: int) -> dict[str, np.ndarray]:
    consumers: dict[str, list[Op]] = defaultdict(list)
    for op in program.ops:
        for name in op.input_names():
            consumers[name].append(op)
    out = {}
    for k, name in enumerate(program.inputs):
        t = program.types[name]
        if not t.is_static or t.dtype not in _NUMPY_INPUT:
            raise ArtifactError(f"{program.source}: input '{name}' is {t}; seeded inputs need a fixed shape and "
                                f"one of {', '.join(_NUMPY_INPUT)}", path=program.source,
                                fix="pass inputs from a file instead (--inputs FILE.npz)")
        dtype = _NUMPY_INPUT[t.dtype]
        high = index_bound(program, name, consumers) if dtype == "int32" else None
        out[name] = make_input(tuple(int(d) for d in t.shape if d is not None), dtype, seed + k, high)
    return out


def index_bound(program: Program, name: str, consumers: dict[str, list[Op]], depth: int = 4) -> int:
    """The size of the table ``name`` indexes through a ``gather`` (following simple ops), else the default."""
    frontier = [name]
    for _ in range(depth):
        following: list[str] = []
        for tensor in frontier:
            for op in consumers.get(tensor, []):
                if op.type in ("gather", "gather_along_axis") and op.inputs.get("indices") == tensor:
                    return _axis_size(program, op)
                if op.type in _PASS_THROUGH:
                    following.extend(op.outputs)
        frontier = following
    return DEFAULT_INT_HIGH


def _axis_size(program: Program, op: Op) -> int:
    table = program.types[str(op.inputs["x"])]
    axis_name = op.inputs.get("axis")
    axis = int(np.asarray(program.constants[axis_name])) if isinstance(axis_name, str) else 0
    size = table.shape[axis]
    return int(size) if size else DEFAULT_INT_HIGH
