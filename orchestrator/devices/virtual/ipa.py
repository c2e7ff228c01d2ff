"""A placeholder harness .ipa for the virtual device: a stand-in for the Swift app, which cannot be built here.

The package has the shape installation_proxy expects (``Payload/MlfarmHarness.app/Info.plist``) and the
entitlements file Xcode leaves in development builds. It holds no code a device could run: the virtual
device recognises ``MLFarmVirtualStandIn`` in its Info.plist and runs the Python host harness instead.
A real device rejects it (no signature); give real devices the .ipa built by ``mlfarm harness build``.
"""

from __future__ import annotations

import plistlib
import zipfile
from pathlib import Path

from orchestrator import __version__
from orchestrator.devices.virtual.apps import ENTITLEMENTS_FILE, INCREASED_LIMIT, STAND_IN_KEY
from orchestrator.harness.contract import SCHEMA_VERSION

HARNESS_BUNDLE_ID = "dev.mlfarm.harness"
HARNESS_EXECUTABLE = "MLFarmHarness"  # the Swift app's executable (harness_app/project.yml)


def placeholder_info_plist(bundle_id: str = HARNESS_BUNDLE_ID) -> dict[str, object]:
    return {
        "CFBundleIdentifier": bundle_id, "CFBundleName": HARNESS_EXECUTABLE,
        "CFBundleDisplayName": "mlfarm harness (virtual-device stand-in)", "CFBundleExecutable": HARNESS_EXECUTABLE,
        "CFBundlePackageType": "APPL", "CFBundleShortVersionString": __version__,
        "CFBundleVersion": f"{__version__}+contract{SCHEMA_VERSION}", "MinimumOSVersion": "16.0",
        "UIDeviceFamily": [1, 2], "UIFileSharingEnabled": True, "LSSupportsOpeningDocumentsInPlace": True,
        STAND_IN_KEY: {"runs": "python -m orchestrator.harness", "note": "virtual devices only; not a real app"},
    }


def build_placeholder_ipa(dest: Path, *, bundle_id: str = HARNESS_BUNDLE_ID,
                          increased_memory_limit: bool = False) -> Path:
    """Write the stand-in .ipa to ``dest`` (a file path) and return it. Deterministic for equal arguments."""
    entitlements = {"application-identifier": f"MLFARMTEAM.{bundle_id}", "get-task-allow": True}
    if increased_memory_limit:
        entitlements[INCREASED_LIMIT] = True
    app = f"Payload/{HARNESS_EXECUTABLE}.app"
    files = {
        f"{app}/Info.plist": plistlib.dumps(placeholder_info_plist(bundle_id), fmt=plistlib.FMT_BINARY),
        f"{app}/{ENTITLEMENTS_FILE}": plistlib.dumps(entitlements),
        f"{app}/{HARNESS_EXECUTABLE}": b"#!/bin/sh\n# mlfarm virtual-device stand-in: not executable on iOS\n",
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = 0o755 << 16 if name.endswith(HARNESS_EXECUTABLE) else 0o644 << 16
            archive.writestr(info, data)
    return dest

