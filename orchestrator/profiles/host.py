"""The ``host`` profile: this machine, derived at run time (RAM, cgroup memory limit, OS)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import psutil

from orchestrator.profiles.model import DeviceProfile, Memory, MemoryBasis, OsInfo

_CGROUP_FILES = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


def cgroup_limit_bytes(files: tuple[Path, ...] = _CGROUP_FILES) -> int | None:
    """The memory limit of this process's cgroup, or None when unlimited or unknown."""
    for f in files:
        try:
            text = f.read_text().strip()
        except OSError:
            continue
        if text == "max" or not text.isdigit():
            return None
        value = int(text)
        return value if value < (1 << 60) else None  # v1 writes a huge number for "unlimited"
    return None


def host_profile(*, total_bytes: int | None = None, cgroup_bytes: int | None = -1) -> DeviceProfile:
    """A profile for this machine. Its ceiling is the cgroup limit when set, else physical RAM."""
    total = total_bytes if total_bytes is not None else psutil.virtual_memory().total
    cgroup = cgroup_limit_bytes() if cgroup_bytes == -1 else cgroup_bytes
    ram_gb = max(1, round(total / 2**30))
    basis: MemoryBasis
    if cgroup is not None and cgroup < total:
        limit_mb, basis, source = cgroup // 2**20, "host-cgroup", "cgroup memory limit of this process"
    else:
        limit_mb, basis, source = total // 2**20, "host-ram", "physical RAM of this machine (no cgroup limit)"
    system = platform.system()
    os_name = {"Darwin": "macOS", "Linux": "Linux", "Windows": "Windows"}.get(system, "Linux")
    release = platform.mac_ver()[0] if os_name == "macOS" else platform.release()
    try:
        major = int(release.split(".")[0])
    except ValueError:
        major = 1
    return DeviceProfile(
        id="host",
        name=f"this machine ({platform.node() or 'host'}, {os.cpu_count()} cores)",
        family="host",
        product_types=(),
        chip=platform.processor() or platform.machine(),
        ram_gb=ram_gb,
        memory=Memory(app_limit_mb=int(min(limit_mb, ram_gb * 1024)), source=source, basis=basis),
        os=OsInfo(name=os_name, max=max(1, min(major, 99))),  # type: ignore[arg-type]
        sources=("derived at run time",),
        ane=None,  # the host harness never uses the Neural Engine
        gpu_cores=None,
    )
