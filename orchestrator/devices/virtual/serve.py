"""Run emulated devices behind one emulated usbmuxd, in the foreground, until stopped.

    python -m orchestrator.devices.virtual.serve --profile iphone-12 --profile iphone-15-pro \\
        [--count N] [--socket PATH | --tcp HOST:PORT] [--ios 16.7.10] [--root DIR] [--control-stdin]

(``mlfarm virtual serve`` is the same thing with the CLI's conventions.) When everything listens, one JSON
line goes to stdout: ``{"ready": true, "address": ..., "devices": [{"udid", "profile", ...}]}``.
With ``--control-stdin`` the process also reads JSON commands from stdin, one per line, answers each with one
JSON line on stdout, and exits when stdin closes (so it never outlives the process that started it):

    {"id": 1, "op": "detach", "udid": "..."}            the device vanishes (connections drop, apps die)
    {"id": 2, "op": "attach", "udid": "..."}            it comes back
    {"id": 3, "op": "fault", "udid": "...", "name": "fail-install" | "corrupt-result", "count": 1}
    {"id": 4, "op": "battery", "udid": "...", "percent": 15, "charging": false}
    {"id": 5, "op": "list"}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from orchestrator.config import builtin_profiles_dir
from orchestrator.devices.virtual.device import FAULTS, VirtualDevice
from orchestrator.devices.virtual.identity import DEFAULT_OS_VERSION, DeviceIdentity
from orchestrator.devices.virtual.lockdownd import lockdownd
from orchestrator.devices.virtual.usbmuxd import MuxServer
from orchestrator.profiles import load_catalog
from orchestrator.profiles.model import DeviceProfile


@dataclass(frozen=True)
class DeviceSpec:
    """One device to emulate: a profile id (``iphone-12``, ``ipad-pro-m1@16gb``) and the OS it reports."""

    profile: str
    os_version: str = DEFAULT_OS_VERSION


class RunningFarm:
    """The devices and the usbmuxd of one serve process; ``command`` applies a control request."""

    def __init__(self, devices: list[VirtualDevice], server: MuxServer, root: Path) -> None:
        self.devices = devices
        self.server = server
        self.root = root
        self.stopped = asyncio.Event()

    def describe(self) -> dict[str, Any]:
        return {"ready": True, "address": self.server.address, "root": str(self.root), "devices": [
            {"udid": d.identity.udid, "profile": d.identity.profile.id, "name": d.identity.name,
             "product_type": d.identity.product_type, "os_version": d.identity.os_version,
             "device_id": d.device_id, "attached": d.attached, "folder": str(d.root)} for d in self.devices]}

    def _device(self, udid: Any) -> VirtualDevice:
        for device in self.devices:
            if device.identity.udid == udid:
                return device
        raise KeyError(f"no virtual device {udid!r}")

    async def command(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "list":
            return self.describe()
        if op == "stop":
            self.stopped.set()
            return {}
        device = self._device(request.get("udid"))
        if op == "detach":
            await device.detach()
        elif op == "attach":
            device.attach()
        elif op == "fault":
            name = str(request.get("name"))
            if name not in FAULTS:
                raise KeyError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
            device.faults[name] = device.faults.get(name, 0) + int(request.get("count", 1))
        elif op == "battery":
            device.battery.update(BatteryCurrentCapacity=int(request.get("percent", 100)),
                                  BatteryIsCharging=bool(request.get("charging", True)))
        else:
            raise KeyError(f"unknown op {op!r}")
        if op in ("detach", "attach"):
            await self.server.notify(device)
        return {}

    async def close(self) -> None:
        await self.server.close()
        for device in self.devices:
            await device.processes.shutdown()


async def start_farm(specs: Sequence[DeviceSpec], profiles: Callable[[str], DeviceProfile], *, root: Path,
                     socket_path: Path | None = None, tcp: tuple[str, int] | None = None) -> RunningFarm:
    """Create the devices (keys are generated in threads: ~0.4 s each) and start listening."""
    buid = str(uuid.uuid4()).upper()
    host_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    counts: dict[str, int] = {}
    jobs = []
    for spec in specs:
        profile = profiles(spec.profile)
        index = counts.get(profile.id, 0)
        counts[profile.id] = index + 1
        jobs.append(asyncio.to_thread(DeviceIdentity.create, profile, index=index, system_buid=buid,
                                      os_version=spec.os_version, host_key=host_key))
    identities = await asyncio.gather(*jobs)
    devices = [VirtualDevice(ident, root / ident.udid, device_id=n + 1) for n, ident in enumerate(identities)]
    server = MuxServer(devices, buid=buid, lockdown=lockdownd)
    await server.start(socket_path=socket_path, tcp=tcp)
    return RunningFarm(devices, server, root)


async def _control_loop(farm: RunningFarm) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        try:
            request = json.loads(line)
            reply: dict[str, Any] = {"id": request.get("id"), "ok": True, **await farm.command(request)}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            reply = {"id": None, "ok": False, "error": str(exc)}
            with contextlib.suppress(Exception):
                reply["id"] = json.loads(line).get("id")
        print(json.dumps(reply), flush=True)
    farm.stopped.set()  # the parent went away


def parse_tcp(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--tcp expects HOST:PORT, got {value!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is this machine only; names are not resolved."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def remote_warning(tcp: tuple[str, int] | None, *, allow_remote: bool) -> str | None:
    """Refuse a listener beyond loopback unless ``allow_remote``; then return the warning to print.

    Anyone who reaches the emulated usbmuxd can install apps, write their containers and launch them, so a
    listener other machines can reach is opt-in and announced."""
    if tcp is None or is_loopback(tcp[0]):
        return None
    if not allow_remote:
        raise ValueError(f"--tcp {tcp[0]}:{tcp[1]} is reachable beyond this machine; the emulator listens on "
                         "loopback only (127.0.0.1) unless --allow-remote is given")
    return (f"warning: the emulated usbmuxd listens on {tcp[0]}: any machine that reaches it can install and "
            "launch apps on the virtual devices (they run as this user, isolated from the app container only)")


async def serve(specs: Sequence[DeviceSpec], profiles: Callable[[str], DeviceProfile], *, root: Path,
                socket_path: Path | None, tcp: tuple[str, int] | None, control_stdin: bool,
                announce: Callable[[dict[str, Any]], None]) -> None:
    """Start, announce readiness, then serve until SIGINT/SIGTERM (or stdin closes with ``control_stdin``)."""
    farm = await start_farm(specs, profiles, root=root, socket_path=socket_path, tcp=tcp)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, farm.stopped.set)
    announce(farm.describe())
    control = asyncio.create_task(_control_loop(farm)) if control_stdin else None
    try:
        await farm.stopped.wait()
    finally:
        if control is not None:
            control.cancel()
        await farm.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.devices.virtual.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", action="append", required=True, help="device profile id (repeatable)")
    parser.add_argument("--count", type=int, default=1, help="devices per profile [1]")
    parser.add_argument("--ios", default=DEFAULT_OS_VERSION, help=f"OS version they report [{DEFAULT_OS_VERSION}]")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--socket", type=Path, help="Unix socket path for the emulated usbmuxd")
    where.add_argument("--tcp", help="HOST:PORT for the emulated usbmuxd (port 0 picks a free one)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="accept a --tcp address beyond loopback (warned: remote clients launch apps)")
    parser.add_argument("--root", type=Path, help="state folder [a new temporary folder]")
    parser.add_argument("--profiles", action="append", type=Path, default=[], help="extra profile folder")
    parser.add_argument("--control-stdin", action="store_true", help="read control commands from stdin")
    args = parser.parse_args(argv)
    catalog = load_catalog([builtin_profiles_dir(), *args.profiles])
    root = args.root or Path(tempfile.mkdtemp(prefix="mlfarm-virtual-"))
    specs = [DeviceSpec(p, args.ios) for p in args.profile for _ in range(args.count)]
    socket_path = args.socket if args.socket or args.tcp else root / "usbmuxd.sock"
    try:
        tcp = parse_tcp(args.tcp) if args.tcp else None
        warning = remote_warning(tcp, allow_remote=args.allow_remote)
    except ValueError as exc:
        parser.error(str(exc))
    if warning:
        print(warning, file=sys.stderr, flush=True)
    asyncio.run(serve(specs, catalog.get, root=root, socket_path=socket_path, tcp=tcp,
                      control_stdin=args.control_stdin, announce=lambda d: print(json.dumps(d), flush=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
