"""DeviceProfile: what mlfarm knows about one Apple device model, every figure with its source.

A profile file (``device_profiles/<family>/<id>.yaml``) describes one *model*; a model sold with several
RAM sizes lists them all (``ram_gb: [8, 16]``) and gives per-size limits (``app_limit_mb: {8: 3072, 16: 5120}``).
Planning always works on a *resolved* profile (one RAM size): ``profile.at_ram(16)`` has the id
``ipad-pro-m1@16gb``. Resolving without a size picks the smallest, the safe assumption for a qualifier,
and records that it was assumed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.validate import field_error

Family = Literal["iphone", "ipad", "mac", "host"]
MemoryBasis = Literal["jetsam-observed", "jetsam-policy", "gpu-working-set", "host-cgroup", "host-ram"]

RamSpec = int | tuple[int, ...]
LimitSpec = int | dict[int, int]

ID_PATTERN = r"[a-z0-9][a-z0-9-]*(@[0-9]+gb)?"


@dataclass(frozen=True)
class Memory:
    app_limit_mb: LimitSpec = field(metadata={"gt": 0, "help": "jetsam per-process limit in MB, or {ram_gb: MB}"})
    source: str = field(metadata={"min_len": 1, "help": "where the figure comes from"})
    basis: MemoryBasis = field(metadata={"help": "how the limit was obtained"})
    app_limit_increased_mb: LimitSpec | None = field(
        default=None, metadata={"gt": 0, "help": "limit with com.apple.developer.kernel.increased-memory-limit"}
    )


@dataclass(frozen=True)
class Ane:
    cores: int = field(metadata={"gt": 0})
    tops: float | None = field(default=None, metadata={"gt": 0})


@dataclass(frozen=True)
class OsInfo:
    name: Literal["iOS", "iPadOS", "macOS", "Linux", "Darwin", "Windows"]
    max: int = field(metadata={"ge": 1, "le": 99, "help": "latest major OS version the device runs"})


KNOWN_UNVERIFIABLE = (
    "ram_gb", "ane.tops", "ane.cores", "gpu_cores", "os.max", "chip",
    "memory.app_limit_mb", "memory.app_limit_increased_mb",
)


@dataclass(frozen=True)
class DeviceProfile:
    id: str = field(metadata={"pattern": ID_PATTERN, "help": "lower-case id, the file name without .yaml"})
    name: str = field(metadata={"min_len": 1})
    family: Family
    product_types: tuple[str, ...] = field(metadata={
        "min_len": 1, "help": "ProductType / hw.model identifiers; quote them in [..] lists: [\"iPhone13,2\"]"})
    chip: str = field(metadata={"min_len": 1})
    ram_gb: RamSpec = field(metadata={"gt": 0, "min_len": 1,
                                      "help": "RAM in GB, or a list when the model ships with several"})
    memory: Memory
    os: OsInfo
    sources: tuple[str, ...] = field(metadata={"min_len": 1})
    ane: Ane | None = None
    gpu_cores: int | tuple[int, ...] | None = field(default=None, metadata={"gt": 0})
    year: int | None = field(default=None, metadata={"ge": 2007, "le": 2100})
    unverified: tuple[str, ...] = field(default=(), metadata={"help": "key paths whose values no source confirms"})
    notes: tuple[str, ...] = ()
    extra: bool = False
    # Set when this profile was resolved to one RAM size without being told which (smallest assumed).
    ram_assumed: bool = field(default=False, metadata={"internal": True})

    def __post_init__(self) -> None:
        rams = self.ram_options
        if len(set(rams)) != len(rams):
            raise ValueError(f"ram_gb: {list(rams)} lists a size twice")
        for key, spec in (("memory.app_limit_mb", self.memory.app_limit_mb),
                          ("memory.app_limit_increased_mb", self.memory.app_limit_increased_mb)):
            if isinstance(spec, dict) and set(spec) != set(rams):
                raise ValueError(
                    f"{key}: per-RAM limits are given for {sorted(spec)} GB but ram_gb lists {sorted(rams)}; "
                    "give one limit per RAM size"
                )
            if isinstance(spec, int) and spec > min(rams) * 1024:
                raise ValueError(f"{key}: {spec} MB exceeds the device's {min(rams)} GB of RAM")
        self._check_increased_limit(rams)
        for k in self.unverified:
            if k not in KNOWN_UNVERIFIABLE:
                allowed = ", ".join(KNOWN_UNVERIFIABLE)
                raise ValueError(f"unverified: {k!r} is not a key that can be marked; use one of {allowed}")

    def _check_increased_limit(self, rams: tuple[int, ...]) -> None:
        """The increased-memory-limit entitlement raises the limit: a figure below the normal one is a typo."""
        normal, increased = self.memory.app_limit_mb, self.memory.app_limit_increased_mb
        if increased is None:
            return
        for ram in rams:
            low = normal.get(ram) if isinstance(normal, dict) else normal
            high = increased.get(ram) if isinstance(increased, dict) else increased
            if low is not None and high is not None and high < low:
                raise field_error("memory.app_limit_increased_mb", f"{high} MB is below app_limit_mb ({low} MB)"
                                  + (f" at {ram} GB" if len(rams) > 1 else ""),
                                  "the increased limit is at least the normal one; check both figures")

    # ---- RAM sizes -------------------------------------------------------------------------
    @property
    def ram_options(self) -> tuple[int, ...]:
        return self.ram_gb if isinstance(self.ram_gb, tuple) else (self.ram_gb,)

    @property
    def resolved(self) -> bool:
        return len(self.ram_options) == 1

    @property
    def model_id(self) -> str:
        """The file-level id, without any ``@NNgb`` suffix."""
        return self.id.split("@", 1)[0]

    def at_ram(self, ram_gb: int | None = None) -> DeviceProfile:
        """This profile resolved to one RAM size (the smallest when ``ram_gb`` is None)."""
        rams = self.ram_options
        if ram_gb is None:
            if len(rams) == 1:
                return self
            ram_gb, assumed = min(rams), True
        else:
            assumed = False
        if ram_gb not in rams:
            raise KeyError(ram_gb)
        if len(rams) == 1:
            return self

        def pick(spec: LimitSpec | None) -> int | None:
            return spec.get(ram_gb) if isinstance(spec, dict) else spec

        limit = pick(self.memory.app_limit_mb)
        assert limit is not None
        memory = dataclasses.replace(self.memory, app_limit_mb=limit,
                                     app_limit_increased_mb=pick(self.memory.app_limit_increased_mb))
        return dataclasses.replace(self, id=f"{self.model_id}@{ram_gb}gb", ram_gb=ram_gb, memory=memory,
                                   ram_assumed=assumed)

    # ---- limits (resolved profiles) ----------------------------------------------------------
    def limit_mb(self, *, increased: bool = False) -> int:
        """The memory ceiling in MB; with ``increased`` the entitlement figure where one is known."""
        p = self.at_ram()
        base = p.memory.app_limit_mb
        assert isinstance(base, int)
        inc = p.memory.app_limit_increased_mb
        if increased and isinstance(inc, int):
            return inc
        return base

    def is_verified(self, key: str) -> bool:
        return key not in self.unverified

    @property
    def os_name(self) -> str:
        return self.os.name

    @property
    def has_usable_ane(self) -> bool:
        """Third-party Core ML can use the Neural Engine from A12 on; A11's cannot be used, Intel Macs have none."""
        return self.ane is not None and not self.chip.startswith("A11")

    def summary_limits(self) -> str:
        spec = self.memory.app_limit_mb
        if isinstance(spec, dict):
            return "/".join(f"{v:,}" for _, v in sorted(spec.items()))
        return f"{spec:,}"
