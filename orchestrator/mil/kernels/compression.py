"""Weight decompression (``constexpr_*``, evaluated once before the first run) and iOS 17 (de)quantize.

Layouts follow coremltools' op definitions:

- ``constexpr_lut_to_dense`` iOS 16: ``indices`` is a flat byte string of n-bit fields packed LSB first, ``lut`` a
  vector of 2**n entries, ``shape`` the output shape. iOS 18: ``indices`` has the output shape (one value per
  element, already unpacked by the blob reader), ``lut`` is ``[*groups, 2**n, VECTOR_SIZE]`` where each of the
  first dims divides the matching ``indices`` dim (per-grouped-channel palettes), and ``vector_axis`` says where
  vectors are laid out when ``VECTOR_SIZE > 1``.
- ``constexpr_affine_dequantize``: ``scale * (data - zero_point)`` with vector scale/zero point along ``axis``.
- ``constexpr_blockwise_shift_scale``: ``scale * (data - offset)``, with block size ``data.shape / scale.shape``.
- ``constexpr_sparse_to_dense``: a bit mask (packed bytes on iOS 16, uint1 of the output shape on iOS 18)
  says which elements take the next ``nonzero_data`` value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from orchestrator.mil.kernels.registry import KERNELS, OpCall


def _np(c: OpCall, key: str) -> np.ndarray:
    return np.asarray(c.value(key))


def unpack_bits(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """n-bit unsigned fields packed LSB first into bytes -> one uint8 per field."""
    bits = np.unpackbits(packed.astype(np.uint8).reshape(-1), bitorder="little")[: count * nbits]
    weights = (1 << np.arange(nbits, dtype=np.uint16)).astype(np.uint16)
    return (bits.reshape(count, nbits).astype(np.uint16) @ weights).astype(np.uint8)


def group_index(shape: tuple[int, ...], groups: tuple[int, ...]) -> np.ndarray:
    """For each element of ``shape``, the flat index of its group when dim i is cut into ``groups[i]`` blocks."""
    index = np.zeros((1,) * len(shape), dtype=np.int64)
    stride = 1
    for axis in reversed(range(len(shape))):
        block = shape[axis] // groups[axis]
        coord = np.arange(shape[axis], dtype=np.int64) // block
        view = [1] * len(shape)
        view[axis] = shape[axis]
        index = index + coord.reshape(view) * stride
        stride *= groups[axis]
    return index


def lut_to_dense_ios18(indices: np.ndarray, lut: np.ndarray, vector_axis: int | None) -> np.ndarray:
    rank = indices.ndim
    palettes, vector = lut.shape[-2], lut.shape[-1]
    groups = tuple(int(g) for g in lut.shape[:rank])
    table = lut.reshape(-1, palettes, vector)
    gid = np.broadcast_to(group_index(indices.shape, groups), indices.shape)
    values = table[gid, indices.astype(np.int64)]  # indices.shape + (vector,)
    if vector == 1:
        return values[..., 0]
    axis = int(vector_axis if vector_axis is not None else 0) % rank
    out_shape = list(indices.shape)
    out_shape[axis] *= vector
    return np.moveaxis(values, -1, axis + 1).reshape(out_shape)


@KERNELS.register("constexpr_lut_to_dense")
def constexpr_lut_to_dense(c: OpCall) -> np.ndarray:
    lut, indices = _np(c, "lut"), _np(c, "indices")
    if c.has("shape"):  # iOS 16: packed bytes + a flat LUT
        shape = tuple(int(d) for d in _np(c, "shape").reshape(-1))
        nbits = int(np.log2(lut.size))
        count = int(np.prod(shape, dtype=np.int64))
        return lut.reshape(-1)[unpack_bits(indices, nbits, count).astype(np.int64)].reshape(shape)
    axis = c.value("vector_axis")
    return lut_to_dense_ios18(indices, lut, None if axis is None else int(np.asarray(axis)))


@KERNELS.register("constexpr_affine_dequantize")
def constexpr_affine_dequantize(c: OpCall) -> np.ndarray:
    data = _np(c, "quantized_data").astype(np.float32)
    axis = c.int("axis") % data.ndim
    view = [1] * data.ndim
    scale, zero = _np(c, "scale").astype(np.float32), _np(c, "zero_point").astype(np.float32)
    if scale.ndim == 1:
        view[axis] = -1
        scale = scale.reshape(view)
    if zero.ndim == 1:
        zero = zero.reshape([-1 if i == axis else 1 for i in range(data.ndim)])
    return (scale * (data - zero)).astype(np.float32)


def blockwise(data: np.ndarray, scale: np.ndarray, offset: np.ndarray | None) -> np.ndarray:
    """``scale * (data - offset)`` with each scale covering a block, without materialising repeated scales."""
    split: list[int] = []
    for d, s in zip(data.shape, scale.shape, strict=True):
        split += [s, d // s]
    x = data.astype(np.float32).reshape(split)
    expand = [v for s in scale.shape for v in (s, 1)]
    if offset is not None:
        x = x - offset.astype(np.float32).reshape(expand)
    return (x * scale.astype(np.float32).reshape(expand)).reshape(data.shape)


@KERNELS.register("constexpr_blockwise_shift_scale")
def constexpr_blockwise_shift_scale(c: OpCall) -> np.ndarray:
    offset = _np(c, "offset") if c.has("offset") else None
    return blockwise(_np(c, "data"), _np(c, "scale"), offset)


@KERNELS.register("constexpr_sparse_to_dense")
def constexpr_sparse_to_dense(c: OpCall) -> np.ndarray:
    data, mask = _np(c, "nonzero_data"), _np(c, "mask")
    if c.has("shape"):  # iOS 16: the mask is packed bits of a flat tensor
        shape = tuple(int(d) for d in _np(c, "shape").reshape(-1))
        count = int(np.prod(shape, dtype=np.int64))
        mask = np.unpackbits(mask.astype(np.uint8), bitorder="little")[:count].reshape(shape)
    out = np.zeros(mask.shape, dtype=data.dtype)
    out[mask != 0] = data
    return out


@KERNELS.register("constexpr_cast")
def constexpr_cast(c: OpCall) -> np.ndarray:
    return _np(c, "source_val").astype(np.float32)


def _per_axis(value: torch.Tensor, rank: int, axis: int | None) -> torch.Tensor:
    if value.dim() == 1 and axis is not None:
        return value.reshape([-1 if i == axis % rank else 1 for i in range(rank)])
    return value


@KERNELS.register("dequantize")
def dequantize(c: OpCall) -> torch.Tensor:
    x = c.tensor("input").float()
    axis: Any = c.value("axis")
    axis = None if axis is None else int(np.asarray(axis))
    zero = _per_axis(c.tensor("zero_point").float(), x.dim(), axis) if c.has("zero_point") else 0.0
    return (x - zero) * _per_axis(c.tensor("scale"), x.dim(), axis)


@KERNELS.register("quantize")
def quantize(c: OpCall) -> torch.Tensor:
    x = c.tensor("input")
    axis: Any = c.value("axis")
    axis = None if axis is None else int(np.asarray(axis))
    zero = _per_axis(c.tensor("zero_point").float(), x.dim(), axis) if c.has("zero_point") else 0.0
    q = torch.round(x / _per_axis(c.tensor("scale"), x.dim(), axis) + zero)
    lo, hi = (-128, 127) if c.str("output_dtype") == "int8" else (0, 255)
    return q.clamp(lo, hi)
