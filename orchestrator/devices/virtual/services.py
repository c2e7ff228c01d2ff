"""Lockdown services of the emulated device other than DVT: installation_proxy, AFC, house_arrest, crash reports.

Each factory takes the device and returns the connection handler lockdownd hands out on ``StartService``.
Message shapes and error strings follow what iOS sends (and what pymobiledevice3 checks):

    installation_proxy  {Command: Install|Upgrade, PackagePath} -> {PercentComplete, Status}... {Status: Complete}
                        or {Error, ErrorDescription};  Uninstall likewise;  Lookup -> {LookupResult};
                        Browse -> {CurrentList}... {Status: Complete}
    house_arrest        {Command: VendContainer|VendDocuments, Identifier} -> {Status: Complete}, then AFC over
                        the app's container; {Error: ApplicationLookupFailed} for an unknown app
    crashreportmover    sends "ping\\0" once pending reports are in place (ours are written in place)
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Callable
from typing import Any

from orchestrator.devices.virtual.afc import AfcServer
from orchestrator.devices.virtual.apps import InstallFailure
from orchestrator.devices.virtual.device import Handler, VirtualDevice
from orchestrator.devices.virtual.framing import read_plist, write_plist

ServiceFactory = Callable[[VirtualDevice], Handler]

INSTALL_STAGES = (
    (5, "CreatingStagingDirectory"), (15, "ExtractingPackage"), (20, "InspectingPackage"),
    (30, "PreflightingApplication"), (40, "VerifyingApplication"), (50, "CreatingContainer"),
    (60, "InstallingApplication"), (70, "PostflightingApplication"), (80, "SandboxingApplication"),
    (90, "GeneratingApplicationMap"),
)
SIGNING_FAILURE = {
    "Error": "ApplicationVerificationFailed", "ErrorDetail": -402620395,
    "ErrorDescription": "Failed to verify code signature of /private/var/installd/Library/Caches/"
                        "com.apple.mobile.installd.staging/temp.x/extracted/Payload/MlfarmHarness.app : "
                        "0xe8008015 (A valid provisioning profile for this executable was not found.)",
}


def afc_media(device: VirtualDevice) -> Handler:
    return AfcServer(device.media, device_model=device.identity.product_type).serve


def crash_report_copy(device: VirtualDevice) -> Handler:
    return AfcServer(device.crash_reports, device_model=device.identity.product_type).serve


def crash_report_mover(device: VirtualDevice) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ping\0")
        await writer.drain()

    return handler


def house_arrest(device: VirtualDevice) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_plist(reader)
        if request is None:
            return
        command, bundle_id = request.get("Command"), str(request.get("Identifier", ""))
        app = device.apps.get(bundle_id)
        if command not in ("VendContainer", "VendDocuments"):
            await write_plist(writer, {"Error": "UnknownCommand"})
            return
        if app is None or app.system:
            await write_plist(writer, {"Error": "ApplicationLookupFailed"})
            return
        if command == "VendContainer" and not app.entitlements.get("get-task-allow"):
            await write_plist(writer, {"Error": "InstallationLookupFailed"})
            return
        await write_plist(writer, {"Status": "Complete"})
        await AfcServer(app.container, device_model=device.identity.product_type).serve(reader, writer)

    return handler


def installation_proxy(device: VirtualDevice) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_plist(reader)) is not None:
            command = request.get("Command")
            options = request.get("ClientOptions") or {}
            if command in ("Install", "Upgrade"):
                await _install(device, writer, str(request.get("PackagePath", "")))
            elif command == "Uninstall":
                await _uninstall(device, writer, str(request.get("ApplicationIdentifier", "")))
            elif command == "Lookup":
                await write_plist(writer, {"LookupResult": _lookup(device, options), "Status": "Complete"})
            elif command == "Browse":
                apps = list(_lookup(device, options).values())
                await write_plist(writer, {"CurrentIndex": 0, "CurrentAmount": len(apps), "Total": len(apps),
                                           "CurrentList": apps, "Status": "BrowsingApplications"})
                await write_plist(writer, {"Status": "Complete"})
            elif command == "CheckCapabilitiesMatch":
                await write_plist(writer, {"LookupResult": True, "Status": "Complete"})
            else:
                await write_plist(writer, {"Error": "UnknownCommand",
                                           "ErrorDescription": f"Unknown command {command!r}"})

    return handler


async def _install(device: VirtualDevice, writer: asyncio.StreamWriter, package_path: str) -> None:
    local = device.media / posixpath.normpath("/" + package_path).lstrip("/")
    for percent, status in INSTALL_STAGES[:4]:
        await write_plist(writer, {"PercentComplete": percent, "Status": status})
    if device.take_fault("fail-install"):
        await write_plist(writer, SIGNING_FAILURE)
        return
    try:
        await asyncio.to_thread(device.apps.install, local)
    except InstallFailure as exc:
        await write_plist(writer, {"Error": exc.code, "ErrorDescription": exc.description})
        return
    for percent, status in INSTALL_STAGES[4:]:
        await write_plist(writer, {"PercentComplete": percent, "Status": status})
    await write_plist(writer, {"Status": "Complete"})


async def _uninstall(device: VirtualDevice, writer: asyncio.StreamWriter, bundle_id: str) -> None:
    await write_plist(writer, {"PercentComplete": 50, "Status": "RemovingApplication"})
    try:
        for pid in [p.pid for p in device.processes.apps.values() if p.bundle_id == bundle_id]:
            device.processes.signal(pid, 9)
        device.apps.uninstall(bundle_id)
    except InstallFailure as exc:
        await write_plist(writer, {"Error": exc.code, "ErrorDescription": exc.description})
        return
    await write_plist(writer, {"Status": "Complete"})


def _lookup(device: VirtualDevice, options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    kind = options.get("ApplicationType", "Any")
    wanted = options.get("BundleIDs")
    attributes = options.get("ReturnAttributes")
    result: dict[str, dict[str, Any]] = {}
    for app in device.apps.all():
        if wanted is not None and app.bundle_id not in wanted:
            continue
        if kind in ("User", "System") and (kind == "System") != app.system:
            continue
        entry = app.lookup_entry()
        if attributes:
            entry = {k: v for k, v in entry.items() if k in attributes}
            if "StaticDiskUsage" in attributes:
                entry["StaticDiskUsage"] = sum(f.stat().st_size for f in app.bundle_path.rglob("*") if f.is_file())
            if "DynamicDiskUsage" in attributes:
                entry["DynamicDiskUsage"] = sum(f.stat().st_size for f in app.container.rglob("*") if f.is_file())
        result[app.bundle_id] = entry
    return result
