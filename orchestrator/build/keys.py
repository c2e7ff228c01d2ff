"""Build keys: one hash of everything that determines an artifact's bytes.

    source id + cache identity (revision / commit / file fingerprint), component, input shapes and dtypes,
    variant, deployment target, compression settings, tool versions, and RECIPE (our own conversion code)

Computing a key reads no weights and imports neither torch nor coremltools (tool versions come from package
metadata), so a cache hit costs milliseconds. The key's inputs are stored next to the digest so that a
rebuild can say what changed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from orchestrator import __version__

# Bump when export/convert/compress code changes what an unchanged input produces (invalidates every cache).
RECIPE = "1"
TOOLS = ("coremltools", "torch", "diffusers", "transformers")


@functools.cache
def tool_versions() -> dict[str, str]:
    versions = {"mlfarm": __version__}
    for name in TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


@dataclass(frozen=True)
class BuildKey:
    digest: str
    inputs: Mapping[str, Any] = field(compare=False)

    @classmethod
    def of(cls, inputs: Mapping[str, Any]) -> BuildKey:
        text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
        # Keep the JSON form, so keys read back from the store compare equal (tuples become lists).
        return cls(hashlib.sha256(text.encode()).hexdigest(), json.loads(text))


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the key inputs that differ (to explain a rebuild)."""
    changed = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changed += changed_fields(a, b, f"{prefix}{name}.")
        elif a != b:
            changed.append(prefix + name)
    return changed
