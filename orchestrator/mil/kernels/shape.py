"""Layout kernels: reshape, transpose, expand_dims/squeeze, concat/split/stack, slice_by_index/slice_by_size,
tile, pad, flatten2d, shape, fill, reverse, pixel (un)shuffle.

Where MIL's type inference already fixed the output shape (``reshape``, ``expand_dims``, ``squeeze``), the kernel
uses the declared shape and falls back to the op's own rules only when the shape is dynamic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from orchestrator.mil.kernels.registry import KERNELS, OpCall, dims


@KERNELS.register("reshape")
def reshape(c: OpCall) -> torch.Tensor:
    x = c.raw("x")
    declared = c.out_shape()
    if declared is not None:
        return x.reshape(declared)
    shape = c.ints("shape") or []
    return x.reshape([x.shape[i] if s == 0 else s for i, s in enumerate(shape)])  # 0 copies the input dim


@KERNELS.register("transpose")
def transpose(c: OpCall) -> torch.Tensor:
    x = c.raw("x")
    return x.permute(dims(c.ints("perm"), x.dim()))


@KERNELS.register("expand_dims")
def expand_dims(c: OpCall) -> torch.Tensor:
    x = c.raw("x")
    axes = c.ints("axes") or []
    out_rank = x.dim() + len(axes)
    for a in sorted(dims(axes, out_rank)):
        x = x.unsqueeze(a)
    return x


@KERNELS.register("squeeze")
def squeeze(c: OpCall) -> torch.Tensor:
    x = c.raw("x")
    axes = c.ints("axes")
    keep = set(range(x.dim())) - (set(dims(axes, x.dim())) if axes else {i for i, d in enumerate(x.shape) if d == 1})
    return x.reshape([x.shape[i] for i in sorted(keep)])


@KERNELS.register("concat")
def concat(c: OpCall) -> torch.Tensor:
    values = c.raws("values")
    axis = dims([c.int("axis")], values[0].dim())[0]
    if c.bool("interleave"):  # out[.., i*n + j, ..] = values[j][.., i, ..]
        return torch.stack(values, dim=axis + 1).flatten(axis, axis + 1)
    return torch.cat(values, dim=axis)


@KERNELS.register("stack")
def stack(c: OpCall) -> torch.Tensor:
    values = c.raws("values")
    return torch.stack(values, dim=dims([c.int("axis")], values[0].dim() + 1)[0])


@KERNELS.register("split")
def split(c: OpCall) -> tuple[torch.Tensor, ...]:
    x = c.raw("x")
    axis = c.int("axis")
    sizes = c.ints("split_sizes")
    if sizes is None:
        n = c.int("num_splits")
        sizes = [x.shape[axis] // n] * n
    return tuple(torch.split(x, sizes, dim=axis))


SliceSpec = tuple[list[tuple[int, int, int]], list[int] | None]  # per axis (start, stop, step); squeezed shape


def _slice_spec(c: OpCall, shape: tuple[int, ...]) -> SliceSpec:
    """Resolved (start, stop, step) per axis for ``shape``, and the output shape when axes are squeezed."""
    rank = len(shape)
    begin = c.ints("begin") or [0] * rank
    end = c.ints("end") or list(shape)
    stride = c.ints("stride") or [1] * rank
    begin_mask, end_mask, squeeze_mask = (_mask(c, k, rank) for k in ("begin_mask", "end_mask", "squeeze_mask"))
    axes = []
    for axis in range(rank):
        b = None if begin_mask[axis] else begin[axis]
        e = None if end_mask[axis] else end[axis]
        if squeeze_mask[axis]:
            b = b or 0
            e = b + 1 if b != -1 else None
        axes.append(slice(b, e, stride[axis]).indices(shape[axis]))
    if not any(squeeze_mask):
        return axes, None
    sizes = [len(range(*a)) for a in axes]
    return axes, [d for d, sq in zip(sizes, squeeze_mask, strict=True) if not sq]


@KERNELS.register("slice_by_index")
def slice_by_index(c: OpCall) -> torch.Tensor:
    x = c.raw("x")
    axes, squeezed = c.cached(("slice", tuple(x.shape)), lambda: _slice_spec(c, tuple(x.shape)))
    if all(step > 0 for _, _, step in axes):
        x = x[tuple(slice(start, stop, step) for start, stop, step in axes)]
    else:
        for axis, (start, stop, step) in enumerate(axes):
            x = x.index_select(axis, torch.arange(start, stop, step, dtype=torch.long))
    return x if squeezed is None else x.reshape(squeezed)


def _mask(c: OpCall, key: str, rank: int) -> list[bool]:
    v = c.value(key)
    return [False] * rank if v is None else [bool(b) for b in np.asarray(v).reshape(-1)]


@KERNELS.register("slice_by_size")
def slice_by_size(c: OpCall) -> torch.Tensor:
    x = c.raw("x")
    begin = c.ints("begin") or [0] * x.dim()
    size = c.ints("size") or [-1] * x.dim()
    for axis, (b, s) in enumerate(zip(begin, size, strict=True)):
        b = b + x.shape[axis] if b < 0 else b
        x = x.narrow(axis, b, x.shape[axis] - b if s == -1 else s)
    return x


@KERNELS.register("tile")
def tile(c: OpCall) -> torch.Tensor:
    return c.raw("x").repeat(c.ints("reps") or [])


@KERNELS.register("pad")
def pad(c: OpCall) -> torch.Tensor:
    x = c.raw("x")
    pads = c.ints("pad") or []
    pairs = [(pads[2 * i], pads[2 * i + 1]) for i in range(len(pads) // 2)]
    flat = [v for before, after in reversed(pairs) for v in (before, after)]
    mode = c.str("mode", "constant")
    if mode == "constant":
        return F.pad(x, flat, value=c.float("constant_val", 0.0))
    return _pad_edges(x, flat, mode)


def _pad_edges(x: torch.Tensor, flat: Sequence[int], mode: str) -> torch.Tensor:
    # torch's reflect/replicate want [N, C, *spatial] with 1-3 padded dims; fold other dims into the batch.
    n_padded = len(flat) // 2
    while flat and flat[-1] == 0 and flat[-2] == 0:
        flat, n_padded = flat[:-2], n_padded - 1
    lead = x.shape[: x.dim() - n_padded]
    y = x.reshape(1, -1, *x.shape[x.dim() - n_padded:])
    y = F.pad(y, list(flat), mode="reflect" if mode == "reflect" else "replicate")
    return y.reshape(*lead, *y.shape[2:])


@KERNELS.register("flatten2d")
def flatten2d(c: OpCall) -> torch.Tensor:
    x = c.raw("x")
    axis = dims([c.int("axis", 1)], x.dim())[0]
    return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)


@KERNELS.register("shape")
def shape(c: OpCall) -> torch.Tensor:
    return torch.tensor(list(c.raw("x").shape), dtype=torch.int32)


@KERNELS.register("fill")
def fill(c: OpCall) -> torch.Tensor:
    return torch.full(c.ints("shape") or [], c.float("value", 0.0))


@KERNELS.register("fill_like")
def fill_like(c: OpCall) -> torch.Tensor:
    return torch.full(c.tensor("ref_tensor").shape, c.float("value", 0.0))


@KERNELS.register("reverse")
def reverse(c: OpCall) -> torch.Tensor:
    x = c.raw("x")
    return torch.flip(x, dims(c.ints("axes"), x.dim()))


@KERNELS.register("pixel_shuffle")
def pixel_shuffle(c: OpCall) -> torch.Tensor:
    return F.pixel_shuffle(c.raw("x"), c.int("upscale_factor"))


@KERNELS.register("pixel_unshuffle")
def pixel_unshuffle(c: OpCall) -> torch.Tensor:
    return F.pixel_unshuffle(c.raw("x"), c.int("downscale_factor"))
