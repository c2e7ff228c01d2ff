"""Device backends behind one protocol: ``host`` (this machine), ``usbmux`` (real devices through
pymobiledevice3; the only module importing it), ``virtual`` (an emulated device speaking the wire protocols)."""

from orchestrator.devices.base import Device, DeviceInfo, Health, MemoryFigures, RunOutcome

__all__ = ["Device", "DeviceInfo", "Health", "MemoryFigures", "RunOutcome"]
