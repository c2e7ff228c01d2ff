"""The machine-wide host-CPU lock: measurements on this machine's CPU, one process at a time.

Devices whose harness runs on this CPU (``host``, ``host:ID``, ``virtual:ID``) measure latency that another
process's work would inflate. Inside one ``mlfarm`` process the engine's measurement lane serialises them; across
processes (two ``mlfarm run`` at once) this lock does: an exclusive ``fcntl.flock`` on one file per machine,

    $MLFARM_HOST_CPU_LOCK, else <temporary folder>/mlfarm-host-cpu.lock

taken around each host-CPU launch. ``flock`` locks die with their process, so a killed run never leaves the lock
taken. The async form polls (every ``POLL_S``) instead of blocking a thread: the event loop (and real devices'
jobs) go on meanwhile, and a cancelled wait never acquires the lock behind our back.

    async with HostCpuLock() as lock:     # lock.waited_s: how long another process held it
        ...run one launch...
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

LOCK_ENV = "MLFARM_HOST_CPU_LOCK"
POLL_S = 0.02


def default_lock_path() -> Path:
    return Path(os.environ.get(LOCK_ENV) or Path(tempfile.gettempdir()) / "mlfarm-host-cpu.lock")


class HostCpuLock:
    """One acquisition of the machine-wide lock (not reentrant; make one per launch)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_lock_path()
        self.waited_s = 0.0
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if free; False if another process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def acquire(self) -> None:
        """Take the lock, waiting for another process to release it."""
        start = time.monotonic()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        self.waited_s = time.monotonic() - start

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    async def __aenter__(self) -> HostCpuLock:
        start = time.monotonic()
        while not self.try_acquire():
            await asyncio.sleep(POLL_S)
        self.waited_s = time.monotonic() - start
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


@contextlib.asynccontextmanager
async def machine_lane() -> AsyncIterator[bool]:
    """The engine's cross-process lane (``HostCpuLane(outer=machine_lane)``): wait for the machine-wide lock, so a
    launch never shares this CPU with another mlfarm process's launch; yields False (it did not share)."""
    async with HostCpuLock():
        yield False
