"""Resampling of the last two dimensions: upsample/resize with nearest neighbour or bilinear interpolation.

Bilinear sampling positions follow coremltools' op docs (``iOS15/image_resizing.py``):
``align_corners`` samples ``i * (Xin - 1) / (Xout - 1)``; otherwise half-pixel centres
``(i + 0.5) * Xin / Xout - 0.5`` (iOS 16's ``half_pixel_centers``, default ``not align_corners``),
or ``i * Xin / Xout`` when half-pixel centres are off; ``resize_bilinear`` names these modes
(``STRICT_ALIGN_CORNERS``, ``ALIGN_CORNERS``, ``DEFAULT``, ``OFFSET_CORNERS``, ``UNALIGN_CORNERS``).
All positions are clamped to ``[0, Xin - 1]``.
"""

from __future__ import annotations

import math

import torch

from orchestrator.mil.kernels.registry import KERNELS, OpCall


def _positions(x_in: int, x_out: int, mode: str) -> torch.Tensor:
    i = torch.arange(x_out, dtype=torch.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if x_out == 1:
            pos = torch.full_like(i, (x_in - 1) / 2.0 if mode == "ALIGN_CORNERS" else 0.0)
        else:
            pos = i * (x_in - 1) / (x_out - 1)
    elif mode == "UNALIGN_CORNERS":
        pos = (i + 0.5) * x_in / x_out - 0.5
    elif mode == "DEFAULT":
        pos = i * (x_in - x_in / x_out) / (x_out - 1) if x_out > 1 else torch.zeros_like(i)
    elif mode == "OFFSET_CORNERS":
        delta = max(1, x_in - 1) / x_out
        pos = 0.5 * delta + i * delta
    elif mode == "ASYMMETRIC":
        pos = i * x_in / x_out
    else:
        raise ValueError(f"unknown bilinear sampling mode {mode!r}")
    return pos.clamp(0, x_in - 1)


def _lerp_axis(x: torch.Tensor, axis: int, pos: torch.Tensor) -> torch.Tensor:
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=x.shape[axis] - 1)
    w = (pos - lo).to(x.dtype)
    shape = [1] * x.dim()
    shape[axis] = -1
    a, b = x.index_select(axis, lo), x.index_select(axis, hi)
    return a + (b - a) * w.reshape(shape)


def bilinear(x: torch.Tensor, out_h: int, out_w: int, mode: str) -> torch.Tensor:
    y = _lerp_axis(x, x.dim() - 2, _positions(x.shape[-2], out_h, mode))
    return _lerp_axis(y, y.dim() - 1, _positions(x.shape[-1], out_w, mode))


def nearest(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    rows = (torch.arange(out_h) * x.shape[-2] // out_h).clamp(max=x.shape[-2] - 1)
    cols = (torch.arange(out_w) * x.shape[-1] // out_w).clamp(max=x.shape[-1] - 1)
    if out_h % x.shape[-2] == 0 and out_w % x.shape[-1] == 0:  # integer factors: a cheap repeat
        return x.repeat_interleave(out_h // x.shape[-2], dim=-2).repeat_interleave(out_w // x.shape[-1], dim=-1)
    return x.index_select(x.dim() - 2, rows).index_select(x.dim() - 1, cols)


def _scaled(c: OpCall, x: torch.Tensor) -> tuple[int, int]:
    h = math.floor(x.shape[-2] * c.float("scale_factor_height", 1.0))
    w = math.floor(x.shape[-1] * c.float("scale_factor_width", 1.0))
    return h, w


@KERNELS.register("upsample_nearest_neighbor")
def upsample_nearest_neighbor(c: OpCall) -> torch.Tensor:
    x = c.tensor("x")
    return nearest(x, *_scaled(c, x))


@KERNELS.register("resize_nearest_neighbor")
def resize_nearest_neighbor(c: OpCall) -> torch.Tensor:
    return nearest(c.tensor("x"), c.int("target_size_height"), c.int("target_size_width"))


@KERNELS.register("upsample_bilinear")
def upsample_bilinear(c: OpCall) -> torch.Tensor:
    x = c.tensor("x")
    align = c.bool("align_corners", True)
    half_pixel = c.bool("half_pixel_centers", not align)
    mode = "STRICT_ALIGN_CORNERS" if align else ("UNALIGN_CORNERS" if half_pixel else "ASYMMETRIC")
    return bilinear(x, *_scaled(c, x), mode)


@KERNELS.register("resize_bilinear")
def resize_bilinear(c: OpCall) -> torch.Tensor:
    x = c.tensor("x")
    return bilinear(x, c.int("target_size_height", 1), c.int("target_size_width", 1), c.str("sampling_mode", "DEFAULT"))
