"""Index kernels: gather (with ``batch_dims``), gather_along_axis, gather_nd, one_hot, topk, argsort, cumsum,
band_part, range_1d.

Indices are checked: a negative index counts from the end (iOS 15/16 semantics); one outside the axis raises
``IndexOutOfRange``, which the executor reports as bad input (for example token ids above the vocabulary).
"""

from __future__ import annotations

import numpy as np
import torch

from orchestrator.errors import UnsupportedOpError
from orchestrator.mil.kernels.registry import KERNELS, OpCall, dims


class IndexOutOfRange(ValueError):
    """An index input holds a value outside the axis it indexes (bad input values, not a kernel bug)."""


def checked_indices(indices: torch.Tensor, size: int, what: str) -> torch.Tensor:
    idx = indices.long()
    idx = torch.where(idx < 0, idx + size, idx)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= size):
        bad = int(indices.long().max()) if int(idx.max()) >= size else int(indices.long().min())
        raise IndexOutOfRange(f"{what}: index {bad} is outside [0, {size})")
    return idx


@KERNELS.register("gather")
def gather(c: OpCall) -> torch.Tensor:
    x, indices = c.raw("x"), c.tensor("indices")
    axis = dims([c.int("axis", 0)], x.dim())[0]
    batch_dims = c.int("batch_dims", 0)
    idx = checked_indices(indices, x.shape[axis], f"gather '{c.op.name}'")
    if batch_dims == 0:
        out = x.index_select(axis, idx.reshape(-1))
        # A tuple, not *args: a scalar index into a 1-D tensor gives a 0-D result, and reshape() needs a shape.
        return out.reshape((*x.shape[:axis], *idx.shape, *x.shape[axis + 1:]))
    # tf.gather-style batch_dims: x and indices share their first ``batch_dims`` dimensions.
    lead = x.shape[:batch_dims]
    xs = x.reshape(-1, *x.shape[batch_dims:])
    ids = idx.reshape(-1, *idx.shape[batch_dims:])
    inner = axis - batch_dims
    parts = [xs[b].index_select(inner, ids[b].reshape(-1)).reshape(
        *xs.shape[1:inner + 1], *ids.shape[1:], *xs.shape[inner + 2:]) for b in range(xs.shape[0])]
    out = torch.stack(parts)
    return out.reshape(*lead, *out.shape[1:])


@KERNELS.register("gather_along_axis")
def gather_along_axis(c: OpCall) -> torch.Tensor:
    x, indices = c.raw("x"), c.tensor("indices")
    axis = dims([c.int("axis", 0)], x.dim())[0]
    idx = checked_indices(indices, x.shape[axis], f"gather_along_axis '{c.op.name}'")
    return torch.gather(x, axis, idx)


@KERNELS.register("gather_nd")
def gather_nd(c: OpCall) -> torch.Tensor:
    x, indices = c.raw("x"), c.tensor("indices")
    if c.int("batch_dims", 0) != 0:
        raise UnsupportedOpError("gather_nd (batch_dims > 0)")
    k = indices.shape[-1]
    cols = [checked_indices(indices[..., i], x.shape[i], f"gather_nd '{c.op.name}'") for i in range(k)]
    return x[tuple(cols)]


@KERNELS.register("one_hot")
def one_hot(c: OpCall) -> torch.Tensor:
    indices = c.tensor("indices").long()
    depth = c.int("one_hot_vector_size")
    hot = torch.nn.functional.one_hot(indices.clamp(0, depth - 1), depth).bool() & (indices >= 0).unsqueeze(-1)
    on, off = c.float("on_value", 1.0), c.float("off_value", 0.0)
    out = torch.where(hot, torch.tensor(on), torch.tensor(off))
    axis = dims([c.int("axis", -1)], out.dim())[0]
    return out.movedim(-1, axis)


@KERNELS.register("topk")
def topk(c: OpCall) -> tuple[torch.Tensor, torch.Tensor]:
    x = c.tensor("x")
    values, indices = torch.topk(x, c.int("k", 1), dim=c.int("axis", -1), largest=not c.bool("ascending"),
                                 sorted=True)
    return values, indices.to(torch.int32)


@KERNELS.register("argsort")
def argsort(c: OpCall) -> torch.Tensor:
    x = c.tensor("x")
    return torch.argsort(x, dim=c.int("axis", -1), descending=not c.bool("ascending"), stable=True).to(torch.int32)


@KERNELS.register("cumsum")
def cumsum(c: OpCall) -> torch.Tensor:
    x = c.tensor("x")
    axis = c.int("axis", 0)
    if c.bool("reverse"):
        x = torch.flip(x, [axis])
    out = torch.cumsum(x, dim=axis)
    if c.bool("exclusive"):
        out = out - x
    return torch.flip(out, [axis]) if c.bool("reverse") else out


@KERNELS.register("band_part")
def band_part(c: OpCall) -> torch.Tensor:
    x = c.tensor("x")
    lower, upper = c.int("lower", -1), c.int("upper", -1)
    m, n = x.shape[-2], x.shape[-1]
    rows = torch.arange(m).unsqueeze(1)
    cols = torch.arange(n).unsqueeze(0)
    keep = torch.ones(m, n, dtype=torch.bool)
    if lower >= 0:
        keep &= (rows - cols) <= lower
    if upper >= 0:
        keep &= (cols - rows) <= upper
    return torch.where(keep, x, torch.zeros_like(x))


@KERNELS.register("range_1d")
def range_1d(c: OpCall) -> torch.Tensor:
    start, end, step = (np.asarray(c.value(k)).reshape(()).item() for k in ("start", "end", "step"))
    return torch.arange(start, end, step)
