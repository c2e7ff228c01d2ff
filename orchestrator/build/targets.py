"""Which Core ML deployment target (opset) each artifact is converted for, and why.

An artifact's target is the lowest OS its variant can load on (the registry in ``orchestrator/variants.py``:
uncompressed iOS 15, int8/palettes iOS 16, grouped palettes iOS 18), raised to the app's own deployment target
when the spec gives one (``app.min_ios`` / ``app.min_macos``; with both, the lower of the two, so neither app
loses a model). It never depends on which *other* variants are requested: adding ``palette4-g16`` to a spec
does not change, and so does not rebuild, its siblings.

Consequence for conversion: variants of one (component, attention, precision) that land on different targets
need one conversion per target (grouped palettes need the iOS 18 opset, which coremltools only produces at
conversion time). The torch export is shared by all of them.

    >>> from orchestrator.variants import Variant
    >>> deployment_target(Variant("fp16", "palette4-g16", "original")).name
    'iOS18'
    >>> deployment_target(Variant("fp16", "none", "original"), min_ios=17).macos
    14
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.variants import Variant

# iOS major -> the macOS major that shares its Core ML opset (coremltools' target enum pairs them).
_MACOS_FOR_IOS = {15: 12, 16: 13, 17: 14, 18: 15, 26: 26}
_IOS_FOR_MACOS = {m: i for i, m in _MACOS_FOR_IOS.items()}


@dataclass(frozen=True, order=True)
class DeploymentTarget:
    ios: int

    def __post_init__(self) -> None:
        if self.ios not in _MACOS_FOR_IOS:
            raise ValueError(f"no Core ML deployment target for iOS {self.ios}; known: {sorted(_MACOS_FOR_IOS)}")

    @property
    def macos(self) -> int:
        return _MACOS_FOR_IOS[self.ios]

    @property
    def name(self) -> str:
        return f"iOS{self.ios}"

    def coremltools(self) -> Any:
        import coremltools as ct

        return getattr(ct.target, self.name)

    def to_json(self) -> dict[str, Any]:
        return {"iOS": self.ios, "macOS": self.macos, "coremltools": self.name}


def _snap(ios: int) -> int:
    """The first known target at or above ``ios`` (capped at the newest)."""
    return next((t for t in sorted(_MACOS_FOR_IOS) if t >= ios), max(_MACOS_FOR_IOS))


def _ios_for_macos(macos: int) -> int:
    return next((i for m, i in sorted(_IOS_FOR_MACOS.items()) if m >= macos), max(_MACOS_FOR_IOS))


def deployment_target(variant: Variant, *, min_ios: int | None = None,
                      min_macos: int | None = None) -> DeploymentTarget:
    floor = variant.min_os("iOS")
    app_floors = [f for f in (min_ios, _ios_for_macos(min_macos) if min_macos else None) if f]
    app_floor = min(app_floors) if app_floors else 0
    return DeploymentTarget(_snap(max(floor, app_floor)))
