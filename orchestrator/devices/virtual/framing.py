"""Byte framing shared by the emulated daemons: usbmux packets and length-prefixed plists.

    usbmux      u32le length (incl. the 16-byte header) | u32le version | u32le message | u32le tag | body
                version 1 + message 8 (PLIST): the body is an XML plist
    lockdownd   u32be length | XML plist   (also installation_proxy and house_arrest's vend request)
"""

from __future__ import annotations

import asyncio
import plistlib
import struct
from dataclasses import dataclass
from typing import Any

USBMUX_HEADER = struct.Struct("<IIII")
PLIST_VERSION = 1
PLIST_MESSAGE = 8
MAX_MUX_PACKET = 1 << 20
MAX_PLIST = 64 << 20


class FramingError(Exception):
    """The peer sent something that is not a frame of this protocol; the connection is dropped."""


@dataclass(frozen=True)
class MuxPacket:
    version: int
    message: int
    tag: int
    body: bytes

    def plist(self) -> dict[str, Any]:
        if self.message != PLIST_MESSAGE:
            raise FramingError(f"binary usbmux message {self.message} is not supported (plist protocol only)")
        try:
            data = plistlib.loads(self.body)
        except Exception as exc:  # plistlib raises several types for garbage
            raise FramingError(f"usbmux body is not a plist: {exc}") from exc
        if not isinstance(data, dict):
            raise FramingError("usbmux plist is not a dictionary")
        return data


async def read_mux_packet(reader: asyncio.StreamReader) -> MuxPacket | None:
    """The next packet, or None on a clean EOF between packets."""
    try:
        head = await reader.readexactly(USBMUX_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FramingError("usbmux header cut short") from exc
        return None
    length, version, message, tag = USBMUX_HEADER.unpack(head)
    if length < USBMUX_HEADER.size or length > MAX_MUX_PACKET:
        raise FramingError(f"usbmux packet length {length} out of range")
    body = await reader.readexactly(length - USBMUX_HEADER.size)
    return MuxPacket(version, message, tag, body)


def mux_plist(tag: int, payload: dict[str, Any]) -> bytes:
    body = plistlib.dumps(payload)
    return USBMUX_HEADER.pack(USBMUX_HEADER.size + len(body), PLIST_VERSION, PLIST_MESSAGE, tag) + body


async def read_plist(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """A u32be-prefixed plist dictionary, or None on a clean EOF."""
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FramingError("plist length cut short") from exc
        return None
    (length,) = struct.unpack(">I", head)
    if length > MAX_PLIST:
        raise FramingError(f"plist of {length} bytes is over the limit")
    raw = await reader.readexactly(length)
    try:
        data = plistlib.loads(raw)
    except Exception as exc:
        raise FramingError(f"not a plist: {exc}") from exc
    if not isinstance(data, dict):
        raise FramingError("plist is not a dictionary")
    return data


def plist_frame(payload: dict[str, Any]) -> bytes:
    body = plistlib.dumps(payload)
    return struct.pack(">I", len(body)) + body


async def write_plist(writer: asyncio.StreamWriter, payload: dict[str, Any]) -> None:
    writer.write(plist_frame(payload))
    await writer.drain()
