"""What usbmuxd lists, and what each device's lockdownd says about itself (``mlfarm devices``)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from pymobiledevice3 import usbmux
from pymobiledevice3.exceptions import PyMobileDevice3Exception
from pymobiledevice3.lockdown import create_using_usbmux
from pymobiledevice3.lockdown_service_provider import LockdownServiceProvider

from orchestrator.devices.usbmux.errors import CAUGHT, boundary, translate

VIRTUAL_DOMAIN = "dev.mlfarm.virtual"


@dataclass(frozen=True)
class Attached:
    """A device usbmuxd lists, with what lockdown says about it (``error`` when it could not be read)."""

    udid: str
    connection_type: str
    values: dict[str, Any]
    virtual: dict[str, Any] | None
    error: str | None = None


async def list_attached(usbmux_address: str | None) -> list[Attached]:
    """Every device behind ``usbmux_address`` and its lockdown values (read concurrently)."""
    with boundary(None, "listing devices", usbmux_address):
        devices = await usbmux.list_devices(usbmux_address=usbmux_address)

    async def describe(dev: usbmux.MuxDevice) -> Attached:
        try:
            async with await create_using_usbmux(serial=dev.serial, usbmux_address=usbmux_address,
                                                 autopair=False) as ld:
                return Attached(dev.serial, dev.connection_type, dict(ld.all_values), await virtual_domain(ld))
        except CAUGHT as exc:
            return Attached(dev.serial, dev.connection_type, {}, None,
                            error=str(translate(exc, udid=dev.serial, doing="reading lockdown values")))

    return list(await asyncio.gather(*(describe(d) for d in devices)))


async def virtual_domain(ld: LockdownServiceProvider) -> dict[str, Any] | None:
    """The ``dev.mlfarm.virtual`` domain an emulated device answers; a real one has no such domain."""
    with contextlib.suppress(PyMobileDevice3Exception):
        value = await ld.get_value(VIRTUAL_DOMAIN)
        return dict(value) if isinstance(value, dict) else None
    return None
