"""Numbers with their units, as every report output writes them."""

from __future__ import annotations

import math

from orchestrator.serialize import PSNR_CAP_DB


def mb(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f} MB" if abs(value) >= 10 else f"{value:,.1f} MB"


def ms(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f} ms"
    return f"{value:,.1f} ms" if abs(value) >= 10 else f"{value:,.2f} ms"


def db(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= PSNR_CAP_DB:  # stored capped: outputs identical to the reference
        return "∞ dB (identical)"
    return "∞ dB" if math.isinf(value) else f"{value:.1f} dB"


def plural(n: int, noun: str) -> str:
    """``plural(1, "regression")`` -> "1 regression"; ``plural(2, "gate failure")`` -> "2 gate failures"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def signed(value: float, unit: str) -> str:
    """A change with its sign: ``+1,790 MB``, ``+4.5 MB``, ``-1.2 dB``."""
    return f"{value:+,.0f} {unit}" if abs(value) >= 100 else f"{value:+,.1f} {unit}"
