"""Exact palettizer vs coremltools 9.0's k-means, timed side by side in one run.

    .venv/bin/python bench/palettize.py                       # SD-shaped tensors, 6/4 bits, per tensor and g16
    flock /tmp/mlfarm-big.lock .venv/bin/python bench/palettize.py --model sd15-unet-random

"coremltools" is the clustering its palettize pass runs for the same config
(``palettize_weights.blockwise_compress(w, "KMEANS", nbits, block_sizes)``, default ``num_kmeans_workers=1``):
for float16 tensors or groups of >= 10,000 elements its vendored exact kmeans1d after ``np.unique``,
otherwise scikit-learn's KMeans (run with one OpenMP thread, as orchestrator.build.compress runs it). "ours"
is ``orchestrator.build.palettize.palettize`` on all cores. Both get the same float16 weights and both MSEs
are measured the same way (float16 weights against the float16 LUT). "floor" is one histogram pass over
the weights on one core, the least any histogram-based method must spend. The machine is shared, so each
figure is the median of --repeats runs and the ratios are what to read.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np

from orchestrator.build.palettize import _count, palette_mse, palettize

SHAPES = ((320, 320, 3, 3), (1280, 1280), (5120, 1280), (10240, 1280))
LARGE = ((5120, 1280), (10240, 1280))  # where the per-tensor target (>= 20x) applies
CASES = ((6, None), (4, None), (6, 16), (4, 16))
SKLEARN_BELOW = 10_000  # coremltools' switch from kmeans1d to scikit-learn (per tensor or per group)


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """(median seconds over ``repeats`` runs, the last result)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def stock(weights: np.ndarray, nbits: int, group_size: int | None) -> np.ndarray:
    """coremltools' own clustering for this config, as its pass calls it; the decompressed float16 weights."""
    from coremltools.optimize import _utils as optimize_utils
    from coremltools.optimize.coreml._quantization_passes import palettize_weights
    from threadpoolctl import threadpool_limits

    blocks = [0] * weights.ndim
    if group_size is not None:
        blocks[0] = group_size
    with threadpool_limits(limits=1):
        params = palettize_weights.blockwise_compress(weights, "KMEANS", nbits, blocks)
    if params is None:
        raise ValueError(f"coremltools cannot palettize a weight of shape {weights.shape} with groups of {group_size}")
    return np.asarray(optimize_utils.lut_to_dense(params.indices, params.lut))


def stock_path(weights: np.ndarray, group_size: int | None) -> str:
    size = weights.size if group_size is None else weights.size // weights.shape[0] * group_size
    return "kmeans1d" if size >= SKLEARN_BELOW and weights.dtype == np.float16 else "sklearn"


def floor(*tensors: np.ndarray) -> None:
    """One histogram pass over the weights on one core."""
    for weights in tensors:
        _count(weights.view(np.uint16).reshape(-1), np.zeros(65536, np.int64))


def mse(weights: np.ndarray, dense: np.ndarray) -> float:
    return float(np.mean((weights.astype(np.float64) - dense.astype(np.float64)) ** 2))


