"""Virtual iPhones and iPads that speak the real wire protocols, so pymobiledevice3's own client and CLI (and
mlfarm's usbmux backend) run against them unmodified, without hardware. Never a source of device latency:
limits are enforced by mlfarm's watchdog and the model runs on this host (results say ``emulated``).

This package is a protocol *emulator*: the device side of usbmux, lockdownd (TLS, pairing), AFC,
installation_proxy, house_arrest, crash reports and DVT. It imports pymobiledevice3's DTX classes (their
stack is symmetric, so a server-side ``DTXConnection`` serves DVT), its pairing-certificate helper and its
device table. That is the one exception to "only ``devices/usbmux/`` imports pymobiledevice3": nothing here
is a client of a device.

    farm.py         VirtualFarm: devices in a child process, from Python (``async with VirtualFarm([...])``)
    serve.py        that child process (also ``mlfarm virtual serve``): devices + usbmuxd + control commands
    usbmuxd.py      the emulated usbmuxd (Unix socket or TCP), routing Connect to device ports
    device.py       one device: identity, folders, apps, processes, one-shot service ports, detach/attach
    identity.py     UDID, ProductType, OS version, keys, the pair record provisioned for this host
    lockdownd.py    values and domains, sessions with TLS, StartService (the service table)
    services.py     installation_proxy, house_arrest, crash report copy/mover;  afc.py: the AFC server
    dvt.py          process control, device info, sysmontap
    processes.py    system daemons, launched apps, the harness stand-in under the memory limit (jetsam)
    apps.py         installed apps from .ipa files;  ipa.py: the harness stand-in .ipa
    framing.py      usbmux packets and length-prefixed plists
"""

from orchestrator.devices.virtual.farm import FarmDevice, VirtualFarm
from orchestrator.devices.virtual.ipa import HARNESS_BUNDLE_ID, build_placeholder_ipa
from orchestrator.devices.virtual.serve import DeviceSpec

__all__ = ["HARNESS_BUNDLE_ID", "DeviceSpec", "FarmDevice", "VirtualFarm", "build_placeholder_ipa"]
