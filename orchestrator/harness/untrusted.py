"""Reading files a harness or a device wrote: regular files only, bounded, strict JSON, checked ``.npy``.

Everything here raises ``UntrustedFileError`` (a ValueError with the key it concerns) and never hangs, reads
without bound or lets a value through that would break the store later:

- ``read_regular``: ``O_NOFOLLOW | O_NONBLOCK`` then ``fstat``: a symlink, FIFO, device or directory is
  refused before a byte is read (opening a FIFO for reading would otherwise block until a writer comes);
- ``strict_json``: NaN/Infinity and overflowing floats (``1e999``) refused (JSON Schema's min/max checks are
  false for NaN, so they pass it), integers of more than ``MAX_INT_DIGITS`` digits refused, and every string
  (keys too) must be valid Unicode (a lone surrogate ``"\\ud800"`` parses but cannot be stored as UTF-8);
- ``read_npy``: the header (magic, dtype, shape) is checked against the file size *before* the data is read,
  so a header claiming 14 TiB, an object array or a ``.npz`` archive named ``.npy`` never gets to numpy.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import IO, Any

import numpy as np

MAX_INT_DIGITS = 20  # a uint64 has 20; nothing in a result needs more
NPY_MAGIC = b"\x93NUMPY"
NPY_DTYPES = frozenset({"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"})
MAX_NPY_HEADER = 64 * 1024


class UntrustedFileError(ValueError):
    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


def open_regular(path: Path) -> IO[bytes]:
    """Open ``path`` for reading only if it is a regular file (not a symlink, FIFO, device or folder)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:  # ELOOP: a symlink under O_NOFOLLOW; EISDIR/ENXIO and friends
        raise UntrustedFileError(f"{path.name} cannot be opened as a regular file ({exc.strerror})") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UntrustedFileError(f"{path.name} is not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_regular(path: Path, max_bytes: int) -> bytes:
    """At most ``max_bytes`` of a regular file; larger files are refused, not truncated."""
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_bytes:
            raise UntrustedFileError(f"{path.name} is {size} bytes, more than the {max_bytes} allowed")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UntrustedFileError(f"{path.name} grew past the {max_bytes} bytes allowed while being read")
    return data


def _refuse_constant(name: str) -> Any:
    raise UntrustedFileError(f"{name} is not a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UntrustedFileError(f"{text[:40]} overflows a double")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise UntrustedFileError(f"an integer of {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _check_strings(value: Any, path: str = "") -> None:
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            _check_text(item, where)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, where)
                stack.append((child, f"{where}.{key}" if where else key))
        elif isinstance(item, list):
            stack.extend((child, f"{where}.{i}" if where else str(i)) for i, child in enumerate(item))


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UntrustedFileError("a string holds a lone surrogate (not valid Unicode)", where) from exc


def strict_json(data: bytes) -> Any:
    """Parse JSON refusing non-finite numbers, huge integers and invalid Unicode (see the module docstring)."""
    try:
        doc = json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float,
                         parse_int=_bounded_int)
    except UntrustedFileError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise UntrustedFileError(f"not valid JSON: {exc}") from exc
    except ValueError as exc:  # e.g. an int over Python's digit limit raised before parse_int could
        raise UntrustedFileError(f"not valid JSON: {exc}") from exc
    _check_strings(doc)
    return doc


def _npy_header(handle: IO[bytes], name: str) -> tuple[np.dtype[Any], tuple[int, ...], bool]:
    magic = handle.read(len(NPY_MAGIC))
    if magic != NPY_MAGIC:
        kind = "a zip archive (.npz?)" if magic.startswith(b"PK") else "not a .npy file"
        raise UntrustedFileError(f"{name} is {kind}")
    version = tuple(handle.read(2))
    reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in reader:
        raise UntrustedFileError(f"{name}: unsupported .npy version {version}")
    try:
        shape, fortran, dtype = reader[version](handle, max_header_size=MAX_NPY_HEADER)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise UntrustedFileError(f"{name}: unreadable .npy header: {exc}") from exc
    return dtype, tuple(int(d) for d in shape), bool(fortran)


def read_npy(path: Path, max_bytes: int) -> np.ndarray:
    """A ``.npy`` array whose header agrees with the file's size, of a plain numeric dtype, at most
    ``max_bytes`` of data."""
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        dtype, shape, fortran = _npy_header(handle, path.name)
        if dtype.name not in NPY_DTYPES or dtype.hasobject:
            raise UntrustedFileError(f"{path.name}: dtype {dtype} is not a plain numeric type")
        if any(d < 0 for d in shape) or len(shape) > 32:
            raise UntrustedFileError(f"{path.name}: invalid shape {shape}")
        count = math.prod(shape)
        claimed = count * dtype.itemsize
        if claimed > max_bytes:
            raise UntrustedFileError(f"{path.name}: header claims {claimed} bytes, more than {max_bytes}")
        if claimed != size - handle.tell():
            raise UntrustedFileError(f"{path.name}: header claims {claimed} bytes of data, the file holds "
                                     f"{size - handle.tell()}")
        data = handle.read(claimed)
    array = np.frombuffer(data, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran else "C").copy()
