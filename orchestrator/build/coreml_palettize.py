"""Palettize a Core ML model's weights with our exact k-means instead of coremltools' clustering.

``palettize_model(mlmodel, nbits=6)`` gives the same program coremltools' own
``coremltools.optimize.coreml.palettize_weights`` gives for
``OpPalettizerConfig(mode="kmeans", nbits=6, granularity="per_tensor")`` (with ``group_size=16``:
``granularity="per_grouped_channel", group_size=16``), op for op: the same consts are compressed, each
becomes a ``constexpr_lut_to_dense`` with an nbits LUT of the same shape, float16 LUT values for float16
weights. Only the LUT values and indices differ: ours come from :func:`orchestrator.build.palettize.palettize`,
the exact optimum: never a worse MSE than coremltools' k-means, and 25x-600x faster on SD-sized layers
(``bench/palettize.py``).

How it plugs in (coremltools 9.0, ``optimize/coreml/_quantization_passes.py``). Two hooks exist:

* ``OpPalettizerConfig(mode="custom", lut_function=f)``: the public one. It can express grouped channels
  (``grouped_channelwise_compress`` splits the weight into channel groups and calls ``f`` once per group),
  but it calls ``f`` serially, one group at a time, without telling it which tensor or group it is
  seeing, so the groups of a tensor cannot run in parallel. It is still handy when a caller composes its
  own ``OptimizationConfig``: :func:`exact_lut_function` returns such an ``f``.
* The pass's ``blockwise_compress(data, mode, nbits, block_sizes, ...)`` static method, which coremltools
  points its own deprecated API at as the per-weight entry point. ``transform_op`` calls it once per weight
  with the whole tensor plus the block sizes it inferred (zero everywhere for per-tensor; ``group_size``
  on the output-channel axis for grouped). :class:`_ExactPalettizePass` subclasses the registered pass
  and overrides only this method, so every tensor's groups reach ``palettize`` at once (parallel on all
  cores) while op selection, the size threshold, axis inference, opset checks and the construction of
  the ``constexpr_lut_to_dense`` ops stay coremltools' own code. That is why the op structure matches
  by construction. The pass runs through ``coremltools.models.utils._apply_graph_pass``, exactly as the
  public ``palettize_weights`` runs the registered instance (coremltools is pinned to 9.0; the tests
  compare both outputs op by op, so an upgrade that moves these hooks fails loudly).

float32 programs get a float32 LUT holding float16-rounded values (the clustering runs on the float16
view, see ``palettize``); this is the only case where the result is not exactly the k-means optimum
of the stored weights, and it is still better than coremltools' scikit-learn path there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from coremltools.converters.mil.mil import types
from coremltools.models.utils import _apply_graph_pass
from coremltools.optimize import _utils as optimize_utils
from coremltools.optimize.coreml import OpPalettizerConfig, OptimizationConfig
from coremltools.optimize.coreml._quantization_passes import palettize_weights

from orchestrator.build.palettize import SUPPORTED_NBITS, palettize

log = logging.getLogger(__name__)


def palettize_model(
    mlmodel: Any, *, nbits: int, group_size: int | None = None, weight_threshold: int = 2048,
) -> Any:
    """A new MLModel whose weights above ``weight_threshold`` elements are palettized with exact k-means.

    ``group_size=None``: one LUT per tensor. ``group_size=g``: one LUT per ``g`` output channels (needs
    a program converted with ``minimum_deployment_target >= iOS18``; coremltools raises otherwise).
    Tensors whose channel count ``g`` does not divide are left uncompressed with a warning, as in
    coremltools. ``mlmodel`` itself is not modified.
    """
    if nbits not in SUPPORTED_NBITS:
        raise ValueError(f"palettize_model: nbits must be one of {SUPPORTED_NBITS}, got {nbits!r}")
    if mlmodel._is_multifunction():
        raise ValueError("palettize_model: multifunction models are not supported (as in coremltools)")
    granularity = "per_tensor" if group_size is None else "per_grouped_channel"
    config = OpPalettizerConfig(mode="kmeans", nbits=nbits, granularity=granularity,
                                group_size=group_size or 0, weight_threshold=weight_threshold)
    return _apply_graph_pass(mlmodel, _ExactPalettizePass(OptimizationConfig(global_config=config)))


def exact_lut_function(nbits: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A ``lut_function`` for ``OpPalettizerConfig(mode="custom", ...)`` that runs our exact k-means.

    Works per tensor and per grouped channel (coremltools then calls it once per group, serially).
    """
    if nbits not in SUPPORTED_NBITS:
        raise ValueError(f"exact_lut_function: nbits must be one of {SUPPORTED_NBITS}, got {nbits!r}")

    def lut_function(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lut, indices = palettize(weight, nbits)
        return lut.astype(weight.dtype), indices.reshape(-1)

    return lut_function


def _grouping(shape: tuple[int, ...], block_sizes: list[int]) -> tuple[int, int | None]:
    """(channel axis, group size or None) from coremltools' block sizes: the axis blocked below its size.

    Mirrors ``palettize_weights.blockwise_compress``: a block of 0 or of the whole axis is no grouping.
    """
    grouping: tuple[int, int | None] = (0, None)
    for axis, block in enumerate(block_sizes):
        if block not in (0, shape[axis]):
            grouping = (axis, block)
    return grouping


def _lut_params(data: np.ndarray, nbits: int, block_sizes: list[int]) -> Any:
    """Our LUT and indices in the layout of coremltools' ``grouped_channelwise_compress`` (None = skip)."""
    axis, group_size = _grouping(data.shape, block_sizes)
    if group_size is not None and data.shape[axis] % group_size:
        log.warning("Can't palettize a weight of shape %s: %d channels on axis %d are not divisible by "
                    "group size %d", data.shape, data.shape[axis], axis, group_size)
        return None
    lut, indices = palettize(data, nbits, group_size, axis)
    groups = 1 if group_size is None else data.shape[axis] // group_size
    # coremltools' layout: [groups, 1, ..., 1, 2**nbits, 1] with the group dim swapped onto the channel axis
    shape = [groups] + [1] * (data.ndim - 1) + [1 << nbits, 1]
    lut = np.swapaxes(lut.reshape(shape), 0, axis).astype(data.dtype)
    index_dtype = types.nptype_from_builtin(types.string_to_builtin(f"uint{nbits}"))
    return optimize_utils.LutParams(indices.astype(index_dtype), lut, None)


class _ExactPalettizePass(palettize_weights):
    """coremltools' ``palettize_weights`` pass with its clustering replaced by our exact k-means.

    One instance per ``palettize_model`` call; coremltools calls ``transform_op`` per weight const, which
    calls ``blockwise_compress`` with the whole weight.
    """

    @staticmethod
    def blockwise_compress(
        original_data: np.ndarray, mode: str, nbits: int | None, block_sizes: list[int],
        lut_function: Callable[..., Any] | None = None, cluster_dim: int = 1,
        channel_axis: int | None = None, num_kmeans_workers: int = 1,
    ) -> Any:
        if mode.upper() != "KMEANS" or nbits is None or cluster_dim != 1:
            raise ValueError(f"exact palettization supports scalar k-means only, got mode={mode!r}, "
                             f"nbits={nbits}, cluster_dim={cluster_dim}")
        return _lut_params(original_data, nbits, list(block_sizes))
