"""The op registry: MIL op type -> kernel, and ``OpCall``, what a kernel sees of the op it runs.

A kernel is a plain function ``kernel(call: OpCall) -> tensor | tuple of tensors`` (torch tensors, or numpy
arrays for compile-time decompression). Kernels compute floats in fp32; the executor rounds each output to
the precision it runs at, so one kernel serves both the fp32 reference and the fp16 device emulation.

    @KERNELS.register("softmax")
    def softmax(c: OpCall) -> torch.Tensor:
        return torch.softmax(c.tensor("x"), dim=c.int("axis"))

Registering a type twice is refused, so two modules cannot silently disagree about one op.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from orchestrator.mil.program import Op, TensorType

KernelResult = torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray]
Kernel = Callable[["OpCall"], KernelResult]

_FLOAT_TORCH = (torch.float16, torch.float32, torch.float64, torch.bfloat16)


class KernelRegistry:
    """Op type -> kernel. One global instance, ``KERNELS``, filled when ``orchestrator.mil.kernels`` imports."""

    def __init__(self) -> None:
        self._kernels: dict[str, Kernel] = {}

    def register(self, *op_types: str) -> Callable[[Kernel], Kernel]:
        def add(fn: Kernel) -> Kernel:
            for op_type in op_types:
                if op_type in self._kernels:
                    raise ValueError(f"MIL op '{op_type}' already has a kernel ({self._kernels[op_type].__name__})")
                self._kernels[op_type] = fn
            return fn

        return add

    def get(self, op_type: str) -> Kernel | None:
        return self._kernels.get(op_type)

    def __contains__(self, op_type: object) -> bool:
        return op_type in self._kernels

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._kernels))

    def missing(self, op_types: Iterator[str] | frozenset[str] | set[str]) -> list[str]:
        """The given op types that have no kernel, sorted."""
        return sorted(t for t in set(op_types) if t not in self._kernels)


KERNELS = KernelRegistry()


class OpCall:
    """One op's inputs while it runs, plus its declared output types.

    ``raw()`` gives an input tensor as the executor holds it (fp16 in fp16 runs: right for data movement and for
    +, -, *, / whose fp16 result is the rounded fp32 result anyway); ``tensor()`` gives floats as fp32, the
    compute precision of every other kernel. ``value()`` and the typed helpers give constants (axes, pad types,
    flags), falling back to the defaults coremltools assumes for omitted optional inputs; constant lookups are
    memoised, since the executor keeps one ``OpCall`` per op for all runs (``bind`` points it at a run's
    tensors). ``add_workspace()`` lets a fused kernel declare a float temporary it materialises (attention
    scores inside ``scaled_dot_product_attention``), in elements: the executor counts it toward live memory at
    the precision it runs at, as the static analysis does.
    """

    __slots__ = ("_constants", "_env", "_memo", "op", "out_types", "workspace_elements")

    def __init__(self, op: Op, out_types: Sequence[TensorType], constants: Mapping[str, Any]) -> None:
        self.op = op
        self.out_types = tuple(out_types)
        self._constants = constants
        self._env: Mapping[str, Any] = constants
        self._memo: dict[tuple[str, Any], Any] = {}
        self.workspace_elements = 0

    def bind(self, env: Mapping[str, Any]) -> OpCall:
        """Point this call at one run's tensors (name -> value) and clear its workspace count."""
        self._env = env
        self.workspace_elements = 0
        return self

    def has(self, key: str) -> bool:
        if key in self.op.inputs:
            return True
        return self.op.defaults.get(key) is not None

    def raw(self, key: str) -> torch.Tensor:
        arg = self.op.inputs.get(key)
        if isinstance(arg, str):
            value = self._env[arg]
            return value if isinstance(value, torch.Tensor) else as_tensor(value)
        if arg is None and self.op.defaults.get(key) is not None:
            return as_tensor(self.op.defaults[key])
        raise KeyError(f"op {self.op.name} ({self.op.type}) has no tensor input '{key}'")

    def tensor(self, key: str) -> torch.Tensor:
        t = self.raw(key)
        return t.float() if t.dtype in _FLOAT_TORCH and t.dtype != torch.float32 else t

    def raws(self, key: str) -> list[torch.Tensor]:
        arg = self.op.inputs[key]
        names = (arg,) if isinstance(arg, str) else arg
        return [v if isinstance(v := self._env[n], torch.Tensor) else as_tensor(v) for n in names]

    def tensors(self, key: str) -> list[torch.Tensor]:
        return [t.float() if t.dtype in _FLOAT_TORCH and t.dtype != torch.float32 else t for t in self.raws(key)]

    def value(self, key: str, default: Any = None) -> Any:
        """A constant input as numpy/python (a run-time tensor is converted), or the op's default."""
        return self._typed(key, _identity, default)

    def _typed(self, key: str, convert: Callable[[Any], Any], default: Any) -> Any:
        memo_key = (key, convert)
        if memo_key in self._memo:
            return self._memo[memo_key]
        arg = self.op.inputs.get(key)
        if arg is None:
            found = self.op.defaults.get(key)
            result = default if found is None else convert(found)
            self._memo[memo_key] = result
            return result
        names = (arg,) if isinstance(arg, str) else arg
        values = [to_numpy(self._env[n]) for n in names]
        result = convert(values[0] if isinstance(arg, str) else values)
        if all(n in self._constants for n in names):
            self._memo[memo_key] = result
        return result

    def _required(self, key: str, convert: Callable[[Any], Any], default: Any) -> Any:
        result = self._typed(key, convert, None)
        if result is None:
            if default is None:
                raise KeyError(f"op {self.op.name} ({self.op.type}) needs '{key}'")
            return default
        return result

    # The typed helpers are named after the types they return (``c.int("axis")``), so inside this class the
    # builtins are spelled out.
    def int(self, key: builtins.str, default: builtins.int | None = None) -> builtins.int:
        return builtins.int(self._required(key, _to_int, default))

    def float(self, key: builtins.str, default: builtins.float | None = None) -> builtins.float:
        return builtins.float(self._required(key, _to_float, default))

    def bool(self, key: builtins.str, default: builtins.bool = False) -> builtins.bool:
        result = self._typed(key, _to_bool, None)
        return default if result is None else builtins.bool(result)

    def str(self, key: builtins.str, default: builtins.str | None = None) -> builtins.str:
        return builtins.str(self._required(key, _to_str, default))

    def ints(self, key: builtins.str, default: Sequence[builtins.int] | None = None) -> list[builtins.int] | None:
        result = self._typed(key, _to_ints, None)
        if result is None:
            return None if default is None else list(default)
        return list(result)

    def out_shape(self, i: builtins.int = 0) -> tuple[builtins.int, ...] | None:
        """The declared shape of output ``i`` when fully static (kernels may trust it), else None."""
        t = self.out_types[i]
        return tuple(d for d in t.shape if d is not None) if t.is_static else None

    def cached(self, key: Any, build: Callable[[], Any]) -> Any:
        """``build()`` once per op and ``key``: for what a kernel derives from constants and input shapes only
        (put the shapes in the key)."""
        memo_key = ("cached", key)
        if memo_key not in self._memo:
            self._memo[memo_key] = build()
        return self._memo[memo_key]

    def add_workspace(self, elements: builtins.int) -> None:
        self.workspace_elements += builtins.int(elements)


