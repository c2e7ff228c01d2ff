"""One device through usbmuxd: lockdown, installation_proxy, the harness's container (house_arrest/AFC), and
crash reports; DVT lives in ``instruments``.

Lifecycle: ``await UsbmuxSession.open(udid, usbmux_address=...)``, use, ``await session.close()``. house_arrest
and DVT connections are opened on first use and kept; a transport fault drops them (``guarded``) so the next
call reconnects, and the lockdown client re-establishes its own connection.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
import uuid
from pathlib import Path
from typing import Any

from pymobiledevice3.exceptions import AfcException, AfcFileNotFoundError, AppInstallError, NotPairedError
from pymobiledevice3.lockdown import LockdownClient, create_using_usbmux
from pymobiledevice3.services.afc import AfcService
from pymobiledevice3.services.crash_reports import CrashReportsManager
from pymobiledevice3.services.house_arrest import HouseArrestService
from pymobiledevice3.services.installation_proxy import TEMP_REMOTE_BASEDIR, InstallationProxyService
from pymobiledevice3.tunneld.api import TUNNELD_DEFAULT_ADDRESS

from orchestrator.devices.jetsam import MAX_REPORT_BYTES
from orchestrator.devices.usbmux.discovery import virtual_domain
from orchestrator.devices.usbmux.errors import CAUGHT, boundary, translate
from orchestrator.devices.usbmux.instruments import Instruments
from orchestrator.errors import MlfarmError, TransportError

BATTERY_DOMAIN = "com.apple.mobile.battery"
LARGE_FILE = 64 << 20
CHUNK = 4 << 20
MAX_REPORTS = 64  # crash reports fetched per look: a device full of new reports is not read whole


class UsbmuxSession:
    """One device through usbmuxd; owns a lockdown client and, once used, DVT and house_arrest connections."""

    def __init__(self, lockdown: LockdownClient, udid: str, usbmux_address: str | None,
                 tunneld_address: tuple[str, int]) -> None:
        self.lockdown = lockdown
        self.udid = udid
        self.usbmux_address = usbmux_address
        self.tunneld_address = tunneld_address
        self.values: dict[str, Any] = dict(lockdown.all_values)
        self.virtual: dict[str, Any] | None = None
        self._containers: dict[str, HouseArrestService] = {}
        self.instruments = Instruments(self)

    @classmethod
    async def open(cls, udid: str, *, usbmux_address: str | None,
                   tunneld_address: tuple[str, int] = TUNNELD_DEFAULT_ADDRESS) -> UsbmuxSession:
        with boundary(udid, "connecting to lockdownd", usbmux_address):
            ld = await create_using_usbmux(serial=udid, usbmux_address=usbmux_address, autopair=False)
            if not ld.paired:
                await ld.close()
                raise NotPairedError(f"no usable pair record for {udid}")
            session = cls(ld, udid, usbmux_address, tunneld_address)
            session.virtual = await virtual_domain(ld)
        return session

    @property
    def os_version(self) -> str:
        return str(self.values.get("ProductVersion", "0"))

    @property
    def os_major(self) -> int:
        return int(self.os_version.split(".")[0] or 0)

    async def close(self) -> None:
        await self.reset()
        with contextlib.suppress(Exception):
            await self.lockdown.close()

    async def reset(self) -> None:
        """Drop the kept house_arrest and DVT connections (after a fault); the next call reconnects."""
        for service in list(self._containers.values()):
            with contextlib.suppress(Exception):
                await service.aclose()
        self._containers.clear()
        await self.instruments.drop()

    async def guarded(self, doing: str, op: Any) -> Any:
        """Await ``op()``; on a transport fault drop the kept connections so the next call reconnects."""
        try:
            return await op()
        except MlfarmError:
            raise
        except CAUGHT as exc:
            error = translate(exc, udid=self.udid, doing=doing, address=self.usbmux_address)
            if isinstance(error, TransportError):
                await self.reset()
            raise error from exc

    # ---- lockdown ------------------------------------------------------------------------------
    async def battery(self) -> dict[str, Any]:
        value = await self.guarded("reading the battery", lambda: self.lockdown.get_value(BATTERY_DOMAIN))
        return dict(value or {})

    async def developer_mode(self) -> bool:
        if self.os_major < 16:
            return True  # no Developer Mode before iOS 16
        return bool(await self.guarded("reading Developer Mode", self.lockdown.get_developer_mode_status))

    # ---- installation_proxy --------------------------------------------------------------------
    async def installed_app(self, bundle_id: str) -> dict[str, Any] | None:
        async def lookup() -> dict[str, Any] | None:
            async with InstallationProxyService(lockdown=self.lockdown) as proxy:
                apps = await proxy.get_apps(bundle_identifiers=[bundle_id])
            return apps.get(bundle_id)

        result: dict[str, Any] | None = await self.guarded("looking up installed apps", lookup)
        return result

    async def install(self, ipa: Path) -> None:
        """Upload to PublicStaging and send ``Install``, like ``install_from_local`` minus its progress bars
        (they would fight the runner's display)."""
        async def run() -> None:
            staged = f"{TEMP_REMOTE_BASEDIR}/mlfarm-{uuid.uuid4().hex}.ipa"
            async with AfcService(self.lockdown) as afc, InstallationProxyService(lockdown=self.lockdown) as proxy:
                await afc.makedirs(TEMP_REMOTE_BASEDIR)
                await afc.set_file_contents(staged, ipa.read_bytes())
                try:
                    await proxy.service.send_plist({"Command": "Install", "ClientOptions": {},
                                                    "PackagePath": staged})
                    while True:
                        reply: dict[str, Any] = dict(await proxy.service.recv_plist())
                        if reply.get("Error") or not reply:
                            raise AppInstallError(f"{reply.get('Error')}: {reply.get('ErrorDescription')}")
                        if reply.get("Status") == "Complete":
                            break
                finally:
                    await afc.rm_single(staged, force=True)

        await self.guarded(f"installing {ipa.name}", run)

    # ---- app container (house_arrest + AFC) ----------------------------------------------------
    async def container(self, bundle_id: str) -> AfcService:
        if bundle_id not in self._containers:
            self._containers[bundle_id] = await self.guarded(
                f"opening the container of {bundle_id}",
                lambda: HouseArrestService.create(self.lockdown, bundle_id, documents_only=False))
        return self._containers[bundle_id]

    async def exists(self, bundle_id: str, path: str) -> bool:
        afc = await self.container(bundle_id)
        return bool(await self.guarded(f"checking {path}", lambda: afc.exists(path)))

    async def push_tree(self, bundle_id: str, local: Path, remote: str) -> int:
        """Copy ``local`` (a file or folder) to ``remote`` in the app container; returns bytes sent."""
        afc = await self.container(bundle_id)

        async def run() -> int:
            sent = 0
            files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
            made: set[str] = set()
            for path in files:
                target = remote if path == local else posixpath.join(remote, path.relative_to(local).as_posix())
                parent = posixpath.dirname(target)
                if parent not in made:
                    await afc.makedirs(parent)
                    made.add(parent)
                sent += await _push_file(afc, path, target)
            return sent

        result: int = await self.guarded(f"pushing {local.name}", run)
        return result

    async def write_file(self, bundle_id: str, remote: str, data: bytes) -> None:
        afc = await self.container(bundle_id)

        async def run() -> None:
            await afc.makedirs(posixpath.dirname(remote))
            await afc.set_file_contents(remote, data)

        await self.guarded(f"writing {remote}", run)

    async def rename(self, bundle_id: str, source: str, target: str) -> None:
        afc = await self.container(bundle_id)
        await self.guarded(f"renaming {source}", lambda: afc.rename(source, target))

    async def remove(self, bundle_id: str, remote: str) -> None:
        afc = await self.container(bundle_id)

        async def run() -> None:
            with contextlib.suppress(AfcFileNotFoundError):
                await afc.rm(remote, force=True)

        await self.guarded(f"removing {remote}", run)

    async def list_files(self, bundle_id: str, remote: str) -> dict[str, int]:
        """Regular files directly in ``remote`` -> size in bytes (empty when the folder does not exist)."""
        afc = await self.container(bundle_id)

        async def run() -> dict[str, int]:
            try:
                names = await afc.listdir(remote)
            except AfcException:
                return {}
            sizes = {}
            for name in names:
                info = await afc.stat(posixpath.join(remote, name))
                if info.get("st_ifmt") == "S_IFREG":
                    sizes[name] = int(info["st_size"])
            return sizes

        result: dict[str, int] = await self.guarded(f"listing {remote}", run)
        return result

    async def read_file(self, bundle_id: str, remote: str) -> bytes:
        afc = await self.container(bundle_id)
        data: bytes = await self.guarded(f"reading {remote}", lambda: afc.get_file_contents(remote))
        return data

    # ---- crash reports -------------------------------------------------------------------------
    async def crash_reports(self, pattern: str, *, newer_than: float) -> list[tuple[str, bytes]]:
        """Top-level CrashReporter files whose name matches ``pattern`` and whose mtime >= ``newer_than``
        (epoch seconds), newest first, with their contents; a report larger than the parser accepts is not
        read at all (the device is untrusted)."""
        regex = re.compile(pattern)

        async def run() -> list[tuple[str, bytes]]:
            async with CrashReportsManager(self.lockdown) as reports:
                await reports.flush()
                found: list[tuple[float, str, bytes]] = []
                for entry in await reports.ls("/", depth=1):
                    name = posixpath.basename(entry)
                    if not regex.search(name):
                        continue
                    info = await reports.afc.stat(entry)
                    if (info.get("st_ifmt") == "S_IFREG" and info["st_mtime"].timestamp() >= newer_than
                            and int(info.get("st_size", 0)) <= MAX_REPORT_BYTES and len(found) < MAX_REPORTS):
                        found.append((info["st_mtime"].timestamp(), name, await reports.afc.get_file_contents(entry)))
                return [(name, data) for _, name, data in sorted(found, reverse=True)]

        result: list[tuple[str, bytes]] = await self.guarded("fetching crash reports", run)
        return result


async def _push_file(afc: AfcService, path: Path, target: str) -> int:
    size = path.stat().st_size
    if size <= LARGE_FILE:
        await afc.set_file_contents(target, path.read_bytes())
        return size
    handle = await afc.fopen(target, "w")
    try:
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                await afc.fwrite(handle, chunk)
    finally:
        await afc.fclose(handle)
    return size
