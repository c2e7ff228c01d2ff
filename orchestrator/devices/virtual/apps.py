"""Installed apps of an emulated device: install from an .ipa, containers, lookup entries.

Layout under the device folder (created on install, removed on uninstall):

    Applications/<bundle id>/<Name>.app/     the unpacked bundle (Info.plist, entitlements)
    Containers/<bundle id>/                  the data container: Documents/, Library/, tmp/

The registry is rebuilt from ``Applications/`` when a device starts, so a state folder survives restarts.
An app whose Info.plist carries ``MLFarmVirtualStandIn`` is the harness stand-in (see ``ipa.py``): launching
it runs the Python host harness. Any other app launches as an idle process.
"""

from __future__ import annotations

import plistlib
import shutil
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

STAND_IN_KEY = "MLFarmVirtualStandIn"
ENTITLEMENTS_FILE = "archived-expanded-entitlements.xcent"
INCREASED_LIMIT = "com.apple.developer.kernel.increased-memory-limit"
MAX_IPA_BYTES = 2 << 30
MAX_MEMBER_BYTES = 1 << 30  # one unpacked entry (zipfile never inflates past the size the entry declares)
MAX_UNPACKED_BYTES = 4 << 30
MAX_MEMBERS = 100_000

SYSTEM_APPS = (
    ("com.apple.Preferences", "Settings", "Preferences"),
    ("com.apple.mobilesafari", "Safari", "MobileSafari"),
)


class InstallFailure(Exception):
    """An installation_proxy error: ``code`` is what iOS puts in ``Error``."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


@dataclass(frozen=True)
class AppRecord:
    bundle_id: str
    name: str
    executable: str
    version: str
    short_version: str
    bundle_path: Path
    container: Path
    info: dict[str, Any] = field(repr=False)
    entitlements: dict[str, Any] = field(default_factory=dict, repr=False)
    system: bool = False

    @property
    def is_harness_stand_in(self) -> bool:
        return bool(self.info.get(STAND_IN_KEY))

    @property
    def increased_memory_limit(self) -> bool:
        return bool(self.entitlements.get(INCREASED_LIMIT))

    @property
    def documents(self) -> Path:
        return self.container / "Documents"

    def lookup_entry(self) -> dict[str, Any]:
        """What installation_proxy's Lookup/Browse report for this app."""
        token = uuid.uuid5(uuid.NAMESPACE_URL, self.bundle_id).hex.upper()
        entry = {k: v for k, v in self.info.items() if isinstance(v, str | int | bool | list | dict)}
        entry.update({
            "CFBundleIdentifier": self.bundle_id, "CFBundleName": self.name, "CFBundleExecutable": self.executable,
            "CFBundleVersion": self.version, "CFBundleShortVersionString": self.short_version,
            "ApplicationType": "System" if self.system else "User",
            "Path": f"/private/var/containers/Bundle/Application/{token}/{self.bundle_path.name}",
            "Container": f"/private/var/mobile/Containers/Data/Application/{token}",
            "Entitlements": self.entitlements, "IsAppClip": False,
        })
        if not self.system:
            entry["SignerIdentity"] = "Apple Development: mlfarm virtual device"
        return entry


