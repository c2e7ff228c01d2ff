"""DVT instruments (``com.apple.instruments.*``): process control and sysmontap, for one ``UsbmuxSession``.

Below iOS 17 the instruments server is the lockdown service ``DVTSecureSocketProxy``; from iOS 17 it is only
reachable through an RSD tunnel: tunneld first (``sudo pymobiledevice3 remote tunneld``), else an in-process
userspace tunnel (iOS 17.4+, one per process, and it finds usbmuxd only through USBMUXD_SOCKET_ADDRESS);
neither -> ``TunnelUnavailableError``. The DVT connection is opened on first use and kept until ``drop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pymobiledevice3.dtx import DTXNsError
from pymobiledevice3.exceptions import TunneldConnectionError
from pymobiledevice3.lockdown_service_provider import LockdownServiceProvider
from pymobiledevice3.services.dvt.instruments.device_info import DeviceInfo as DvtDeviceInfo
from pymobiledevice3.services.dvt.instruments.dvt_provider import DvtProvider
from pymobiledevice3.services.dvt.instruments.process_control import ProcessControl
from pymobiledevice3.services.dvt.instruments.sysmontap import Sysmontap
from pymobiledevice3.tunneld.api import get_tunneld_device_by_udid

from orchestrator.devices.usbmux.errors import CAUGHT, TRANSPORT_ERRORS
from orchestrator.errors import TransportError, TunnelUnavailableError

if TYPE_CHECKING:
    from orchestrator.devices.usbmux.session import UsbmuxSession


Row = dict[int, "ProcessSample"] | TransportError  # a sysmontap sample, or why the stream ended


@dataclass(frozen=True)
class ProcessSample:
    pid: int
    name: str
    footprint: int  # bytes (physFootprint)
    resident: int  # bytes (memResidentSize)


class Instruments:
    """The DVT side of one session; owns the DVT connection (and a userspace tunnel, if it opened one)."""

    def __init__(self, session: UsbmuxSession) -> None:
        self.session = session
        self._dvt: DvtProvider | None = None
        self._process_control: ProcessControl | None = None
        self._attributes: tuple[list[str], list[str]] | None = None
        self._tunnel: Any = None
        self._tap: Sysmontap | None = None
        self._pump: asyncio.Task[None] | None = None
        self._subscribers: set[asyncio.Queue[Row]] = set()

    async def drop(self) -> None:
        """Close the DVT connection (and tunnel); the next call reconnects."""
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(BaseException):
                await self._pump
        if self._tap is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tap.__aexit__(None, None, None), 2.0)
        self._tap = self._pump = None
        if self._dvt is not None:
            with contextlib.suppress(Exception):
                await self._dvt.close()
        self._dvt = self._process_control = None
        if self._tunnel is not None:
            with contextlib.suppress(Exception):
                await self._tunnel.aclose()
            self._tunnel = None

    async def _provider(self) -> LockdownServiceProvider:
        if self.session.os_major < 17:
            return self.session.lockdown
        return await self._rsd()

    async def _rsd(self) -> LockdownServiceProvider:
        """An RSD for iOS 17+: tunneld first, else a userspace tunnel; TunnelUnavailableError otherwise."""
        session, problems = self.session, []
        tunneld = f"{session.tunneld_address[0]}:{session.tunneld_address[1]}"
        try:
            rsd = await get_tunneld_device_by_udid(session.udid, session.tunneld_address)
            if rsd is not None:
                return rsd
            problems.append(f"tunneld at {tunneld} has no tunnel for it")
        except (TunneldConnectionError, *TRANSPORT_ERRORS) as exc:
            problems.append(f"no tunneld at {tunneld} ({type(exc).__name__})")
        try:
            from pymobiledevice3.remote.userspace_tunnel import UserspaceRsdTunnel  # heavy: only when needed

            tunnel = UserspaceRsdTunnel(serial=session.udid, autopair=False, remotepairing_fallback=False)
            rsd = await tunnel.aopen()
            self._tunnel = tunnel
            return rsd
        except CAUGHT as exc:
            hint = ""
            if session.usbmux_address and os.environ.get("USBMUXD_SOCKET_ADDRESS") != session.usbmux_address:
                hint = f" (it finds usbmuxd only through USBMUXD_SOCKET_ADDRESS={session.usbmux_address})"
            problems.append(f"no userspace tunnel{hint}: {exc}")
        name = session.values.get("DeviceName", session.udid)
        raise TunnelUnavailableError(
            f"{name} runs iOS {session.os_version}: launching and sampling need an RSD tunnel on iOS 17+, and "
            f"none is available ({'; '.join(problems)})", udid=session.udid,
            fix="run `sudo pymobiledevice3 remote tunneld` on this host (or, on iOS 17.4+, unlock and trust the "
                "device so mlfarm can open a userspace tunnel); see README 'Devices'")

    async def dvt(self) -> DvtProvider:
        if self._dvt is None:
            provider = await self._provider()

            async def connect() -> DvtProvider:
                dvt = DvtProvider(provider)
                await dvt.connect()
                return dvt

            self._dvt = await self.session.guarded("opening DVT (instruments)", connect)
        return self._dvt

    async def process_control(self) -> ProcessControl:
        if self._process_control is None:
            dvt = await self.dvt()

            async def connect() -> ProcessControl:
                pc = ProcessControl(dvt)
                await pc.connect()
                return pc

            self._process_control = await self.session.guarded("opening DVT process control", connect)
        return self._process_control

    async def launch(self, bundle_id: str, arguments: list[str], environment: dict[str, str]) -> int:
        pc = await self.process_control()
        pid: int = await self.session.guarded(f"launching {bundle_id}", lambda: pc.launch(
            bundle_id, arguments=arguments, environment=environment, kill_existing=True))
        return pid

    async def kill(self, pid: int) -> None:
        pc = await self.process_control()
        with contextlib.suppress(DTXNsError):
            await self.session.guarded(f"killing pid {pid}", lambda: pc.kill(pid))

    async def hardware(self) -> dict[str, Any]:
        dvt = await self.dvt()

        async def run() -> dict[str, Any]:
            async with DvtDeviceInfo(dvt) as info:
                return dict(await info.hardware_information() or {})

        result: dict[str, Any] = await self.session.guarded("reading hardware information", run)
        return result

    @contextlib.asynccontextmanager
    async def sample_processes(self, interval_ms: int) -> AsyncIterator[asyncio.Queue[Row]]:
        """Sysmontap rows as a queue of {pid: ProcessSample}, about every ``interval_ms``, while the block runs.

        One sysmontap channel serves the whole session (DVT channels are only released with the connection,
        so a channel per job would pile up over a long run); rows nobody waits for are dropped. When the
        stream dies (the device went away), the queue's last item is a ``TransportError``."""
        await self._ensure_tap(interval_ms)
        queue: asyncio.Queue[Row] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    async def _ensure_tap(self, interval_ms: int) -> None:
        if self._pump is not None and not self._pump.done():
            return
        dvt = await self.dvt()
        if self._attributes is None:
            async def attributes() -> tuple[list[str], list[str]]:
                async with DvtDeviceInfo(dvt) as info:
                    return (list(await info.sysmon_process_attributes()),
                            list(await info.sysmon_system_attributes()))

            self._attributes = await self.session.guarded("reading sysmontap attributes", attributes)
        procs, system = self._attributes
        tap = Sysmontap(dvt, procs, system, interval_ms=interval_ms)
        await self.session.guarded("starting sysmontap", tap.__aenter__)
        self._tap, self._pump = tap, asyncio.create_task(self._stream(tap))

    async def _stream(self, tap: Sysmontap) -> None:
        try:
            async for rows in tap.iter_processes():
                sample = {int(r["pid"]): ProcessSample(int(r["pid"]), str(r.get("name", "")),
                                                       int(r.get("physFootprint") or 0),
                                                       int(r.get("memResidentSize") or 0)) for r in rows}
                for queue in self._subscribers:
                    queue.put_nowait(sample)
        except Exception as exc:  # the channel closed under us: QueueShutDown, ConnectionTerminatedError, ...
            error = TransportError(f"sysmontap stream from {self.session.udid} ended: {type(exc).__name__}",
                                   udid=self.session.udid, fix="check the connection; the job is retried")
            for queue in self._subscribers:
                queue.put_nowait(error)