def as_tensor(value: Any) -> torch.Tensor:
    """A torch tensor for a run-time tensor or a constant; floats come out as fp32."""
    if isinstance(value, torch.Tensor):
        t = value
    else:
        arr = np.asarray(value)
        if arr.dtype.kind in "US":
            raise TypeError(f"a string value ({arr!r}) used as a tensor")
        if arr.dtype == np.uint16 or arr.dtype == np.uint32:
            arr = arr.astype(np.int64)
        # np.ascontiguousarray would turn a 0-d scalar into shape (1,); copy only what is not contiguous.
        t = torch.from_numpy(arr if arr.flags.c_contiguous else arr.copy())
    if t.dtype in _FLOAT_TORCH and t.dtype != torch.float32:
        t = t.float()
    return t


def to_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return value


def dims(values: Sequence[int] | None, rank: int) -> list[int]:
    """Normalise (possibly negative) axes against a rank; None means every axis."""
    if values is None:
        return list(range(rank))
    return [int(a) + rank if int(a) < 0 else int(a) for a in values]


def _identity(v: Any) -> Any:
    return v


def _to_int(v: Any) -> int:
    return int(np.asarray(v).reshape(()))


def _to_float(v: Any) -> float:
    return float(np.asarray(v).reshape(()))


def _to_bool(v: Any) -> bool:
    return bool(np.asarray(v).reshape(()))


def _to_str(v: Any) -> str:
    return str(v.item() if isinstance(v, np.ndarray) else v)


def _to_ints(v: Any) -> tuple[int, ...]:
    return tuple(int(i) for i in np.asarray(v).reshape(-1))
