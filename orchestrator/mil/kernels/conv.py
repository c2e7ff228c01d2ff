"""Convolution and pooling kernels (1-3 spatial dims, MIL's [N, C, *D] layout).

Padding follows coremltools' ``aggregated_pad``: ``same`` pads ``s*ceil(d/s) - d + k_eff - s`` in total with
the odd element after (bottom/right), ``same_lower`` puts it before; ``custom`` reads ``pad`` as
[before_0, after_0, before_1, after_1, ...].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from orchestrator.mil.kernels.registry import KERNELS, OpCall

_CONV: dict[int, Callable[..., torch.Tensor]] = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T: dict[int, Callable[..., torch.Tensor]] = {1: F.conv_transpose1d, 2: F.conv_transpose2d,
                                                   3: F.conv_transpose3d}
_AVG: dict[int, Callable[..., torch.Tensor]] = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_MAX: dict[int, Callable[..., torch.Tensor]] = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def spatial_pads(pad_type: str, spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                 dilations: Sequence[int], custom: Sequence[int] | None) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dimension."""
    if pad_type == "valid":
        return [(0, 0)] * len(spatial)
    if pad_type == "custom":
        pads = list(custom or [0] * (2 * len(spatial)))
        return [(pads[2 * i], pads[2 * i + 1]) for i in range(len(spatial))]
    if pad_type in ("same", "same_lower"):
        out = []
        for d, k, s, dil in zip(spatial, kernel, strides, dilations, strict=True):
            k_eff = (k - 1) * dil + 1
            total = max(0, s * math.ceil(d / s) - d + k_eff - s)
            small, big = total // 2, total - total // 2
            out.append((small, big) if pad_type == "same" else (big, small))
        return out
    raise ValueError(f"unknown pad_type {pad_type!r}")


def _apply_pads(x: torch.Tensor, pads: list[tuple[int, int]], value: float = 0.0) -> tuple[torch.Tensor, list[int]]:
    """Symmetric pads go to torch's own ``padding``; asymmetric ones are applied explicitly first."""
    if all(b == a for b, a in pads):
        return x, [b for b, _ in pads]
    flat: list[int] = []
    for before, after in reversed(pads):  # F.pad lists the last dimension first
        flat += [before, after]
    return F.pad(x, flat, value=value), [0] * len(pads)


@KERNELS.register("conv")
def conv(c: OpCall) -> torch.Tensor:
    x, w = c.tensor("x"), c.tensor("weight")
    n = x.dim() - 2
    strides = c.ints("strides", [1] * n) or [1] * n
    dilations = c.ints("dilations", [1] * n) or [1] * n
    pads = spatial_pads(c.str("pad_type", "valid"), x.shape[2:], w.shape[2:], strides, dilations, c.ints("pad"))
    x, padding = _apply_pads(x, pads)
    bias = c.tensor("bias") if c.has("bias") else None
    return _CONV[n](x, w, bias, stride=strides, padding=padding, dilation=dilations, groups=c.int("groups", 1))


@KERNELS.register("conv_transpose")
def conv_transpose(c: OpCall) -> torch.Tensor:
    x, w = c.tensor("x"), c.tensor("weight")  # weight: [C_in, C_out / groups, *K]
    n = x.dim() - 2
    strides = c.ints("strides", [1] * n) or [1] * n
    dilations = c.ints("dilations", [1] * n) or [1] * n
    bias = c.tensor("bias") if c.has("bias") else None
    full = _CONV_T[n](x, w, bias, stride=strides, dilation=dilations, groups=c.int("groups", 1))
    want = c.out_shape()
    pad_type = c.str("pad_type", "valid")
    if pad_type == "custom":
        crops = spatial_pads("custom", x.shape[2:], w.shape[2:], strides, dilations, c.ints("pad"))
    else:
        crops = [(0, 0)] * n
    index: list[slice] = [slice(None), slice(None)]
    for i, (before, after) in enumerate(crops):
        size = full.shape[2 + i] - before - after
        if want is not None:
            size = want[2 + i]
            if pad_type in ("same", "same_lower"):
                extra = full.shape[2 + i] - size
                before = extra // 2 if pad_type == "same" else extra - extra // 2
        index.append(slice(before, before + size))
    return full[tuple(index)]


def _pool_setup(c: OpCall) -> tuple[torch.Tensor, int, list[int], list[int], list[tuple[int, int]]]:
    x = c.tensor("x")
    n = x.dim() - 2
    kernel = c.ints("kernel_sizes") or [1] * n
    strides = c.ints("strides", [1] * n) or [1] * n
    pads = spatial_pads(c.str("pad_type", "valid"), x.shape[2:], kernel, strides, [1] * n, c.ints("pad"))
    return x, n, kernel, strides, pads


@KERNELS.register("max_pool")
def max_pool(c: OpCall) -> torch.Tensor:
    x, n, kernel, strides, pads = _pool_setup(c)
    x, padding = _apply_pads(x, pads, value=float("-inf"))
    if any(2 * p > k for p, k in zip(padding, kernel, strict=True)):
        x, padding = F.pad(x, [p for p in reversed(padding) for _ in (0, 1)], value=float("-inf")), [0] * n
    return _MAX[n](x, kernel, strides, padding, ceil_mode=c.bool("ceil_mode"))


@KERNELS.register("avg_pool")
def avg_pool(c: OpCall) -> torch.Tensor:
    x, n, kernel, strides, pads = _pool_setup(c)
    exclude = c.bool("exclude_padding_from_average")
    flat = [v for before, after in reversed(pads) for v in (before, after)]
    padded = F.pad(x, flat) if any(flat) else x
    ceil_mode = c.bool("ceil_mode")
    total = _AVG[n](padded, kernel, strides, 0, ceil_mode=ceil_mode, count_include_pad=True)
    if not exclude or not any(flat):
        return total
    ones = F.pad(torch.ones_like(x[:1, :1]), flat)
    counts = _AVG[n](ones, kernel, strides, 0, ceil_mode=ceil_mode, count_include_pad=True)
    return total / counts
