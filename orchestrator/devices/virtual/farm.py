"""Start emulated devices from Python: a child process running ``serve.py``, driven over its stdin/stdout.

    async with VirtualFarm(["iphone-12", "iphone-15-pro"]) as farm:
        farm.address                 # usbmuxd address: give it to pymobiledevice3 / the usbmux backend
        farm.udid("iphone-12")       # each device has its own UDID
        await farm.detach(udid)      # fault injection: the device vanishes mid-job

A child process keeps the orchestrator's event loop free (the emulated app's watchdog samples every 10 ms)
and mirrors reality: the devices are another program on the other end of a socket. Readiness handshake: the
child prints one JSON line once it listens; control requests and replies are JSON lines on its stdin/stdout;
closing its stdin (or this process dying) makes it shut down, taking its harness processes with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from orchestrator.devices.virtual.identity import DEFAULT_OS_VERSION
from orchestrator.devices.virtual.serve import DeviceSpec
from orchestrator.errors import DeviceError

UNIX_PATH_MAX = 100  # sun_path is 104-108 bytes; keep a margin


@dataclass(frozen=True)
class FarmDevice:
    udid: str
    profile: str
    name: str
    product_type: str
    os_version: str
    folder: Path  # the device's state folder (apps, containers, crash reports) on this host


class VirtualFarm:
    """A set of emulated devices behind one emulated usbmuxd, in a child process; see the module docstring.

    ``devices`` are profile ids or ``DeviceSpec``s (to set the OS version one reports). Give ``socket_path``
    or ``tcp=("127.0.0.1", 0)`` to choose the listener; by default a Unix socket in a new temporary folder.
    """

    def __init__(self, devices: Sequence[str | DeviceSpec], *, socket_path: Path | None = None,
                 tcp: tuple[str, int] | None = None, root: Path | None = None, profile_dirs: Sequence[Path] = (),
                 env: dict[str, str] | None = None, startup_timeout_s: float = 90.0) -> None:
        self.specs = [d if isinstance(d, DeviceSpec) else DeviceSpec(d, DEFAULT_OS_VERSION) for d in devices]
        if not self.specs:
            raise ValueError("a virtual farm needs at least one device")
        self.socket_path = socket_path
        self.tcp = tcp
        self._own_root = root is None
        self.root = root if root is not None else Path(tempfile.mkdtemp(prefix="mlfv-"))
        self.profile_dirs = tuple(profile_dirs)
        self.env = env
        self.startup_timeout_s = startup_timeout_s
        self.address = ""
        self.devices: list[FarmDevice] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._socket_dir: Path | None = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "orchestrator.devices.virtual.serve", "--control-stdin",
               "--root", str(self.root)]
        for spec in self.specs:
            cmd += ["--profile", spec.profile]
        versions = {s.os_version for s in self.specs}
        if len(versions) > 1:
            raise ValueError("one farm reports one OS version; start two farms for mixed versions")
        cmd += ["--ios", versions.pop()]
        if self.tcp is not None:
            cmd += ["--tcp", f"{self.tcp[0]}:{self.tcp[1]}"]
        else:
            socket_path = self.socket_path or self.root / "usbmuxd.sock"
            if len(str(socket_path)) > UNIX_PATH_MAX:
                self._socket_dir = Path(tempfile.mkdtemp(prefix="mlfv-"))
                socket_path = self._socket_dir / "usbmuxd.sock"
            cmd += ["--socket", str(socket_path)]
        for folder in self.profile_dirs:
            cmd += ["--profiles", str(folder)]
        return cmd

    async def start(self) -> VirtualFarm:
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "serve.log").open("ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                env={**os.environ, **(self.env or {})})
        finally:
            log.close()
        try:
            ready = await asyncio.wait_for(self._read_line(), self.startup_timeout_s)
        except (TimeoutError, DeviceError) as exc:
            await self.stop()
            raise DeviceError(f"the virtual devices did not start: {exc}; log: {self._log_tail()}",
                              fix="check the profile ids (`mlfarm profiles`) and the log above") from exc
        self.address = str(ready["address"])
        self.devices = [FarmDevice(d["udid"], d["profile"], d["name"], d["product_type"], d["os_version"],
                                   Path(d["folder"])) for d in ready["devices"]]
        return self

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "serve.log").read_text(errors="replace")[-2000:]
        return ""

    async def _read_line(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        line = await self._proc.stdout.readline()
        if not line:
            raise DeviceError("the virtual device process exited")
        data: dict[str, Any] = json.loads(line)
        return data

    async def control(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one control request (see serve.py) and return its reply; DeviceError if it was refused."""
        if self._proc is None or self._proc.stdin is None:
            raise DeviceError("the virtual farm is not running", fix="use it inside `async with VirtualFarm(...)`")
        async with self._lock:
            request = {"id": next(self._ids), "op": op, **args}
            self._proc.stdin.write((json.dumps(request) + "\n").encode())
            await self._proc.stdin.drain()
            reply = await asyncio.wait_for(self._read_line(), 30.0)
        if not reply.get("ok"):
            raise DeviceError(f"virtual farm refused {op}: {reply.get('error')}")
        return reply

    def udid(self, profile: str, index: int = 0) -> str:
        matches = [d.udid for d in self.devices if d.profile == profile or d.profile.split("@")[0] == profile]
        if index >= len(matches):
            raise KeyError(f"no virtual device #{index} for profile {profile!r}")
        return matches[index]

    async def detach(self, udid: str) -> None:
        await self.control("detach", udid=udid)

    async def attach(self, udid: str) -> None:
        await self.control("attach", udid=udid)

    async def arm_fault(self, udid: str, name: str, count: int = 1) -> None:
        """``fail-install`` (next install fails signature verification) or ``corrupt-result``."""
        await self.control("fault", udid=udid, name=name, count=count)

    async def set_battery(self, udid: str, percent: int, charging: bool) -> None:
        await self.control("battery", udid=udid, percent=percent, charging=charging)

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.close()  # the child shuts down cleanly when its stdin closes
            try:
                await asyncio.wait_for(proc.wait(), 10.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    async def __aenter__(self) -> VirtualFarm:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()
