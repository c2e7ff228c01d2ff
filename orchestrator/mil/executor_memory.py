"""What mlfarm's own MIL executor holds beyond the device's model: the memory the host and virtual devices
really use, so their measured peaks can be predicted (``orchestrator.plan.memory``, runtime ``mil-executor``).

Two terms differ from Core ML's (device) accounting in ``analysis``:

Weights. The loaded ``Program`` keeps every constant as coremltools read it (fp16 arrays, palette indices
unpacked to one byte per element, int8 data, LUTs, scales), and the ``Executor`` holds its own fp32 copy of
every float weight its kernels read (fp16 constants and everything ``constexpr_*`` ops decompress). An fp32
constant is shared with the program (``torch.from_numpy``), so an fp32 program holds its weights once:

    executor weights = constants as loaded + 4 bytes x (float weights not already fp32)

An fp16 UNet thus holds 6 bytes per parameter (2 in the program, 4 in the executor), not 2.

Activations. In fp16 mode a kernel that does not take fp16 directly reads fp32 copies of its fp16 inputs and
makes an fp32 output that the executor then rounds to an fp16 copy: at that op, on top of the live tensors of
the static liveness pass, ``4 bytes x (fp16 float inputs + float outputs)`` are alive. Kernels that move data
or compute exactly in fp16 (``FP16_IN_PLACE``: reshapes, slices, exact arithmetic, the unary functions
torch runs natively in fp16, softmax) add nothing. fp32 runs hold what liveness counts.

``analysis.analyze_program`` reports both (``executor_weights_bytes``, ``executor_activation_peak_bytes``: the
liveness pass with ``temporaries`` added at each op).
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.mil.program import Op, Program, TensorType, held_dtype, is_exact_fp32

# Op types whose kernels take fp16 tensors as they are (``OpCall.raw``) and return fp16: the executor makes no
# fp32 copy for them. Kept in step with the kernels by tests/mil/test_executor_memory.py.
FP16_IN_PLACE = frozenset({
    # data movement and indexing
    "reshape", "transpose", "expand_dims", "squeeze", "concat", "stack", "split", "slice_by_index",
    "slice_by_size", "tile", "pad", "flatten2d", "reverse", "pixel_shuffle", "pixel_unshuffle", "gather",
    "gather_along_axis", "gather_nd", "select", "identity",
    # arithmetic torch computes exactly in fp16 (the fp32-then-round result, bit for bit)
    "add", "sub", "mul", "real_div", "maximum", "minimum", "equal", "not_equal", "less", "less_equal",
    "greater", "greater_equal", "logical_and", "logical_or", "logical_xor",
    # functions torch runs natively in fp16
    "relu", "sigmoid", "silu", "tanh", "sin", "cos", "square", "abs", "exp", "softmax",
})

FP32_BYTES = 4


def _elements(t: TensorType) -> int:
    return t.elements if t.is_static else 0


def temporaries(program: Program, precision: str) -> Callable[[Op], int]:
    """Bytes the executor holds at an op beyond its live tensors (fp16 runs only): an fp32 copy of each run-time
    input held in fp16, and the fp32 output of the kernel before it is rounded to the fp16 copy that is kept."""
    if precision != "fp16":
        return lambda op: 0
    weights = program.weight_names()
    held16 = {n for n in program.inputs if program.types[n].dtype == "fp16"}
    for op in program.ops:
        held16.update(o for o in op.outputs if o not in weights and program.types[o].is_float
                      and held_dtype(program.types[o].dtype, precision, exact=is_exact_fp32(op, program.types[o].dtype))
                      == "fp16")

    def at(op: Op) -> int:
        if op.type in FP16_IN_PLACE or op.is_constexpr:
            return 0
        copies = sum(_elements(program.types[n]) for n in op.input_names() if n in held16)
        outputs = sum(_elements(program.types[n]) for n in op.outputs if n in held16)
        return FP32_BYTES * (copies + outputs)

    return at


def executor_weight_bytes(program: Program) -> int:
    """Weights as the loaded program and the executor hold them together (see the module docstring)."""
    held_by_program = sum(_loaded_bytes(program.types[n]) for n in program.constants
                          if program.types[n].is_static and program.types[n].bits > 0)
    feeds_constexpr = {n for op in program.ops if op.is_constexpr for n in op.input_names()}
    copied = sum(_elements(program.types[n]) for n in program.constants
                 if n not in feeds_constexpr and _float_weight(program.types[n]) and program.types[n].dtype != "fp32")
    decompressed = sum(_elements(program.types[o]) for op in program.ops if op.is_constexpr for o in op.outputs
                       if program.types[o].is_float)
    return held_by_program + FP32_BYTES * (copied + decompressed)


def _loaded_bytes(t: TensorType) -> int:
    """coremltools unpacks sub-byte types (uint4, uint6 palette indices) to one byte per element."""
    return t.elements * max(t.bits, 8) // 8


def _float_weight(t: TensorType) -> bool:
    return t.is_float and len(t.shape) >= 1 and t.is_static
