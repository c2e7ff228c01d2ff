"""The devices of one run, opened from the spec's device references and closed when the run ends.

    async with DevicePool(refs, settings=settings, catalog=catalog, options=PoolOptions(...)) as pool:
        pool.devices      # key -> Device: "host", "host:iphone-12", "virtual:iphone-12", "usb:<udid>"

``virtual:ID`` entries start one emulated farm (a child process) for the run and stop it afterwards;
``usb:UDID`` and ``connected`` go through usbmuxd at ``settings.usbmux_address``. Catalog ids and ``all``
describe devices to plan for, not devices to run on: asking to run on them is a usage error with the fix.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from orchestrator.config import Settings
from orchestrator.devices.base import Device
from orchestrator.devices.host import HostDevice, host_device_info
from orchestrator.errors import UsageError
from orchestrator.profiles import Catalog, host_profile
from orchestrator.spec.loader import DeviceRef


@dataclass(frozen=True)
class PoolOptions:
    increased_memory_limit: bool = False
    app_footprint_mb: float | None = None  # the app's footprint before it loads a model (emulated devices)
    harness_ipa: Path | None = None  # the Swift app for real devices (mlfarm harness build)
    work_root: Path | None = None  # host device folders; default .mlfarm/devices under the working folder


class DevicePool:
    def __init__(self, refs: Sequence[DeviceRef], *, settings: Settings, catalog: Catalog,
                 options: PoolOptions | None = None) -> None:
        self.refs = list(refs)
        self.settings = settings
        self.catalog = catalog
        self.options = options or PoolOptions()
        self.devices: dict[str, Device] = {}
        self._stack = contextlib.AsyncExitStack()

    def _check(self) -> None:
        for ref in self.refs:
            if ref.kind in ("catalog", "all"):
                what = ref.profile_id or "all"
                raise UsageError(
                    f"{what!r} names devices to plan for, not a device to run on",
                    fix=f"run on a connected device (usb:UDID or connected), on this machine under its limits "
                        f"(host:{ref.profile_id or 'ID'}) or on an emulated one (virtual:{ref.profile_id or 'ID'}); "
                        "`mlfarm plan` accepts catalog ids")

    def _host(self, ref: DeviceRef) -> Device:
        profile = host_profile() if ref.profile_id is None else self.catalog.get(ref.profile_id)
        root = (self.options.work_root or self.settings.workdir / ".mlfarm" / "devices") / ref.text.replace(":", "_")
        limit = profile.limit_mb(increased=self.options.increased_memory_limit)
        return HostDevice(host_device_info(profile, ref.text), root, limit_mb=limit,
                          app_footprint_mb=self.options.app_footprint_mb)

    async def _usbmux_options(self, increased: bool):  # type: ignore[no-untyped-def]
        from orchestrator.devices.usbmux_device import UsbmuxOptions
        from orchestrator.devices.virtual.ipa import build_placeholder_ipa

        folder = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="mlfarm-ipa-")))
        stand_in = build_placeholder_ipa(folder / "MLFarmHarness-virtual.ipa", increased_memory_limit=increased)
        real = self.options.harness_ipa
        return UsbmuxOptions(harness_ipa=stand_in), (UsbmuxOptions(harness_ipa=real) if real else None)

    async def __aenter__(self) -> DevicePool:
        self._check()
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _open(self) -> None:
        for ref in self.refs:
            if ref.kind == "host":
                self.devices[ref.text] = self._host(ref)
        virtual = [r for r in self.refs if r.kind == "virtual"]
        usb = [r for r in self.refs if r.kind in ("usb", "connected")]
        if not virtual and not usb:
            return
        from orchestrator.devices.usbmux_device import connect_device

        virtual_options, real_options = await self._usbmux_options(self.options.increased_memory_limit)
        if virtual:
            from orchestrator.devices.virtual.farm import VirtualFarm

            env = ({"MLFARM_APP_BASELINE_MB": str(self.options.app_footprint_mb)}
                   if self.options.app_footprint_mb is not None else None)
            farm = VirtualFarm([r.profile_id or "" for r in virtual], profile_dirs=list(self.settings.profile_dirs),
                               env=env)
            await self._stack.enter_async_context(farm)
            for ref in virtual:
                assert ref.profile_id is not None
                device = await connect_device(farm.udid(ref.profile_id), usbmux_address=farm.address,
                                              catalog=self.catalog, options=virtual_options, key=ref.text)
                self._stack.push_async_callback(device.session.close)
                self.devices[ref.text] = device
        if usb:
            await self._open_usb(usb, real_options, connect_device)

    async def _open_usb(self, refs: list[DeviceRef], options, connect_device) -> None:  # type: ignore[no-untyped-def]
        from orchestrator.devices.usbmux.discovery import list_attached

        if options is None:
            raise UsageError("running on real devices needs the harness app",
                             fix="build it on a Mac with `mlfarm harness build` and pass --harness-ipa PATH")
        attached = [a for a in await list_attached(self.settings.usbmux_address) if not a.virtual]
        wanted = {r.udid for r in refs if r.kind == "usb" and r.udid}
        udids = [a.udid for a in attached] if any(r.kind == "connected" for r in refs) else sorted(wanted)
        missing = wanted - {a.udid for a in attached}
        if missing:
            raise UsageError(f"device(s) not connected: {', '.join(sorted(missing))}",
                             fix="check the cable and trust prompt; `mlfarm devices` lists what is attached")
        for udid in udids:
            device = await connect_device(udid, usbmux_address=self.settings.usbmux_address, catalog=self.catalog,
                                          options=options, key=f"usb:{udid}")
            self._stack.push_async_callback(device.session.close)
            self.devices[device.info.key] = device

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._stack.aclose()
