"""The noise floor of a (device, component, variant, compute units): how much its latency moves between runs of
an unchanged spec, learned from history.

A bootstrap interval describes the candidate and baseline runs only; it cannot know that this device's medians
wander by 12% from one day to the next (a shared CI host, a phone that warms up). The floor is the change two
runs of the same thing typically show, estimated from the ratios between consecutive runs in the history:

    d_i   = |log(median_i / median_{i-1})|           consecutive runs, oldest first
    scale = median(d) / 0.6745                        robust standard deviation of a log ratio (|N(0, s)| has
                                                      median 0.6745 s); consecutive ratios, not the spread of
                                                      all medians, so one real step in the history counts once
    floor = exp(1.96 * scale) - 1                     the ratio 95% of unchanged reruns stay within

The regression threshold of that key becomes ``max(spec threshold, floor)``. Fewer than ``MIN_RUNS`` runs of
history: no floor (None), the spec's threshold alone applies.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence

MIN_RUNS = 5  # four ratios between consecutive runs: one lucky pair of quiet runs does not set the floor
_Z95 = 1.96
_MAD_TO_SD = 0.6745


def noise_floor(run_medians: Sequence[float]) -> float | None:
    """The relative change (0.08 = 8%) unchanged reruns stay within, from per-run medians oldest first."""
    values = [v for v in run_medians if v > 0 and math.isfinite(v)]
    if len(values) < MIN_RUNS:
        return None
    steps = (abs(math.log(b / a)) for a, b in itertools.pairwise(values))
    median = statistics.median(steps)
    return math.exp(_Z95 * median / _MAD_TO_SD) - 1.0


def noise_floors(history: Mapping[tuple[str, str, str, str], Sequence[float]]) -> dict[tuple[str, str, str, str],
                                                                                          float]:
    """Per key, the floor of its per-run medians; keys with too little history are left out."""
    return {k: f for k, v in history.items() if (f := noise_floor(v)) is not None}
