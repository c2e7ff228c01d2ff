"""Element-wise kernels: binary arithmetic and comparisons (numpy broadcasting), unary math, activations, cast.

Semantics follow coremltools' op definitions (``mil/ops/defs/iOS15/elementwise_*.py``, ``activation.py``):
``inverse``, ``log`` and ``rsqrt`` add their ``epsilon`` before the function; ``gelu`` has three modes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from orchestrator.mil.kernels.registry import KERNELS, OpCall

Binary = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Unary = Callable[[torch.Tensor], torch.Tensor]

_BINARY: dict[str, Binary] = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "real_div": torch.true_divide,
    "floor_div": lambda x, y: torch.div(x, y, rounding_mode="floor"),
    "mod": torch.remainder,
    "pow": torch.pow,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "equal": torch.eq,
    "not_equal": torch.ne,
    "less": torch.lt,
    "less_equal": torch.le,
    "greater": torch.gt,
    "greater_equal": torch.ge,
    "logical_and": torch.logical_and,
    "logical_or": torch.logical_or,
    "logical_xor": torch.logical_xor,
}

_UNARY: dict[str, Unary] = {
    "abs": torch.abs, "acos": torch.acos, "asin": torch.asin, "atan": torch.atan, "atanh": torch.atanh,
    "ceil": torch.ceil, "cos": torch.cos, "cosh": torch.cosh, "erf": torch.erf, "exp": torch.exp,
    "exp2": torch.exp2, "floor": torch.floor, "logical_not": torch.logical_not, "round": torch.round,
    "sign": torch.sign, "sin": torch.sin, "sinh": torch.sinh, "sqrt": torch.sqrt, "square": torch.square,
    "tan": torch.tan, "tanh": torch.tanh, "relu": torch.relu, "relu6": lambda x: torch.clamp(x, 0.0, 6.0),
    "sigmoid": torch.sigmoid, "silu": F.silu, "softplus": F.softplus, "softsign": F.softsign,
    "identity": lambda x: x,
}


def _binary(fn: Binary) -> Callable[[OpCall], torch.Tensor]:
    def kernel(c: OpCall) -> torch.Tensor:
        return fn(c.tensor("x"), c.tensor("y"))

    return kernel


def _binary_raw(fn: Binary) -> Callable[[OpCall], torch.Tensor]:
    # +, -, *, / and comparisons of two fp16 values: torch rounds the exact result once, which is what
    # computing in fp32 and rounding gives (fp32 has more than 2 x 11 + 2 significand bits), minus two copies.
    def kernel(c: OpCall) -> torch.Tensor:
        return fn(c.raw("x"), c.raw("y"))

    return kernel


def _unary(fn: Unary) -> Callable[[OpCall], torch.Tensor]:
    def kernel(c: OpCall) -> torch.Tensor:
        return fn(c.tensor("x"))

    return kernel


def _unary_raw(fn: Unary) -> Callable[[OpCall], torch.Tensor]:
    def kernel(c: OpCall) -> torch.Tensor:
        return fn(c.raw("x"))

    return kernel


# Ops whose torch CPU fp16 kernel computes in fp32 and rounds once, giving bit for bit the fp32-then-round result
# without two conversions (tests/mil/test_kernels_elementwise.py checks this on the running torch).
NATIVE_FP16 = frozenset({"relu", "sigmoid", "silu", "tanh", "sin", "cos", "square", "abs", "exp", "softmax"})


_EXACT_IN_FP16 = {"add", "sub", "mul", "real_div", "maximum", "minimum", "equal", "not_equal", "less",
                  "less_equal", "greater", "greater_equal", "logical_and", "logical_or", "logical_xor"}
for _name, _binary_fn in _BINARY.items():
    KERNELS.register(_name)((_binary_raw if _name in _EXACT_IN_FP16 else _binary)(_binary_fn))
for _name, _unary_fn in _UNARY.items():
    KERNELS.register(_name)((_unary_raw if _name in NATIVE_FP16 else _unary)(_unary_fn))


@KERNELS.register("inverse")
def inverse(c: OpCall) -> torch.Tensor:
    return torch.reciprocal(c.tensor("x") + c.float("epsilon", 1e-4))


@KERNELS.register("log")
def log(c: OpCall) -> torch.Tensor:
    return torch.log(c.tensor("x") + c.float("epsilon", 1e-45))


@KERNELS.register("rsqrt")
def rsqrt(c: OpCall) -> torch.Tensor:
    return torch.rsqrt(c.tensor("x") + c.float("epsilon", 1e-12))


@KERNELS.register("clip")
def clip(c: OpCall) -> torch.Tensor:
    return torch.clamp(c.tensor("x"), c.float("alpha"), c.float("beta"))


@KERNELS.register("threshold")
def threshold(c: OpCall) -> torch.Tensor:
    return torch.clamp(c.tensor("x"), min=c.float("alpha"))


@KERNELS.register("select")
def select(c: OpCall) -> torch.Tensor:
    return torch.where(c.tensor("cond").bool(), c.raw("a"), c.raw("b"))


@KERNELS.register("gelu")
def gelu(c: OpCall) -> torch.Tensor:
    x = c.tensor("x")
    mode = c.str("mode", "EXACT")
    if mode == "EXACT":
        return F.gelu(x)
    if mode == "TANH_APPROXIMATION":
        return F.gelu(x, approximate="tanh")
    if mode == "SIGMOID_APPROXIMATION":
        return x * torch.sigmoid(1.702 * x)
    raise ValueError(f"gelu: unknown mode {mode!r}")


@KERNELS.register("softmax")
def softmax(c: OpCall) -> torch.Tensor:
    return torch.softmax(c.raw("x"), dim=c.int("axis", -1))


@KERNELS.register("elu")
def elu(c: OpCall) -> torch.Tensor:
    return F.elu(c.tensor("x"), alpha=c.float("alpha", 1.0))


@KERNELS.register("leaky_relu")
def leaky_relu(c: OpCall) -> torch.Tensor:
    return F.leaky_relu(c.tensor("x"), negative_slope=c.float("alpha", 0.01))


@KERNELS.register("prelu")
def prelu(c: OpCall) -> torch.Tensor:
    x = c.tensor("x")  # alpha is per channel (axis -3 in MIL's [B, C, H, W] layout)
    alpha = c.tensor("alpha").reshape([-1] + [1] * (x.dim() - 2))
    return torch.where(x >= 0, x, x * alpha)


@KERNELS.register("linear_activation")
def linear_activation(c: OpCall) -> torch.Tensor:
    return c.tensor("x") * c.float("alpha") + c.float("beta", 0.0)


@KERNELS.register("scaled_tanh")
def scaled_tanh(c: OpCall) -> torch.Tensor:
    return c.float("alpha", 1.0) * torch.tanh(c.tensor("x") * c.float("beta", 1.0))


@KERNELS.register("sigmoid_hard")
def sigmoid_hard(c: OpCall) -> torch.Tensor:
    return torch.clamp(c.tensor("x") * c.float("alpha", 0.2) + c.float("beta", 0.5), 0.0, 1.0)


@KERNELS.register("clamped_relu")
def clamped_relu(c: OpCall) -> torch.Tensor:
    x = c.tensor("x")
    return torch.clamp(torch.where(x >= 0, x, x * c.float("alpha", 0.0)), max=c.float("beta", 6.0))


@KERNELS.register("thresholded_relu")
def thresholded_relu(c: OpCall) -> torch.Tensor:
    x = c.tensor("x")
    return torch.where(x >= c.float("alpha", 1.0), x, torch.zeros_like(x))


_CAST_TARGETS: dict[str, torch.dtype] = {
    "fp16": torch.float32, "fp32": torch.float32, "fp64": torch.float32,  # the executor rounds to its precision
    "int8": torch.int8, "uint8": torch.uint8, "int16": torch.int16, "int32": torch.int32, "int64": torch.int64,
    "uint16": torch.int32, "uint32": torch.int64,  # torch lacks unsigned arithmetic: held widened
    "bool": torch.bool,
}


@KERNELS.register("cast")
def cast(c: OpCall) -> torch.Tensor:
    x = c.tensor("x")
    target = c.str("dtype")
    if target not in _CAST_TARGETS:
        raise ValueError(f"cast: unsupported dtype {target!r}")
    if target == "bool":
        return x != 0
    if x.is_floating_point() and _CAST_TARGETS[target] not in (torch.float32,):
        x = torch.trunc(x)  # float -> int truncates toward zero, like numpy's astype
    return x.to(_CAST_TARGETS[target])

