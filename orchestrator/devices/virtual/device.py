"""One emulated device: identity, folders, installed apps, processes, and the ports its daemons listen on.

Folder layout (``root``, one per device):

    Media/          what com.apple.afc serves (PublicStaging/ receives .ipa uploads)
    CrashReports/   what com.apple.crashreportcopymobile serves (JetsamEvent-*.ips)
    Applications/   installed bundles;  Containers/  their data (see apps.py)

Lifecycle: created attached; the emulated usbmuxd routes ``Connect`` requests to ``connect``: port 62078 is
lockdownd, any other port must have been handed out by a ``StartService`` a moment before (one connection
each, like the real daemons). ``detach`` (a cable pulled, or the device dying mid-job) closes every open
connection and kills its apps; ``attach`` brings it back with its folders intact. ``faults`` lets tests
inject failures the next time a given operation runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.devices.virtual.apps import AppRegistry
from orchestrator.devices.virtual.identity import DeviceIdentity
from orchestrator.devices.virtual.processes import ProcessTable

LOCKDOWN_PORT = 62078
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
FAULTS = ("fail-install", "corrupt-result")


@dataclass(frozen=True)
class PendingService:
    name: str
    handler: Handler
    host_id: str
    ssl: bool


class VirtualDevice:
    """State of one emulated device, shared by its daemons (all on one event loop)."""

    _ports = itertools.count(49152)

    def __init__(self, identity: DeviceIdentity, root: Path, device_id: int) -> None:
        self.identity = identity
        self.root = root
        self.device_id = device_id
        self.media = root / "Media"
        self.crash_reports = root / "CrashReports"
        for folder in (self.media / "PublicStaging", self.crash_reports):
            folder.mkdir(parents=True, exist_ok=True)
        self.apps = AppRegistry(root)
        self.processes = ProcessTable(self)
        self.attached = True
        self.battery = {"BatteryCurrentCapacity": 100, "BatteryIsCharging": True, "ExternalConnected": True,
                        "FullyCharged": True}
        self.faults: dict[str, int] = {}
        self.settings: dict[tuple[str, str], Any] = {}  # lockdown SetValue: (domain or "", key) -> value
        self._pending: dict[int, PendingService] = {}
        self._connections: set[asyncio.StreamWriter] = set()

    def take_fault(self, name: str) -> bool:
        """True (and one fewer armed) if a fault ``name`` was armed by a test."""
        left = self.faults.get(name, 0)
        if left <= 0:
            return False
        self.faults[name] = left - 1
        return True

    def register_service(self, name: str, handler: Handler, *, host_id: str, ssl: bool) -> int:
        port = next(self._ports) % 16384 + 49152
        self._pending[port] = PendingService(name, handler, host_id, ssl)
        return port

    def open_port(self, port: int, lockdown: Handler) -> PendingService | None:
        """What listens on ``port`` (taken: one connection per started service), or None: refused."""
        if not self.attached:
            return None
        if port == LOCKDOWN_PORT:
            return PendingService("lockdownd", lockdown, host_id="", ssl=False)
        return self._pending.pop(port, None)

    async def serve(self, service: PendingService, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        """Run one connection to ``service`` until either side closes it; TLS from the first byte if asked."""
        self._connections.add(writer)
        try:
            if service.ssl:
                await writer.start_tls(self.identity.server_context(service.host_id))
            await service.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            self._connections.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def detach(self) -> None:
        """The device disappears: every connection drops, every app dies (no jetsam report: it is gone)."""
        self.attached = False
        self._pending.clear()
        for writer in list(self._connections):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        await self.processes.shutdown()

    def attach(self) -> None:
        self.attached = True
