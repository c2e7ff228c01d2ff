"""The pymobiledevice3 boundary: the only mlfarm package that imports it (the virtual device, a protocol
emulator, borrows its DTX and certificate helpers for the device side).

``UsbmuxSession`` is one connection to one device through usbmuxd (a Unix socket or ``host:port``, so devices
attached to other hosts are reachable) with coarse async operations: device values, battery, install,
app-container files (house_arrest/AFC) and crash reports; its ``instruments`` add launch/kill (DVT
ProcessControl) and memory sampling (DVT Sysmontap). Every pymobiledevice3 exception is translated at this
boundary (``errors.translate``), ``raise ... from exc``:

    usbmuxd unreachable, device gone, connection reset  -> TransportError (the runner retries)
    not paired / locked / Developer Mode / DDI / launch -> DeviceError with the fix
    installation_proxy error                            -> InstallError
    iOS 17+ without tunneld or a userspace tunnel       -> TunnelUnavailableError

    errors.py       the exception table
    discovery.py    what usbmuxd lists, with lockdown values (``mlfarm devices``)
    session.py      lockdown, installation_proxy, house_arrest/AFC, crash reports
    instruments.py  DVT over lockdown (iOS < 17) or an RSD tunnel (iOS 17+): launch, kill, sysmontap
"""

from orchestrator.devices.usbmux.discovery import Attached, list_attached
from orchestrator.devices.usbmux.errors import boundary, translate, usbmux_default
from orchestrator.devices.usbmux.instruments import Instruments, ProcessSample, Row
from orchestrator.devices.usbmux.session import UsbmuxSession

__all__ = ["Attached", "Instruments", "ProcessSample", "Row", "UsbmuxSession", "boundary", "list_attached", "translate",
           "usbmux_default"]
