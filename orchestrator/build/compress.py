"""Weight compression variants, derived from a converted base program with coremltools.optimize.coreml.

One registry entry per ``WEIGHTS`` name (a test checks none is missing). Each takes the base MLModel and
returns a new one; the base is not modified (coremltools rebuilds the program from the base's spec), so all
variants of one conversion come from the same program.

    none          the base itself (fp16 or fp32 weights)
    int8          linear symmetric int8, one scale per output channel
                  -> constexpr_affine_dequantize (iOS 16/17 opset) or constexpr_blockwise_shift_scale (iOS 18)
    paletteN      k-means palette of 2**N fp16 values per tensor -> constexpr_lut_to_dense (N-bit indices)
    palette4-g16  one 16-entry palette per group of 16 output channels (iOS 18 opset)
    int4-b32      linear symmetric int4, one scale per block of 32 weights along the input axis
                  -> constexpr_blockwise_shift_scale (iOS 18 opset)

Palettes use a pluggable k-means: "fast" (default: ``orchestrator.build.coreml_palettize.palettize_model``,
the exact palettizer, same ops, never a worse MSE, bench/palettize.py) or "coremltools" (its own).
Tensors smaller than ``weight_threshold`` elements (biases, norms) stay uncompressed, as in coremltools.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.build.logs import captured
from orchestrator.errors import BuildError, UsageError
from orchestrator.variants import WEIGHTS, WeightScheme

KMeans = Literal["coremltools", "fast"]
KMEANS: tuple[KMeans, ...] = ("coremltools", "fast")
# "fast" is proven: tests/build/test_palettize.py, tests/build/test_coreml_palettize.py, bench/palettize.py.
DEFAULT_KMEANS: KMeans = "fast"


@dataclass(frozen=True)
class CompressionSettings:
    kmeans: KMeans = DEFAULT_KMEANS
    weight_threshold: int = 2048  # coremltools' default
    kmeans_workers: int = 1  # coremltools' k-means processes; does not change results, so not in the key

    def __post_init__(self) -> None:
        if self.kmeans not in KMEANS:
            raise UsageError(f"unknown k-means {self.kmeans!r}", fix=f"use one of: {', '.join(KMEANS)}")


Compressor = Callable[[Any, WeightScheme, CompressionSettings], Any]


@dataclass(frozen=True)
class Compression:
    """How one weight scheme is produced, and which settings go into its build key."""

    scheme: str
    apply: Compressor
    uses: tuple[str, ...]  # CompressionSettings fields that change the result

    def key(self, settings: CompressionSettings) -> dict[str, Any]:
        scheme = WEIGHTS[self.scheme]
        described = {"scheme": self.scheme, "kind": scheme.kind, "bits": scheme.bits,
                     "granularity": scheme.granularity, "group_size": scheme.group_size}
        return described | {name: getattr(settings, name) for name in self.uses}


def _uncompressed(model: Any, scheme: WeightScheme, settings: CompressionSettings) -> Any:
    return model


def _linear(model: Any, scheme: WeightScheme, settings: CompressionSettings) -> Any:
    from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig, linear_quantize_weights

    if scheme.granularity == "per_block":
        config = OpLinearQuantizerConfig(mode="linear_symmetric", dtype=f"int{scheme.bits}", granularity="per_block",
                                         block_size=scheme.group_size or 32, weight_threshold=settings.weight_threshold)
    else:
        config = OpLinearQuantizerConfig(mode="linear_symmetric", dtype=f"int{scheme.bits}",
                                         granularity="per_channel", weight_threshold=settings.weight_threshold)
    return linear_quantize_weights(model, OptimizationConfig(global_config=config))


def _palette(model: Any, scheme: WeightScheme, settings: CompressionSettings) -> Any:
    if settings.kmeans == "fast":
        return _fast_palette(model, scheme, settings)
    from coremltools.optimize.coreml import OpPalettizerConfig, OptimizationConfig, palettize_weights

    grouped = scheme.granularity == "per_grouped_channel"
    config = OpPalettizerConfig(nbits=scheme.bits, mode="kmeans",
                                granularity="per_grouped_channel" if grouped else "per_tensor",
                                group_size=scheme.group_size or 0, weight_threshold=settings.weight_threshold,
                                num_kmeans_workers=settings.kmeans_workers)
    # scikit-learn's k-means starts an OpenMP thread team per call; coremltools calls it once per tensor (once
    # per channel group for grouped palettes), and on a small busy machine that start-up costs ~20x the work.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return palettize_weights(model, OptimizationConfig(global_config=config))


def _fast_palette(model: Any, scheme: WeightScheme, settings: CompressionSettings) -> Any:
    try:
        from orchestrator.build.coreml_palettize import palettize_model
    except ImportError as exc:
        raise BuildError("the fast palettizer (orchestrator.build.coreml_palettize) is not available",
                         fix="use --kmeans coremltools") from exc
    return palettize_model(model, nbits=scheme.bits, group_size=scheme.group_size,
                           weight_threshold=settings.weight_threshold)


_BY_KIND: Mapping[str, tuple[Compressor, tuple[str, ...]]] = {
    "none": (_uncompressed, ()),
    "linear": (_linear, ("weight_threshold",)),
    "palette": (_palette, ("kmeans", "weight_threshold")),
}
COMPRESSIONS: Mapping[str, Compression] = {
    s.name: Compression(s.name, *_BY_KIND[s.kind]) for s in WEIGHTS if s.kind in _BY_KIND
}


@dataclass
class Compressed:
    scheme: str
    model: Any
    seconds: float


def compress(base: Any, scheme: str, settings: CompressionSettings, *, where: str) -> Compressed:
    """Apply ``scheme`` to the converted base model; BuildError naming ``where`` (component + variant) on failure."""
    if scheme not in COMPRESSIONS:
        raise BuildError(f"{where}: no compressor registered for weights {scheme!r}",
                         fix="register one in orchestrator/build/compress.py")
    start = time.perf_counter()
    with captured() as log:
        try:
            model = COMPRESSIONS[scheme].apply(base, WEIGHTS[scheme], settings)
        except BuildError:
            raise
        except Exception as exc:  # coremltools.optimize raises ValueError/AssertionError/...
            detail = log.tail(4)
            raise BuildError(f"{where}: {scheme} compression failed: {type(exc).__name__}: {exc}"
                             + (f"\n{detail}" if detail else ""),
                             fix="grouped palettes need the iOS 18 target; other failures: rerun with --debug"
                             ) from exc
    if model is not base:
        model.user_defined_metadata.pop("com.github.apple.coremltools.conversion_date", None)
    return Compressed(scheme, model, time.perf_counter() - start)
