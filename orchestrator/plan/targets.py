"""Which devices a plan covers: the spec's ``devices`` (or ``--devices``) resolved to PlanTargets."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.errors import UsageError
from orchestrator.plan.select import PlanTarget
from orchestrator.profiles import Catalog, host_profile
from orchestrator.spec.loader import DeviceRef


def every_configuration(catalog: Catalog) -> list[PlanTarget]:
    """Every catalog model at every RAM size it ships with (the host excluded)."""
    out = []
    for p in catalog:
        if p.family == "host":
            continue
        for ram in p.ram_options:
            resolved = p.at_ram(ram) if len(p.ram_options) > 1 else p
            out.append(PlanTarget(resolved.id, resolved))
    return out


def resolve_targets(refs: Sequence[DeviceRef], catalog: Catalog,
                    connected: Sequence[PlanTarget] = ()) -> list[PlanTarget]:
    """PlanTargets for device references; ``connected`` are the devices a usbmux backend found."""
    targets: list[PlanTarget] = []
    for ref in refs:
        if ref.kind == "all":
            targets += every_configuration(catalog)
        elif ref.kind == "connected":
            targets += list(connected)
        elif ref.kind == "host" and ref.profile_id is None:
            targets.append(PlanTarget("host", host_profile(), runs_on="mil-executor"))
        elif ref.kind in ("host", "virtual") and ref.profile_id:
            targets.append(PlanTarget(ref.text, catalog.get(ref.profile_id), runs_on="mil-executor"))
        elif ref.kind == "catalog" and ref.profile_id:
            targets.append(PlanTarget(ref.profile_id, catalog.get(ref.profile_id)))
        elif ref.kind == "usb":
            found = [t for t in connected if t.key == ref.text]
            if not found:
                raise UsageError(f"no connected device {ref.udid}", fix="run `mlfarm devices` to list them")
            targets += found
    seen: set[str] = set()
    unique = []
    for t in targets:
        if t.key not in seen:
            seen.add(t.key)
            unique.append(t)
    return unique
