"""One process per run: a lock file per run id next to the results database.

    <db>.locks/<run id>.lock      {"pid": ..., "host": ..., "started": ...} while a process runs it

``RunLock.acquire`` takes an exclusive ``flock`` without waiting: a second ``mlfarm run --resume`` of a run in
progress is refused (``RunInProgressError``, exit 2) instead of running every job a second time. A clean end
removes the file. A process killed without cleanup leaves the file with no one holding its lock (the kernel
drops ``flock`` locks with the process), which is how the next ``ResultsStore`` open recognises the run as
interrupted (``abandoned``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from orchestrator.errors import UsageError


class RunInProgressError(UsageError):
    pass


def lock_dir(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".locks")


def lock_path(db_path: Path, run_id: str) -> Path:
    return lock_dir(db_path) / f"{run_id}.lock"


def _holder(path: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text()[:4096])
        if isinstance(data, dict):
            return data
    return {}


class RunLock:
    """Held for the whole of one run's execution (``with RunLock(db, run_id):``)."""

    def __init__(self, db_path: Path, run_id: str) -> None:
        self.path = lock_path(db_path, run_id)
        self.run_id = run_id
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            who = _holder(self.path)
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(who.get("started", 0) or 0)))
            raise RunInProgressError(
                f"run {self.run_id} is in progress (pid {who.get('pid', '?')} on {who.get('host', '?')} since "
                f"{since})", fix="wait for it to finish, or stop that process and resume the run then") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.time()}).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # while still held: nobody can take a lock on a file about to vanish
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def abandoned(db_path: Path, run_id: str) -> dict[str, Any] | None:
    """The holder record of a lock file nobody holds (its process died), or None (no file, or held)."""
    path = lock_path(db_path, run_id)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return None
    finally:
        os.close(fd)
    return _holder(path) or {"pid": None}


def forget(db_path: Path, run_id: str) -> None:
    with contextlib.suppress(OSError):
        lock_path(db_path, run_id).unlink()
