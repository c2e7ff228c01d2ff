"""The DVT instruments server over lockdown (``com.apple.instruments.remoteserver.DVTSecureSocketProxy``).

Built on pymobiledevice3's own DTX stack, which is symmetric: a server-side ``DTXConnection`` answers the
client's ``_requestChannelWithCode:identifier:`` by instantiating the service class registered for that
identifier, and ``@dtx_on_invoke`` handlers' return values become the replies. Three services:

    processcontrol  launch (bundle id, environment, arguments, KillExisting), sendSignal:toPid:, killPid:,
                    processIdentifierForBundleIdentifier:
    deviceinfo      runningProcesses, isRunningPid:, execnameForPid:, hardwareInformation,
                    sysmonProcessAttributes / sysmonSystemAttributes
    sysmontap       setConfig: / start / stop; streams rows {"Processes": {pid: [values in procAttrs order]}}
                    every ``ur`` ms (``physFootprint`` is the device-equivalent footprint, see processes.py)

Anything else answers with an error, never silence: a channel request for another service is refused with an
NSError (pymobiledevice3's stack would otherwise open a do-nothing channel and its client, e.g.
``dvt netstat``, would wait forever for events), and an unknown selector on a known service gets
pymobiledevice3's "does not respond to selector" NSError.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from pymobiledevice3.dtx import DTXChannel, DTXConnection, DTXContext, DTXService, NSError, dtx_on_invoke

from orchestrator.devices.virtual.device import Handler, VirtualDevice
from orchestrator.devices.virtual.processes import VirtualProcess

PROCESS_ATTRIBUTES = ("cpuUsage", "memAnon", "memCompressed", "memResidentSize", "memVirtualSize", "name",
                      "physFootprint", "pid", "ppid", "procStatus", "startAbsTime", "threadCount", "uid")
SYSTEM_ATTRIBUTES = ("physMemSize", "vmActiveCount", "vmCompressorPageCount", "vmFreeCount", "vmInactiveCount",
                     "vmWireCount", "vmPageIns", "vmPageOuts")
CAPABILITIES = {
    "com.apple.instruments.server.services.processcontrol": 107,
    "com.apple.instruments.server.services.deviceinfo": 113,
    "com.apple.instruments.server.services.sysmontap": 3,
    "com.apple.private.DTXBlockCompression": 0, "com.apple.private.DTXConnection": 1,
}
PAGE = 16384
CPU_COUNT = 6
MIN_INTERVAL_MS = 10


def _device(ctx: DTXContext) -> VirtualDevice:
    device: VirtualDevice = ctx["device"]
    return device


def _launch_error(bundle_id: str, reason: str) -> NSError:
    return NSError(1, "com.apple.dt.deviceprocesscontrolservice", {
        "NSLocalizedDescription": f"The request to open \"{bundle_id}\" failed.", "NSLocalizedFailureReason": reason})


class ProcessControlServer(DTXService):
    IDENTIFIER = "com.apple.instruments.server.services.processcontrol"

    @dtx_on_invoke("launchSuspendedProcessWithDevicePath:bundleIdentifier:environment:arguments:options:")
    async def launch(self, path: str, bundle_id: str, environment: Any, arguments: Any, options: Any) -> Any:
        device = _device(self._ctx)
        app = device.apps.get(str(bundle_id))
        if app is None:
            return _launch_error(bundle_id, f"Application info provider (FBSApplicationLibrary) returned nil "
                                            f"for \"{bundle_id}\"")
        env = {str(k): str(v) for k, v in dict(environment or {}).items()}
        opts = dict(options or {})
        return device.processes.launch(app, [str(a) for a in arguments or []], env,
                                       kill_existing=bool(opts.get("KillExisting", True)))

    @dtx_on_invoke("sendSignal:toPid:")
    async def send_signal(self, sig: int, pid: int) -> Any:
        if not _device(self._ctx).processes.signal(int(pid), int(sig)):
            return NSError(3, "NSPOSIXErrorDomain", {"NSLocalizedDescription": f"No such process: {pid}"})
        return True

    @dtx_on_invoke("killPid:")
    async def kill_pid(self, pid: int) -> None:
        _device(self._ctx).processes.signal(int(pid), 9)

    @dtx_on_invoke("processIdentifierForBundleIdentifier:")
    async def pid_for_bundle(self, bundle_id: str) -> int:
        return _device(self._ctx).processes.pid_for_bundle(str(bundle_id))

    @dtx_on_invoke("startObservingPid:")
    async def start_observing(self, pid: int) -> None:
        return None

    @dtx_on_invoke("stopObservingPid:")
    async def stop_observing(self, pid: int) -> None:
        return None

    @dtx_on_invoke("requestDisableMemoryLimitsForPid:")
    async def disable_memory_limit(self, pid: int) -> bool:
        return False  # the emulator always enforces the profile's limit


def _process_entry(proc: VirtualProcess, device: VirtualDevice) -> dict[str, Any]:
    app = device.apps.get(proc.bundle_id) if proc.bundle_id else None
    entry: dict[str, Any] = {"pid": proc.pid, "name": proc.name, "isApplication": app is not None,
                             "realAppName": str(app.lookup_entry()["Path"]) + f"/{proc.name}" if app
                             else f"/usr/libexec/{proc.name}"}
    if app is not None:
        entry["bundleIdentifier"] = app.bundle_id
    return entry


class DeviceInfoServer(DTXService):
    IDENTIFIER = "com.apple.instruments.server.services.deviceinfo"

    @dtx_on_invoke("runningProcesses")
    async def running_processes(self) -> list[dict[str, Any]]:
        device = _device(self._ctx)
        return [_process_entry(p, device) for p in device.processes.all()]

    @dtx_on_invoke("isRunningPid:")
    async def is_running(self, pid: int) -> bool:
        return _device(self._ctx).processes.get(int(pid)) is not None

    @dtx_on_invoke("execnameForPid:")
    async def execname(self, pid: int) -> Any:
        device = _device(self._ctx)
        proc = device.processes.get(int(pid))
        return _process_entry(proc, device)["realAppName"] if proc else NSError(3, "NSPOSIXErrorDomain", {})

    @dtx_on_invoke("hardwareInformation")
    async def hardware_information(self) -> dict[str, Any]:
        profile = _device(self._ctx).identity.profile
        return {"numberOfCpus": 6, "numberOfPhysicalCpus": 6, "hwCPUtype": 16777228, "hwCPUsubtype": 2,
                "hwCPU64BitCapable": 1, "speedOfCpus": 0, "physicalMemory": int(profile.ram_options[0]) << 30}

    @dtx_on_invoke("sysmonProcessAttributes")
    async def sysmon_process_attributes(self) -> list[str]:
        return list(PROCESS_ATTRIBUTES)

    @dtx_on_invoke("sysmonSystemAttributes")
    async def sysmon_system_attributes(self) -> list[str]:
        return list(SYSTEM_ATTRIBUTES)

    @dtx_on_invoke("nameForUID:")
    async def name_for_uid(self, uid: int) -> str:
        return "root" if int(uid) == 0 else "mobile"


def _process_value(attr: str, proc: VirtualProcess) -> Any:
    values: dict[str, Any] = {
        "pid": proc.pid, "name": proc.name, "physFootprint": proc.footprint, "memAnon": proc.footprint,
        "memResidentSize": proc.resident or proc.footprint, "memVirtualSize": max(proc.footprint, 1) * 4,
        "ppid": 1 if proc.pid > 1 else 0, "uid": 501 if proc.is_app else 0, "cpuUsage": 0.0,
        "procStatus": 2, "threadCount": 4, "startAbsTime": int(proc.started * 1e9), "memCompressed": 0,
    }
    return values.get(attr, 0)


class SysmontapServer(DTXService):
    IDENTIFIER = "com.apple.instruments.server.services.sysmontap"

    def __init__(self, ctx: DTXContext) -> None:
        super().__init__(ctx)
        self.config: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None

    @dtx_on_invoke("setConfig:")
    async def set_config(self, config: Any) -> None:
        self.config = dict(config or {})

    @dtx_on_invoke("start")
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._stream())

    @dtx_on_invoke("stop")
    async def stop(self) -> None:
        self._cancel()

    def on_closed(self, reason: str = "") -> None:
        self._cancel()

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def rows(self) -> list[dict[str, Any]]:
        device = _device(self._ctx)
        attrs = [str(a) for a in self.config.get("procAttrs", PROCESS_ATTRIBUTES)]
        now = time.monotonic_ns()
        processes = {p.pid: [_process_value(a, p) for a in attrs] for p in device.processes.all()}
        ram = int(device.identity.profile.ram_options[0]) << 30
        used = sum(p.footprint for p in device.processes.all()) // PAGE
        total = ram // PAGE
        system = {"physMemSize": ram, "vmActiveCount": used,
                  "vmFreeCount": max(total - used, 0)}
        sys_attrs = [str(a) for a in self.config.get("sysAttrs", SYSTEM_ATTRIBUTES)]
        cpus = {"CPU_TotalLoad": 0.0, "CPU_UserLoad": 0.0, "CPU_SystemLoad": 0.0}
        return [{"Processes": processes, "Type": 7, "StartMachAbsTime": now, "EndMachAbsTime": now},
                {"System": [system.get(a, 0) for a in sys_attrs], "Type": 41, "SystemCPUUsage": cpus,
                 "CPUCount": CPU_COUNT, "EnabledCPUs": CPU_COUNT}]

    async def _stream(self) -> None:
        interval = max(int(self.config.get("ur", 500)), MIN_INTERVAL_MS) / 1000.0
        with contextlib.suppress(Exception):
            await self._channel.notify({"sysmontap": "started"})
            while True:
                await self._channel.notify(self.rows())
                await asyncio.sleep(interval)


class UnknownDTXService(LookupError):
    pass


class EmulatorDTXConnection(DTXConnection):
    """A server connection that offers only its registered services (see the module docstring)."""

    def _instantiate_service(self, identifier: str, channel: DTXChannel, remote: bool) -> DTXService:
        if identifier not in self._services_cls:
            raise UnknownDTXService(f"the virtual device does not provide {identifier}")
        return super()._instantiate_service(identifier, channel, remote)


def dvt_server(device: VirtualDevice) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = EmulatorDTXConnection(reader, writer)
        conn.ctx["device"] = device
        conn.sent_capabilities = dict(CAPABILITIES)
        conn.register_services(ProcessControlServer, DeviceInfoServer, SysmontapServer)
        try:
            await conn.connect()
            await conn.wait_disconnected()
        finally:
            await conn.aclose()

    return handler
