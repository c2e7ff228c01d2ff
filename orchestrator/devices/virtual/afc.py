"""The AFC file server (``com.apple.afc``, crash report copy, house_arrest's vended container), over one folder.

Packet: 40-byte little-endian header (``CFA6LPAA``, entire length, this length, packet number, opcode) and a
payload. Every request gets one reply carrying its packet number: ``STATUS`` (u64 error code), ``DATA`` or
``FILE_OPEN_RES`` (u64 handle). Paths are absolute inside the served folder; nothing resolves outside it
(``..`` is clamped at the root and symlinks are never followed out).
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import shutil
import struct
from enum import IntEnum
from pathlib import Path
from typing import IO

HEADER = struct.Struct("<8sQQQQ")
MAGIC = b"CFA6LPAA"
MAX_PACKET = (1 << 30) + 4096


class Op(IntEnum):
    STATUS = 1
    DATA = 2
    READ_DIR = 3
    REMOVE_PATH = 8
    MAKE_DIR = 9
    GET_FILE_INFO = 0xA
    GET_DEVINFO = 0xB
    FILE_OPEN = 0xD
    FILE_OPEN_RES = 0xE
    READ = 0xF
    WRITE = 0x10
    FILE_SEEK = 0x11
    FILE_TELL = 0x12
    FILE_TELL_RES = 0x13
    FILE_CLOSE = 0x14
    FILE_SET_SIZE = 0x15
    RENAME_PATH = 0x18
    FILE_LOCK = 0x1B
    SET_FILE_TIME = 0x1E


class Err(IntEnum):
    SUCCESS = 0
    UNKNOWN = 1
    INVALID_ARG = 7
    OBJECT_NOT_FOUND = 8
    OBJECT_IS_DIR = 9
    PERM_DENIED = 10
    OP_NOT_SUPPORTED = 15
    OBJECT_EXISTS = 16
    IO_ERROR = 20
    DIR_NOT_EMPTY = 33


# AFC open modes -> Python modes (r, r+, w, w+, a, a+); r+ creates like O_RDWR|O_CREAT
OPEN_MODES = {1: "rb", 2: "r+b", 3: "wb", 4: "w+b", 5: "ab", 6: "a+b"}


class AfcError(Exception):
    def __init__(self, code: Err) -> None:
        super().__init__(code.name)
        self.code = code


def _cstrings(payload: bytes) -> list[str]:
    return [p.decode("utf-8", errors="replace") for p in payload.split(b"\0")[:-1]]


def _kv(pairs: dict[str, str | int]) -> bytes:
    return b"".join(f"{k}\0{v}\0".encode() for k, v in pairs.items())


class AfcServer:
    """Serves one AFC session over ``root``; ``serve`` returns when the client goes away."""

    def __init__(self, root: Path, *, device_model: str = "iPhone") -> None:
        self.root = root.resolve()
        self.device_model = device_model
        self._handles: dict[int, IO[bytes]] = {}
        self._next_handle = 1

    def path(self, remote: str) -> Path:
        """The local path for ``remote``; ``..`` cannot climb above the root, symlinks cannot leave it."""
        clean = posixpath.normpath("/" + remote).lstrip("/")
        local = self.root / clean if clean not in ("", ".") else self.root
        resolved = local.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise AfcError(Err.PERM_DENIED)
        return local

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readexactly(HEADER.size)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                magic, entire, _this, packet, op = HEADER.unpack(head)
                if magic != MAGIC or not HEADER.size <= entire <= MAX_PACKET:
                    return
                payload = await reader.readexactly(entire - HEADER.size)
                try:
                    reply_op, data = self.handle(op, payload)
                except AfcError as exc:
                    reply_op, data = Op.STATUS, struct.pack("<Q", exc.code)
                except OSError:
                    reply_op, data = Op.STATUS, struct.pack("<Q", Err.IO_ERROR)
                size = HEADER.size + len(data)
                writer.write(HEADER.pack(MAGIC, size, size, packet, reply_op) + data)
                await writer.drain()
        finally:
            for handle in self._handles.values():
                handle.close()
            self._handles.clear()

    def handle(self, op: int, payload: bytes) -> tuple[Op, bytes]:
        ok = (Op.STATUS, struct.pack("<Q", Err.SUCCESS))
        if op == Op.GET_FILE_INFO:
            return Op.DATA, self._stat(self.path(_cstrings(payload)[0]))
        if op == Op.READ_DIR:
            target = self.path(_cstrings(payload)[0])
            if not target.exists():
                raise AfcError(Err.OBJECT_NOT_FOUND)
            if not target.is_dir():
                raise AfcError(Err.INVALID_ARG)
            return Op.DATA, b"".join(n.encode() + b"\0" for n in [".", "..", *sorted(os.listdir(target))])
        if op == Op.MAKE_DIR:
            target = self.path(_cstrings(payload)[0])
            if target.exists() and not target.is_dir():
                raise AfcError(Err.OBJECT_EXISTS)
            target.mkdir(parents=True, exist_ok=True)
            return ok
        if op == Op.REMOVE_PATH:
            self._remove(self.path(_cstrings(payload)[0]))
            return ok
        if op == Op.RENAME_PATH:
            source, target = (self.path(p) for p in _cstrings(payload)[:2])
            if not source.exists():
                raise AfcError(Err.OBJECT_NOT_FOUND)
            if target.is_dir() and any(target.iterdir()):
                raise AfcError(Err.DIR_NOT_EMPTY)
            if target.is_dir():
                target.rmdir()
            os.replace(source, target)
            return ok
        if op == Op.GET_DEVINFO:
            usage = shutil.disk_usage(self.root)
            return Op.DATA, _kv({"Model": self.device_model, "FSTotalBytes": usage.total,
                                 "FSFreeBytes": usage.free, "FSBlockSize": 4096})
        if op == Op.SET_FILE_TIME:
            return ok
        return self._file_op(op, payload)

    def _file_op(self, op: int, payload: bytes) -> tuple[Op, bytes]:
        ok = (Op.STATUS, struct.pack("<Q", Err.SUCCESS))
        if op == Op.FILE_OPEN:
            (mode,) = struct.unpack_from("<Q", payload)
            target = self.path(_cstrings(payload[8:])[0])
            if mode not in OPEN_MODES:
                raise AfcError(Err.INVALID_ARG)
            if target.is_dir():
                raise AfcError(Err.OBJECT_IS_DIR)
            if mode == 1 and not target.exists():
                raise AfcError(Err.OBJECT_NOT_FOUND)
            if not target.parent.is_dir():
                raise AfcError(Err.OBJECT_NOT_FOUND)
            if mode == 2 and not target.exists():
                target.touch()
            handle = self._next_handle
            self._next_handle += 1
            self._handles[handle] = open(target, OPEN_MODES[mode])  # noqa: SIM115 - lives until FILE_CLOSE
            return Op.FILE_OPEN_RES, struct.pack("<Q", handle)
        (handle,) = struct.unpack_from("<Q", payload)
        file = self._handles.get(handle)
        if file is None:
            raise AfcError(Err.INVALID_ARG)
        if op == Op.READ:
            (size,) = struct.unpack_from("<Q", payload, 8)
            return Op.DATA, file.read(min(size, 64 << 20))
        if op == Op.WRITE:
            file.write(payload[8:])
            return ok
        if op == Op.FILE_SEEK:
            whence, offset = struct.unpack_from("<Qq", payload, 8)
            file.seek(offset, whence)
            return ok
        if op == Op.FILE_TELL:
            return Op.FILE_TELL_RES, struct.pack("<Q", file.tell())
        if op == Op.FILE_SET_SIZE:
            (size,) = struct.unpack_from("<Q", payload, 8)
            file.truncate(size)
            return ok
        if op == Op.FILE_CLOSE:
            self._handles.pop(handle).close()
            return ok
        if op == Op.FILE_LOCK:
            return ok
        raise AfcError(Err.OP_NOT_SUPPORTED)

    def _stat(self, target: Path) -> bytes:
        if not target.exists() and not target.is_symlink():
            raise AfcError(Err.OBJECT_NOT_FOUND)
        st = target.lstat()
        kind = "S_IFLNK" if target.is_symlink() else "S_IFDIR" if target.is_dir() else "S_IFREG"
        mtime = int(st.st_mtime * 1e9)
        info: dict[str, str | int] = {
            "st_size": st.st_size, "st_blocks": (st.st_size + 511) // 512,
            "st_nlink": st.st_nlink, "st_ifmt": kind, "st_mtime": mtime, "st_birthtime": mtime,
        }
        return _kv(info)

    def _remove(self, target: Path) -> None:
        if target == self.root:
            raise AfcError(Err.PERM_DENIED)
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            if any(target.iterdir()):
                raise AfcError(Err.DIR_NOT_EMPTY)
            target.rmdir()
        else:
            raise AfcError(Err.OBJECT_NOT_FOUND)
