"""The one percentile definition behind every latency figure mlfarm prints or stores.

Linear interpolation between the closest ranks: for sorted values ``x[0..n-1]`` the q-th percentile sits at
rank ``h = (n - 1) * q / 100`` and is ``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``.
This is numpy's default (``method="linear"``, Hyndman & Fan type 7) and what R and spreadsheets call
PERCENTILE.INC; the p50 of an even count is the mean of the two middle values. The run line, the terminal,
Markdown, HTML (labels, box edges and whiskers) and JSON all read their figures from here, so no two outputs
disagree about the p50 of the same samples.

    percentile([1, 2, 3, 4], 50)          # 2.5
    spread([...]).p90                     # the p90 of a job's latencies
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``; NaN when there are none."""
    if len(values) == 0:
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=float), q, method="linear"))


@dataclass(frozen=True)
class Spread:
    """The percentiles a latency distribution is summarised by (box p25-p75, whiskers p10-p90)."""

    p10: float
    p25: float
    p50: float
    p75: float
    p90: float


def spread(values: Sequence[float]) -> Spread:
    if len(values) == 0:
        nan = float("nan")
        return Spread(nan, nan, nan, nan, nan)
    qs = np.percentile(np.asarray(values, dtype=float), [10, 25, 50, 75, 90], method="linear")
    return Spread(*(float(x) for x in qs))
