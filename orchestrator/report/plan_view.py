"""Read the plan's per-device choices out of the plan JSON stored with a run (``Plan.to_json()``).

Reports only need, for each (device, component), which variant and compute units were chosen (the jobs that
gate the release) or why nothing was chosen:

    {"devices": [{"key": "virtual:iphone-12", "allowed_mb": 1740.8, ...,
                  "chosen": {"unet": {"variant": "fp16-palette6-split_einsum_v2", "compute_units": "cpu_and_ne", ...},
                             "vae_decoder": null},
                  "candidates": [{"component": "vae_decoder", "variant": ..., "compute_units": ...,
                                  "verdict": "rejected", "reasons": [{"rule": ..., "message": ...}]}, ...]}]}

Entries this reader cannot understand yield no choice; every job of that (device, component) then gates.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Choice:
    """The plan's choice for one (device, component): a variant, or nothing fits (``variant`` None) and why."""

    variant: str | None
    compute_units: str | None = None
    allowed_mb: float | None = None
    reason: str = ""


def _devices(plan: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    devices = plan.get("devices")
    if isinstance(devices, list):
        yield from (d for d in devices if isinstance(d, Mapping) and isinstance(d.get("key"), str))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _why_none(device: Mapping[str, Any], component: str) -> str:
    """Why nothing was chosen: how many candidates were rejected, and the first one's first reason."""
    rejected = [c for c in device.get("candidates") or () if isinstance(c, Mapping)
                and c.get("component") == component and c.get("reasons")]
    if not rejected:
        return "the plan has no candidate for this component"
    first = rejected[0]
    reason = first["reasons"][0]
    message = reason.get("message", "") if isinstance(reason, Mapping) else str(reason)
    return (f"all {len(rejected)} candidate(s) rejected, e.g. {first.get('variant')} "
            f"{first.get('compute_units')}: {message}")


def plan_choices(plan: Mapping[str, Any] | None) -> dict[tuple[str, str], Choice]:
    """(device key, component) -> Choice for every device of the plan."""
    out: dict[tuple[str, str], Choice] = {}
    if not isinstance(plan, Mapping):
        return out
    for device in _devices(plan):
        allowed = _number(device.get("allowed_mb"))
        chosen = device.get("chosen")
        if not isinstance(chosen, Mapping):
            continue
        for component, cand in chosen.items():
            key = (device["key"], str(component))
            if cand is None:
                out[key] = Choice(None, None, allowed, _why_none(device, str(component)))
            elif isinstance(cand, Mapping) and isinstance(cand.get("variant"), str):
                units = cand.get("compute_units")
                out[key] = Choice(cand["variant"], units if isinstance(units, str) else None, allowed)
    return out
