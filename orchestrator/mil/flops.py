"""FLOPs of the ops that dominate compute (2 per multiply-add), and the temporaries fused ops materialise.

    conv             2 * out elements * (C_in / groups) * prod(kernel)
    conv_transpose   2 * in elements * (C_out / groups) * prod(kernel)
    linear           2 * out elements * in features
    matmul           2 * out elements * contracted size
    einsum           2 * product of the sizes of every index letter
    scaled_dot_product_attention   2 * B * L * S * (E + EV)

Everything else (element-wise, norms, reductions) is memory-bound and not counted. Ops with a dynamic shape
count 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from math import prod

from orchestrator.mil.program import Op, TensorType

Types = Mapping[str, TensorType]


def _shape(types: Types, op: Op, key: str) -> tuple[int, ...] | None:
    arg = op.inputs.get(key)
    if not isinstance(arg, str):
        return None
    t = types[arg]
    return t.shape if t.is_static else None  # type: ignore[return-value]


def _out(types: Types, op: Op) -> tuple[int, ...] | None:
    t = types[op.outputs[0]]
    return t.shape if t.is_static else None  # type: ignore[return-value]


def _conv(op: Op, types: Types) -> int:
    w, out = _shape(types, op, "weight"), _out(types, op)
    if w is None or out is None:
        return 0
    return 2 * prod(out) * w[1] * prod(w[2:])


def _conv_transpose(op: Op, types: Types) -> int:
    x, w = _shape(types, op, "x"), _shape(types, op, "weight")
    if x is None or w is None:
        return 0
    return 2 * prod(x) * w[1] * prod(w[2:])


def _linear(op: Op, types: Types) -> int:
    w, out = _shape(types, op, "weight"), _out(types, op)
    if w is None or out is None:
        return 0
    return 2 * prod(out) * w[-1]


def _einsum(op: Op, types: Types, equation: str | None) -> int:
    values = op.inputs.get("values")
    if equation is None or not isinstance(values, tuple):
        return 0
    lhs = equation.replace(" ", "").split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for letters, name in zip(lhs, values, strict=False):
        t = types[name]
        if not t.is_static or "." in letters:
            return 0
        for letter, dim in zip(letters, t.shape, strict=False):
            sizes[letter] = int(dim or 0)
    return 2 * prod(sizes.values())


def _sdpa(op: Op, types: Types) -> int:
    q, k, v = (_shape(types, op, key) for key in ("query", "key", "value"))
    if q is None or k is None or v is None:
        return 0
    batch = prod(_broadcast(q[:-2], k[:-2]))
    return 2 * batch * q[-2] * k[-2] * (q[-1] + v[-1])


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    return tuple(max(x, y) for x, y in zip(a, b, strict=True))


_SIMPLE: dict[str, Callable[[Op, Types], int]] = {
    "conv": _conv, "conv_transpose": _conv_transpose, "linear": _linear, "scaled_dot_product_attention": _sdpa,
}


def op_flops(op: Op, types: Types, constants: Mapping[str, object] | None = None) -> int:
    """FLOPs of one op; ``constants`` resolves flags such as matmul's ``transpose_x`` and einsum's equation."""
    if op.type in _SIMPLE:
        return _SIMPLE[op.type](op, types)
    consts = constants or {}
    if op.type == "matmul":
        x, out = _shape(types, op, "x"), _out(types, op)
        if x is None or out is None:
            return 0
        flag = op.inputs.get("transpose_x")
        transposed = bool(consts.get(flag, False)) if isinstance(flag, str) else bool(op.defaults.get("transpose_x"))
        k = x[-1] if len(x) == 1 or not transposed else x[-2]
        return 2 * prod(out) * k
    if op.type == "einsum":
        eq = op.inputs.get("equation")
        equation = consts.get(eq) if isinstance(eq, str) else None
        return _einsum(op, types, str(equation) if equation is not None else None)
    return 0


def workspace_shape(op: Op, types: Types) -> tuple[int, ...] | None:
    """Shape of the temporary a fused op materialises (the [.., L, S] attention scores), else None."""
    if op.type != "scaled_dot_product_attention":
        return None
    q, k = _shape(types, op, "query"), _shape(types, op, "key")
    if q is None or k is None:
        return None
    return (*_broadcast(q[:-2], k[:-2]), q[-2], k[-2])


def workspace_elements(op: Op, types: Types) -> int:
    """Elements of ``workspace_shape`` (0 when the op materialises none)."""
    shape = workspace_shape(op, types)
    return 0 if shape is None else prod(shape)
