"""The emulated usbmuxd: one listener (Unix socket or TCP) in front of every emulated device.

Plist protocol (version 1) only, which is what pymobiledevice3 picks when the ``ReadBUID`` probe answers
with version 1. Requests carry a tag the reply echoes. ``Connect`` (port in network byte order) turns the
client's socket into a raw pipe to that device port: from then on the connection belongs to the device.
``Listen`` keeps the socket for ``Attached``/``Detached`` events.

Pair records hold the host's private key, so like usbmuxd they belong to a host: the record the emulator
provisioned is the local host's and is read only by local clients (a Unix-socket peer of the serving user, or
a loopback TCP peer); a record a client saves is kept for that client's host and read back only by it. A
Unix-socket peer of another user is refused outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.devices.virtual.device import Handler, VirtualDevice
from orchestrator.devices.virtual.framing import FramingError, mux_plist, read_mux_packet

RESULT_OK, RESULT_BADCOMMAND, RESULT_BADDEV, RESULT_CONNREFUSED = 0, 1, 2, 3
APPLE_USB_PRODUCT_ID = 0x12A8


LOCAL_HOST = "local"


def _result(number: int) -> dict[str, Any]:
    return {"MessageType": "Result", "Number": number}


def _record_key(record_id: Any) -> str:
    return str(record_id).replace("-", "").upper()


def client_host(writer: asyncio.StreamWriter) -> str | None:
    """Which host a connection comes from: ``LOCAL_HOST``, ``tcp:<address>`` for a remote peer, or None for a
    Unix-socket peer running as another user (refused)."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family == socket.AF_UNIX:
        peercred = getattr(socket, "SO_PEERCRED", None)
        if peercred is None:  # not Linux: the socket's 0600 mode is the only gate
            return LOCAL_HOST
        _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i")))
        return LOCAL_HOST if uid == os.getuid() else None
    peer = writer.get_extra_info("peername")
    address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        loopback = False
    return LOCAL_HOST if loopback else f"tcp:{address}"


class MuxServer:
    """Serves ``devices`` (keyed by their usbmux DeviceID); ``lockdown(device)`` makes a lockdownd handler."""

    def __init__(self, devices: list[VirtualDevice], *, buid: str,
                 lockdown: Callable[[VirtualDevice], Handler]) -> None:
        self.devices = {d.device_id: d for d in devices}
        self.buid = buid
        self.lockdown = lockdown
        self.saved_records: dict[tuple[str, str], bytes] = {}  # (client host, UDID without dashes) -> record
        self._listeners: set[asyncio.StreamWriter] = set()
        self._server: asyncio.base_events.Server | None = None
        self.address = ""

    async def start(self, *, socket_path: Path | None = None, tcp: tuple[str, int] | None = None) -> str:
        """Listen and return the address clients use (``USBMUXD_SOCKET_ADDRESS``)."""
        if (socket_path is None) == (tcp is None):
            raise ValueError("give exactly one of socket_path and tcp")
        if socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                socket_path.unlink()
            self._server = await asyncio.start_unix_server(self._client, path=str(socket_path))
            os.chmod(socket_path, 0o600)
            self.address = str(socket_path)
        else:
            assert tcp is not None
            self._server = await asyncio.start_server(self._client, host=tcp[0], port=tcp[1],
                                                      family=socket.AF_INET)
            port = self._server.sockets[0].getsockname()[1]
            self.address = f"{tcp[0]}:{port}"
        return self.address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._listeners):
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    def _attached(self, device: VirtualDevice) -> dict[str, Any]:
        udid = device.identity.udid
        return {"MessageType": "Attached", "DeviceID": device.device_id, "Properties": {
            "ConnectionType": "USB", "DeviceID": device.device_id, "LocationID": 0x01100000 + device.device_id,
            "ProductID": APPLE_USB_PRODUCT_ID, "SerialNumber": udid, "USBSerialNumber": udid.replace("-", ""),
            "ConnectionSpeed": 480000000}}

    async def notify(self, device: VirtualDevice) -> None:
        """Tell listeners that ``device`` was attached or detached (its current state)."""
        message = (self._attached(device) if device.attached
                   else {"MessageType": "Detached", "DeviceID": device.device_id})
        for writer in list(self._listeners):
            try:
                writer.write(mux_plist(0, message))
                await writer.drain()
            except (ConnectionError, OSError):
                self._listeners.discard(writer)

    def _reply(self, message: dict[str, Any], host: str) -> dict[str, Any]:
        kind = message.get("MessageType")
        if kind == "ReadBUID":
            return {"BUID": self.buid}
        if kind == "ListDevices":
            return {"DeviceList": [self._attached(d) for d in self.devices.values() if d.attached]}
        if kind == "ListListeners":
            return {"ListenerList": []}
        if kind in ("ReadPairRecord", "SavePairRecord", "DeletePairRecord"):
            return self._pair_record(kind, message, host)
        return _result(RESULT_BADCOMMAND)

    def _pair_record(self, kind: Any, message: dict[str, Any], host: str) -> dict[str, Any]:
        key = (host, _record_key(message.get("PairRecordID", "")))
        if kind == "SavePairRecord":
            if not isinstance(message.get("PairRecordData"), bytes):
                return _result(RESULT_BADCOMMAND)
            self.saved_records[key] = message["PairRecordData"]
            return _result(RESULT_OK)
        if kind == "DeletePairRecord":
            self.saved_records.pop(key, None)
            return _result(RESULT_OK)
        if key in self.saved_records:
            return {"PairRecordData": self.saved_records[key]}
        if host == LOCAL_HOST:
            for device in self.devices.values():
                if _record_key(device.identity.udid) == key[1]:
                    return {"PairRecordData": device.identity.pair_record_bytes()}
        return _result(RESULT_BADDEV)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = client_host(writer)
        if host is None:
            writer.close()
            return
        try:
            while (packet := await read_mux_packet(reader)) is not None:
                message = packet.plist()
                kind = message.get("MessageType")
                if kind == "Connect":
                    await self._connect(packet.tag, message, reader, writer)
                    return
                if kind == "Listen":
                    writer.write(mux_plist(packet.tag, _result(RESULT_OK)))
                    for device in self.devices.values():
                        if device.attached:
                            writer.write(mux_plist(0, self._attached(device)))
                    await writer.drain()
                    self._listeners.add(writer)
                    continue
                writer.write(mux_plist(packet.tag, self._reply(message, host)))
                await writer.drain()
        except (FramingError, ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            self._listeners.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _connect(self, tag: int, message: dict[str, Any], reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        device = self.devices.get(int(message.get("DeviceID", -1)))
        if device is None or not device.attached:
            writer.write(mux_plist(tag, _result(RESULT_BADDEV)))
            await writer.drain()
            return
        port = socket.ntohs(int(message.get("PortNumber", 0)) & 0xFFFF)
        service = device.open_port(port, self.lockdown(device))
        if service is None:
            writer.write(mux_plist(tag, _result(RESULT_CONNREFUSED)))
            await writer.drain()
            return
        writer.write(mux_plist(tag, _result(RESULT_OK)))
        await writer.drain()
        await device.serve(service, reader, writer)
