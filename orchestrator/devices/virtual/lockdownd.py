"""The emulated lockdownd (port 62078): device values, sessions with in-place TLS, pairing, service start.

Every reply echoes ``Request``; failures carry the ``Error`` strings pymobiledevice3 maps to its exceptions
(``InvalidHostID``, ``MissingValue``, ``InvalidService``, ``NoRunningSession``). ``StartSession`` with a
trusted HostID answers ``EnableSessionSSL`` and upgrades the same connection to TLS (server side).
``StartService`` hands out a one-shot port the client then reaches with a usbmux ``Connect``.

DVT is offered over lockdown only below iOS 17, like on a real device (pymobiledevice3 issue #1807);
nothing here emulates the iOS 17+ RSD/CoreDeviceProxy path, so a device reporting 17.x refuses both.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from typing import Any

from orchestrator.devices.virtual.device import Handler, VirtualDevice
from orchestrator.devices.virtual.dvt import dvt_server
from orchestrator.devices.virtual.framing import read_plist, write_plist
from orchestrator.devices.virtual.services import (
    ServiceFactory,
    afc_media,
    crash_report_copy,
    crash_report_mover,
    house_arrest,
    installation_proxy,
)

DVT_SERVICE = "com.apple.instruments.remoteserver.DVTSecureSocketProxy"
# service name -> (factory, TLS from the first byte)
SERVICES: dict[str, tuple[ServiceFactory, bool]] = {
    "com.apple.afc": (afc_media, False),
    "com.apple.mobile.installation_proxy": (installation_proxy, False),
    "com.apple.mobile.house_arrest": (house_arrest, False),
    "com.apple.crashreportcopymobile": (crash_report_copy, False),
    "com.apple.crashreportmover": (crash_report_mover, False),
    DVT_SERVICE: (dvt_server, True),
}
VIRTUAL_DOMAIN = "dev.mlfarm.virtual"
MAX_SETTINGS = 256  # values a client may set: enough for any tool, bounded against a flood


def domains(device: VirtualDevice) -> dict[str, dict[str, Any]]:
    """The lockdown domains mlfarm and pymobiledevice3 read, with this device's values."""
    usage = shutil.disk_usage(device.root)
    total = 64 * 10**9
    ident = device.identity
    return {
        "com.apple.disk_usage": {"TotalDiskCapacity": total, "TotalDataCapacity": total - 8 * 10**9,
                                 "TotalSystemCapacity": 8 * 10**9, "AmountDataAvailable": min(usage.free, total),
                                 "TotalDataAvailable": min(usage.free, total)},
        "com.apple.mobile.battery": dict(device.battery),
        "com.apple.security.mac.amfi": {"DeveloperModeStatus": True},
        "com.apple.international": {"Language": "en", "Locale": "en_US"},
        "com.apple.mobile.iTunes": {"MinITunesVersion": "12.12"},
        VIRTUAL_DOMAIN: {"Emulated": True, "ProfileID": ident.profile.id, "EmulatedOSVersion": ident.os_version,
                         "Notes": "mlfarm virtual device: limits enforced by mlfarm, latencies are the host's"},
    }


class LockdownSession:
    """One client connection to lockdownd; lives until the client closes it."""

    def __init__(self, device: VirtualDevice, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.device = device
        self.reader = reader
        self.writer = writer
        self.host_id: str | None = None

    async def run(self) -> None:
        while (request := await read_plist(self.reader)) is not None:
            name = str(request.get("Request", ""))
            reply = {"Request": name, **self.handle(name, request)}
            await write_plist(self.writer, reply)
            if name == "StartSession" and "Error" not in reply:
                assert self.host_id is not None
                await self.writer.start_tls(self.device.identity.server_context(self.host_id))
            if name == "Goodbye":
                return

    def handle(self, name: str, request: dict[str, Any]) -> dict[str, Any]:
        ident = self.device.identity
        if name == "QueryType":
            return {"Type": "com.apple.mobile.lockdown"}
        if name == "GetValue":
            return self.get_value(request.get("Domain"), request.get("Key"))
        if name in ("SetValue", "RemoveValue"):
            return self.store_value(name, request)
        if name in ("ValidatePair", "Goodbye"):
            return {}
        if name == "StartSession":
            host_id = str(request.get("HostID", ""))
            if host_id not in ident.trusted_hosts:
                return {"Error": "InvalidHostID"}
            self.host_id = host_id
            return {"SessionID": str(uuid.uuid4()).upper(), "EnableSessionSSL": True}
        if name == "StopSession":
            return {"Result": "Success"}
        if name == "StartService":
            return self.start_service(str(request.get("Service", "")))
        if name == "Pair":
            record = request.get("PairRecord") or {}
            if not isinstance(record, dict) or "HostID" not in record or "HostCertificate" not in record:
                return {"Error": "InvalidPairRecord"}
            ident.trust(str(record["HostID"]), bytes(record["HostCertificate"]))
            return {"EscrowBag": ident.pair_record["EscrowBag"]}
        if name == "Unpair":
            record = request.get("PairRecord") or {}
            ident.trusted_hosts.pop(str(record.get("HostID", "")), None)
            return {}
        return {"Error": "UnsupportedRequest"}

    def store_value(self, name: str, request: dict[str, Any]) -> dict[str, Any]:
        """``SetValue``/``RemoveValue`` of one key, in a session (as lockdownd): later ``GetValue`` reads it."""
        if self.host_id is None:
            return {"Error": "NoRunningSession"}
        key = request.get("Key")
        if not isinstance(key, str) or not key:
            return {"Error": "MissingKey"}
        slot = (str(request.get("Domain") or ""), key)
        if name == "RemoveValue":
            self.device.settings.pop(slot, None)
        elif "Value" not in request:
            return {"Error": "MissingValue"}
        elif slot not in self.device.settings and len(self.device.settings) >= MAX_SETTINGS:
            return {"Error": "SetProhibited"}
        else:
            self.device.settings[slot] = request["Value"]
        return {}

    def get_value(self, domain: Any, key: Any) -> dict[str, Any]:
        if domain:
            values = domains(self.device).get(str(domain))
            if values is None:
                return {"Error": "MissingValue"}
        else:
            values = self.device.identity.lockdown_values(paired=self.host_id is not None)
            values["TimeIntervalSince1970"] = time.time()
        values.update({k: v for (d, k), v in self.device.settings.items() if d == str(domain or "")})
        if key:
            if key not in values:
                return {"Error": "MissingValue"}
            return {"Domain": domain, "Key": key, "Value": values[key]} if domain else {"Key": key,
                                                                                       "Value": values[key]}
        return {"Domain": domain, "Value": values} if domain else {"Value": values}

    def start_service(self, service: str) -> dict[str, Any]:
        if self.host_id is None:
            return {"Error": "NoRunningSession"}
        known = SERVICES.get(service)
        if known is None or (service == DVT_SERVICE and self.device.identity.os_major >= 17):
            return {"Error": "InvalidService", "Service": service}
        factory, ssl = known
        port = self.device.register_service(service, factory(self.device), host_id=self.host_id, ssl=ssl)
        return {"Service": service, "Port": port, "EnableServiceSSL": ssl}


def lockdownd(device: VirtualDevice) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await LockdownSession(device, reader, writer).run()

    return handler