class AppRegistry:
    """The apps installed on one device; owns ``Applications/`` and ``Containers/`` under ``root``."""

    def __init__(self, root: Path) -> None:
        self.apps_dir = root / "Applications"
        self.containers_dir = root / "Containers"
        self.apps_dir.mkdir(parents=True, exist_ok=True)
        self.containers_dir.mkdir(parents=True, exist_ok=True)
        self._apps: dict[str, AppRecord] = {}
        for bundle_dir in sorted(self.apps_dir.iterdir()):
            app = next(bundle_dir.glob("*.app"), None)
            if app is not None:
                record = self._record(app)
                self._apps[record.bundle_id] = record
        for bundle_id, name, executable in SYSTEM_APPS:
            self._apps.setdefault(bundle_id, AppRecord(
                bundle_id, name, executable, "1", "16.0", Path(f"/Applications/{executable}.app"),
                self.containers_dir / bundle_id, {"CFBundleIdentifier": bundle_id}, system=True))

    def get(self, bundle_id: str) -> AppRecord | None:
        return self._apps.get(bundle_id)

    def all(self) -> list[AppRecord]:
        return list(self._apps.values())

    def install(self, ipa: Path) -> AppRecord:
        """Unpack ``ipa``, replacing an installed app with the same bundle id (its container is kept)."""
        if not ipa.is_file():
            raise InstallFailure("PackageExtractionFailed", f"no package at {ipa.name}")
        if ipa.stat().st_size > MAX_IPA_BYTES:
            raise InstallFailure("PackageExtractionFailed", "package too large")
        staging = self.apps_dir / f".staging-{uuid.uuid4().hex}"
        try:
            app_dir = _extract(ipa, staging)
            record = self._record(app_dir)
            if record.bundle_id in self._apps and self._apps[record.bundle_id].system:
                raise InstallFailure("InstallProhibited", f"{record.bundle_id} is a system app")
            final = self.apps_dir / record.bundle_id
            shutil.rmtree(final, ignore_errors=True)
            final.mkdir()
            app_dir.rename(final / app_dir.name)
            record = self._record(final / app_dir.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        for sub in ("Documents", "Library/Caches", "tmp"):
            (record.container / sub).mkdir(parents=True, exist_ok=True)
        self._apps[record.bundle_id] = record
        return record

    def uninstall(self, bundle_id: str) -> None:
        record = self._apps.get(bundle_id)
        if record is None:
            return  # iOS reports Complete for an app that is not there
        if record.system:
            raise InstallFailure("UninstallProhibited", f"{bundle_id} is a system app")
        shutil.rmtree(self.apps_dir / bundle_id, ignore_errors=True)
        shutil.rmtree(record.container, ignore_errors=True)
        del self._apps[bundle_id]

    def _record(self, app_dir: Path) -> AppRecord:
        info_path = app_dir / "Info.plist"
        try:
            info = plistlib.loads(info_path.read_bytes())
        except (OSError, plistlib.InvalidFileException, ValueError) as exc:
            raise InstallFailure("PackageInspectionFailed",
                                 f"Failed to load Info.plist from bundle at path {app_dir.name}") from exc
        bundle_id = info.get("CFBundleIdentifier") if isinstance(info, dict) else None
        if not isinstance(bundle_id, str) or not bundle_id or "/" in bundle_id or bundle_id.startswith("."):
            raise InstallFailure("PackageInspectionFailed", f"Bundle at path {app_dir.name} has no valid "
                                 "CFBundleIdentifier in its Info.plist")
        entitlements: dict[str, Any] = {}
        ent_path = app_dir / ENTITLEMENTS_FILE
        if ent_path.is_file():
            try:
                loaded = plistlib.loads(ent_path.read_bytes())
                entitlements = loaded if isinstance(loaded, dict) else {}
            except (plistlib.InvalidFileException, ValueError):
                entitlements = {}
        executable = str(info.get("CFBundleExecutable") or app_dir.stem)
        return AppRecord(
            bundle_id=bundle_id, name=str(info.get("CFBundleName") or app_dir.stem), executable=executable,
            version=str(info.get("CFBundleVersion", "1")), short_version=str(info.get("CFBundleShortVersionString",
                                                                                   "1.0")),
            bundle_path=app_dir, container=self.containers_dir / bundle_id, info=info, entitlements=entitlements)


def _check_sizes(members: list[zipfile.ZipInfo]) -> None:
    """Refuse a package that would unpack to more than the caps (a zip bomb), before extracting anything."""
    if len(members) > MAX_MEMBERS:
        raise InstallFailure("PackageExtractionFailed", f"package holds {len(members)} entries")
    total = 0
    for member in members:
        if member.file_size > MAX_MEMBER_BYTES:
            raise InstallFailure("PackageExtractionFailed", f"{member.filename} unpacks to {member.file_size} bytes")
        total += member.file_size
    if total > MAX_UNPACKED_BYTES:
        raise InstallFailure("PackageExtractionFailed", f"package unpacks to {total} bytes")


def _extract(ipa: Path, staging: Path) -> Path:
    """Extract ``Payload/<Name>.app`` into ``staging``; refuse anything that leaves it."""
    try:
        with zipfile.ZipFile(ipa) as archive:
            names = archive.namelist()
            apps = {PurePosixPath(n).parts[1] for n in names
                    if n.startswith("Payload/") and len(PurePosixPath(n).parts) > 2}
            apps = {a for a in apps if a.endswith(".app")}
            if len(apps) != 1:
                raise InstallFailure("PackageInspectionFailed", "Payload must hold exactly one .app bundle")
            _check_sizes(archive.infolist())
            for member in archive.infolist():
                parts = PurePosixPath(member.filename).parts
                if member.filename.startswith("/") or ".." in parts:
                    raise InstallFailure("PackageExtractionFailed", f"unsafe path in package: {member.filename}")
                if parts[:1] == ("Payload",):
                    archive.extract(member, staging)
    except zipfile.BadZipFile as exc:
        raise InstallFailure("PackageExtractionFailed", "the package is not a valid zip archive") from exc
    return staging / "Payload" / apps.pop()
