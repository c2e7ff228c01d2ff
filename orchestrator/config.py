"""Settings, read once from the environment and the command line, then passed in (never read deep inside).

Environment variables:
    MLFARM_DB             results database (default: .mlfarm/results.db under the working folder)
    MLFARM_ARTIFACTS      artifact store (default: artifacts/ under the working folder)
    MLFARM_PROFILE_PATH   extra profile folders, separated by ':' (their profiles override built-in ones)
    USBMUXD_SOCKET_ADDRESS  usbmuxd address for real/virtual devices (Unix socket path or host:port)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """A data folder shipped with mlfarm: bundled into the wheel, or at the repository root when editable."""
    bundled = _PACKAGE / "_bundled" / name
    if bundled.is_dir():
        return bundled
    return _PACKAGE.parent / name


def builtin_profiles_dir() -> Path:
    return resource_dir("device_profiles")


def contract_dir() -> Path:
    return resource_dir("harness_app") / "contract"


def examples_dir() -> Path:
    return resource_dir("examples")


@dataclass(frozen=True)
class Settings:
    workdir: Path
    db_path: Path
    artifacts_dir: Path
    profile_dirs: tuple[Path, ...] = ()  # user folders, later ones override earlier ones and built-ins
    usbmux_address: str | None = None
    debug: bool = False
    builtin_profiles: Path = field(default_factory=builtin_profiles_dir)

    @classmethod
    def load(
        cls,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        profile_dirs: tuple[Path, ...] = (),
        db: Path | None = None,
        artifacts: Path | None = None,
        usbmux: str | None = None,
        debug: bool = False,
    ) -> Settings:
        env = os.environ if env is None else env
        workdir = (cwd or Path.cwd()).resolve()
        env_dirs = tuple(Path(p) for p in env.get("MLFARM_PROFILE_PATH", "").split(os.pathsep) if p)
        return cls(
            workdir=workdir,
            db_path=Path(db or env.get("MLFARM_DB") or workdir / ".mlfarm" / "results.db"),
            artifacts_dir=Path(artifacts or env.get("MLFARM_ARTIFACTS") or workdir / "artifacts"),
            profile_dirs=env_dirs + tuple(profile_dirs),
            usbmux_address=usbmux or env.get("USBMUXD_SOCKET_ADDRESS") or None,
            debug=debug,
        )