def sd_like(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Bell-shaped float16 weights scaled like a trained layer (std 1/sqrt(fan_in))."""
    fan_in = int(np.prod(shape[1:]))
    return (np.random.default_rng(seed).normal(size=shape) / np.sqrt(fan_in)).astype(np.float16)


def bench_shapes(repeats: int, stock_repeats: int) -> None:
    print(f"{'shape':<18}{'bits':>5}{'group':>7}{'elements':>11}{'floor s':>9}{'ours s':>9}{'coremltools s':>15}"
          f"{'path':>10}{'ratio':>8}{'target':>8}{'MSE ours':>11}{'MSE ct':>11}  ok")
    for seed, shape in enumerate(SHAPES):
        weights = sd_like(shape, seed)
        t_floor, _ = timed(partial(floor, weights), repeats)
        for nbits, group in CASES:
            t_ours, (lut, idx) = timed(partial(palettize, weights, nbits, group), repeats)
            t_ct, dense = timed(partial(stock, weights, nbits, group), stock_repeats)
            ours, theirs = palette_mse(weights, lut, idx), mse(weights, dense)
            target = 15.0 if group else (20.0 if shape in LARGE else None)
            ratio = t_ct / t_ours
            ok = ours <= theirs * (1 + 1e-9) and (target is None or ratio >= target)
            print(f"{'x'.join(map(str, shape)):<18}{nbits:>5}{group or '-':>7}{weights.size:>11,}{t_floor:>9.3f}"
                  f"{t_ours:>9.3f}{t_ct:>15.3f}{stock_path(weights, group):>10}{ratio:>7.1f}x"
                  f"{f'{target:.0f}x' if target else '-':>8}{ours:>11.3e}{theirs:>11.3e}  {'yes' if ok else 'NO'}",
                  flush=True)


def palettize_all(tensors: list[np.ndarray], nbits: int, group: int | None) -> None:
    for weights in tensors:
        palettize(weights, nbits, group)


def unet_weights() -> Iterator[tuple[str, np.ndarray]]:
    """Float16 copies of the weights coremltools would palettize (rank >= 2, > 2,048 elements) of a
    randomly initialised SD-1.5-size UNet (diffusers UNet2DConditionModel, cross_attention_dim=768, seed 0)."""
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet: Any = UNet2DConditionModel(cross_attention_dim=768)
    for name, tensor in unet.state_dict().items():
        if tensor.ndim >= 2 and tensor.numel() > 2048:
            yield name, tensor.detach().to(torch.float16).numpy()


def bench_model(repeats: int, sample_every: int) -> None:
    start = time.perf_counter()
    tensors = [w for _, w in unet_weights()]
    total = sum(w.size for w in tensors)
    print(f"SD-1.5 UNet, random weights: {len(tensors)} tensors, {total:,} parameters "
          f"(built in {time.perf_counter() - start:.0f} s, not timed).")
    print("Measured: the k-means work only (histogram, clustering, indices) on the float16 weight tensors;\n"
          "no Core ML conversion. Ours: every tensor, one call each (grouped calls run groups on all cores).\n"
          f"coremltools: every {sample_every}th tensor, timed one by one, extrapolated to all by element count.\n")
    t_floor, _ = timed(partial(floor, *tensors), 1)
    print(f"floor (one histogram pass over all weights, 1 core): {t_floor:.2f} s\n")
    for nbits, group, target in ((6, None, 20.0), (4, 16, 180.0)):
        model_case(tensors, nbits, group, target, repeats, sample_every)


def model_case(tensors: list[np.ndarray], nbits: int, group: int | None, target: float, repeats: int,
               sample_every: int) -> None:
    """Time ours on every tensor and coremltools on a sample; print both, the ratio and the sample's MSEs."""
    usable = [w for w in tensors if group is None or w.shape[0] % group == 0]  # coremltools skips the others
    total = sum(w.size for w in usable)
    t_ours, _ = timed(partial(palettize_all, usable, nbits, group), repeats)
    sample = usable[::sample_every]
    sampled = sum(w.size for w in sample)
    t_ct = ours_sse = theirs_sse = 0.0
    paths: dict[str, int] = {}
    for w in sample:
        begin = time.perf_counter()
        dense = stock(w, nbits, group)
        t_ct += time.perf_counter() - begin
        paths[stock_path(w, group)] = paths.get(stock_path(w, group), 0) + 1
        lut, idx = palettize(w, nbits, group)
        ours_sse += palette_mse(w, lut, idx) * w.size
        theirs_sse += mse(w, dense) * w.size
    estimate = t_ct * total / sampled
    label = f"{nbits}-bit " + ("per tensor" if group is None else f"g{group}")
    skipped = len(tensors) - len(usable)
    note = f", {skipped} skipped by both: channels not a multiple of {group}" if skipped else ""
    verdict = "yes" if t_ours < target else "NO"
    print(f"{label:<15} ours {t_ours:6.1f} s on all {len(usable)} tensors{note}; target < {target:.0f} s: {verdict}")
    print(f"{'':<15} coremltools {t_ct:6.1f} s on {len(sample)} tensors ({sampled / total:.0%} of the weights; paths: "
          f"{', '.join(f'{k} x{v}' for k, v in sorted(paths.items()))}) -> ~{estimate:.0f} s for all; "
          f"ratio ~{estimate / t_ours:.1f}x")
    better = "ours <= coremltools" if ours_sse <= theirs_sse * (1 + 1e-9) else "OURS WORSE"
    print(f"{'':<15} MSE on the sample: ours {ours_sse / sampled:.4e}, coremltools {theirs_sse / sampled:.4e} "
          f"({better})\n", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["sd15-unet-random"], help="palettize a whole model's weights")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure of ours (median)")
    parser.add_argument("--stock-repeats", type=int, default=1, help="runs per coremltools figure (median)")
    parser.add_argument("--sample-every", type=int, default=10, help="model mode: time coremltools on every Nth tensor")
    args = parser.parse_args()
    import coremltools
    import numba

    print(f"cores: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()[0]:.2f}, "
          f"coremltools {coremltools.__version__}, numba {numba.__version__}, numpy {np.__version__}\n")
    palettize(sd_like((64, 64), 0), 4, 16)  # load the compiled kernels before timing
    if args.model:
        bench_model(args.repeats, args.sample_every)
    else:
        bench_shapes(args.repeats, args.stock_repeats)


if __name__ == "__main__":
    main()
