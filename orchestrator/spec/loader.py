"""Load a release spec from YAML and check it against the catalog and the model source."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from orchestrator.errors import Problem, SpecError, UnknownProfileError
from orchestrator.profiles.catalog import Catalog
from orchestrator.spec.model import ReleaseSpec
from orchestrator.validate import display_path, load_yaml, parse

DeviceKind = Literal["host", "virtual", "catalog", "connected", "all", "usb"]


@dataclass(frozen=True)
class DeviceRef:
    """One entry of ``devices:``.

    ``host`` (this machine, its own limits), ``host:ID`` (this machine under profile ID's limits),
    ``virtual:ID`` (an emulated device with profile ID), ``usb:UDID`` (one connected device),
    ``connected`` (every connected device), ``all`` (every catalog profile; planning only),
    ``ID`` (a catalog profile; planning only unless a matching device is connected).
    """

    kind: DeviceKind
    text: str
    profile_id: str | None = None
    udid: str | None = None

    @property
    def runnable(self) -> bool:
        return self.kind in ("host", "virtual", "usb", "connected")

    @classmethod
    def parse(cls, text: str) -> DeviceRef:
        text = text.strip()
        head, sep, rest = text.partition(":")
        if text in ("host", "connected", "all"):
            return cls(text, text)  # type: ignore[arg-type]
        if sep and head == "host" and rest:
            return cls("host", text, profile_id=rest)
        if sep and head == "virtual" and rest:
            return cls("virtual", text, profile_id=rest)
        if sep and head == "usb" and rest:
            return cls("usb", text, udid=rest)
        if sep:
            raise ValueError(f"unknown device kind {head!r} in {text!r}; use host, host:ID, virtual:ID, usb:UDID, "
                             "connected, all or a profile id")
        return cls("catalog", text, profile_id=text)


def parse_device_refs(items: tuple[str, ...] | list[str]) -> list[DeviceRef]:
    return [DeviceRef.parse(t) for t in items]


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# Checks contributed by other stages (e.g. the model source validating component names and shapes).
# Each takes the spec and a file name and returns problems; registered at import time by those stages.
SPEC_CHECKS: list[Callable[[ReleaseSpec, str], list[Problem]]] = []
# Run after every check passed: each returns the spec completed from what only its stage knows (e.g. the
# inputs a prebuilt Core ML package declares). Same registration as SPEC_CHECKS.
SPEC_RESOLVERS: list[Callable[[ReleaseSpec, str], ReleaseSpec]] = []


def check_devices(spec: ReleaseSpec, catalog: Catalog | None, file: str) -> list[Problem]:
    problems = []
    for i, text in enumerate(spec.devices):
        key = f"devices[{i}]"
        try:
            ref = DeviceRef.parse(text)
        except ValueError as exc:
            problems.append(Problem(file, key, str(exc), "e.g. host, virtual:iphone-12, usb:UDID or a profile id"))
            continue
        if catalog is not None and ref.profile_id is not None:
            try:
                catalog.get(ref.profile_id)
            except UnknownProfileError as exc:
                problems.append(Problem(file, key, exc.message, exc.fix))
    if len(set(spec.devices)) != len(spec.devices):
        problems.append(Problem(file, "devices", "a device is listed twice", "list each device once"))
    return problems


BUDGET_FAMILIES = ("iphone", "ipad", "mac", "host", "*")


def check_budgets(spec: ReleaseSpec, file: str) -> list[Problem]:
    """Latency budgets name components of the model and device families (a typo would silently gate nothing)."""
    problems = []
    components = sorted(spec.model.components)
    for component, per in spec.gates.latency_budget_ms.items():
        key = f"gates.latency_budget_ms.{component}"
        if component != "*" and component not in spec.model.components:
            problems.append(Problem(file, key, "budget for a component the model does not have",
                                    f"use one of: {', '.join([*components, '*'])}"))
        for family in per:
            if family not in BUDGET_FAMILIES:
                problems.append(Problem(file, f"{key}.{family}", "unknown device family",
                                        f"use one of: {', '.join(BUDGET_FAMILIES)}"))
    return problems


def load_spec(path: Path, *, catalog: Catalog | None = None, run_checks: bool = True) -> ReleaseSpec:
    """Parse and check a spec; raise SpecError listing every problem (file, key path, fix)."""
    name = display_path(path)
    data, problems = load_yaml(path, display=name)
    spec = None
    if not problems:
        spec, problems = parse(ReleaseSpec, data, file=name)
    if spec is not None:
        problems += check_devices(spec, catalog, name) + check_budgets(spec, name)
        if run_checks:
            for check in SPEC_CHECKS:
                problems += check(spec, name)
    if problems or spec is None:
        raise SpecError(problems)
    if run_checks:
        for resolver in SPEC_RESOLVERS:
            spec = resolver(spec, name)
    return dataclasses.replace(spec, path=path.resolve(), digest=_digest(data))
