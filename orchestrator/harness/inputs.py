"""Seeded model inputs that every harness can reproduce bit for bit (Python here, Swift on devices).

The generator is SplitMix64, specified so that it is easy to write in any language:

    state_i = seed + (i + 1) * 0x9E3779B97F4A7C15            (mod 2**64), i = 0, 1, 2, ...
    z = state_i
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9                (mod 2**64)
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB                (mod 2**64)
    x_i = z ^ (z >> 31)

float inputs: standard normal by Box-Muller on consecutive pairs, computed in float64 then rounded to the
input dtype: u1 = ((x_2k >> 11) + 1) / 2**53, u2 = (x_2k+1 >> 11) / 2**53,
value_k = sqrt(-2 ln u1) * cos(2 pi u2). int32 inputs: x_i mod high (high defaults to 1000).

``harness_app/Sources/HarnessKit/SeededInputs.swift`` implements the same; ``GOLDEN`` pins the first values so
both sides are tested against one table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

GAMMA = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
DEFAULT_INT_HIGH = 1000

# The published SplitMix64 reference vector (seed 1234567) and seed 0's first output; the Swift side
# tests against the same numbers.
GOLDEN = {
    1234567: [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431,
              16408922859458223821],
    0: [0xE220A8397B1DCDAF],
}


def splitmix64(seed: int, count: int) -> np.ndarray:
    """The first ``count`` SplitMix64 outputs for ``seed``, as uint64."""
    with np.errstate(over="ignore"):
        i = np.arange(1, count + 1, dtype=np.uint64)
        z = np.uint64(seed & 0xFFFFFFFFFFFFFFFF) + i * GAMMA
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        return z ^ (z >> np.uint64(31))


def standard_normal(seed: int, count: int) -> np.ndarray:
    pairs = (count + 1) // 2
    x = splitmix64(seed, 2 * pairs)
    u1 = ((x[0::2] >> np.uint64(11)).astype(np.float64) + 1.0) / 2.0**53
    u2 = (x[1::2] >> np.uint64(11)).astype(np.float64) / 2.0**53
    radius = np.sqrt(-2.0 * np.log(u1))
    values = np.empty(2 * pairs, dtype=np.float64)
    values[0::2] = radius * np.cos(2.0 * np.pi * u2)
    values[1::2] = radius * np.sin(2.0 * np.pi * u2)
    return values[:count]


def make_input(shape: Sequence[int], dtype: str, seed: int, high: int | None = None) -> np.ndarray:
    count = int(np.prod(shape, dtype=np.int64))
    if dtype == "int32":
        values = splitmix64(seed, count) % np.uint64(high or DEFAULT_INT_HIGH)
        return values.astype(np.int32).reshape(tuple(shape))
    if dtype not in ("float32", "float16"):
        raise ValueError(f"unsupported input dtype {dtype!r}")
    return standard_normal(seed, count).astype(dtype).reshape(tuple(shape))
