"""Fixtures for the device tests: virtual devices (started once per session), a tiny model, the stand-in .ipa,
and pymobiledevice3's own CLI pointed at the virtual usbmuxd.

The farm lives in a child process; its control channel is driven from a background event loop so that
synchronous tests (each running its own ``asyncio.run``) can share one farm across the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from orchestrator.config import builtin_profiles_dir
from orchestrator.devices.virtual.farm import VirtualFarm
from orchestrator.devices.virtual.ipa import build_placeholder_ipa
from orchestrator.profiles import Catalog, load_catalog

T = TypeVar("T")
PMD = Path(sys.executable).with_name("pymobiledevice3")


class LoopThread:
    """An event loop on a daemon thread; ``call(coro)`` runs a coroutine there and waits for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="farm-loop", daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@dataclass
class FarmHandle:
    """A started VirtualFarm plus synchronous access to its control channel."""

    farm: VirtualFarm
    runner: LoopThread

    @property
    def address(self) -> str:
        return self.farm.address

    def udid(self, profile: str, index: int = 0) -> str:
        return self.farm.udid(profile, index)

    def folder(self, udid: str) -> Path:
        return next(d.folder for d in self.farm.devices if d.udid == udid)

    def control(self, op: str, **args: Any) -> dict[str, Any]:
        return self.runner.call(self.farm.control(op, **args))


@contextlib.contextmanager
def running_farm(devices: list[Any], **kwargs: Any) -> Iterator[FarmHandle]:
    """A VirtualFarm started for the ``with`` block (its control loop on a background thread)."""
    runner = LoopThread()
    farm = VirtualFarm(devices, **kwargs)
    try:
        runner.call(farm.start())
        yield FarmHandle(farm, runner)
    finally:
        runner.call(farm.stop())
        runner.close()


@pytest.fixture(scope="session")
def farm() -> Iterator[FarmHandle]:
    """An iPhone 12 and an iPhone 15 Pro (iOS 16.7.10) behind one emulated usbmuxd (Unix socket)."""
    with running_farm(["iphone-12", "iphone-15-pro"]) as handle:
        yield handle


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog([builtin_profiles_dir()])


@pytest.fixture(scope="session")
def stand_in_ipa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_placeholder_ipa(tmp_path_factory.mktemp("ipa") / "MLFarmHarness.ipa")


MODEL_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    for dest, rows, cols in zip(sys.argv[1::3], sys.argv[2::3], sys.argv[3::3]):
        weight = np.random.RandomState(0).randn(int(cols), int(rows)).astype(np.float32) * 0.05
        @mb.program(input_specs=[mb.TensorSpec(shape=(1, int(rows)))], opset_version=ct.target.iOS16)
        def prog(x):
            return mb.relu(x=mb.linear(x=x, weight=weight), name="y")
        model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                           compute_precision=ct.precision.FLOAT32)
        model.save(dest)
""")


def build_models(specs: list[tuple[Path, int, int]]) -> None:
    """One-layer ML Programs (x[1, rows] -> relu(linear, seeded weights) -> y) built with coremltools' MIL
    builder, all in one subprocess (coremltools is imported once)."""
    args = [str(a) for spec in specs for a in spec]
    subprocess.run([sys.executable, "-c", MODEL_SCRIPT, *args], check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``tiny`` (64x64) and ``big`` (2048 -> 8192: 64 MiB of fp32 weights)."""
    folder = tmp_path_factory.mktemp("models")
    paths = {"tiny": folder / "tiny.mlpackage", "big": folder / "big.mlpackage"}
    build_models([(paths["tiny"], 64, 64), (paths["big"], 2048, 8192)])
    return paths


@pytest.fixture(scope="session")
def tiny_model(models: dict[str, Path]) -> Path:
    return models["tiny"]


def pmd(address: str, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run pymobiledevice3's own CLI against the usbmuxd at ``address``."""
    env = {**os.environ, "USBMUXD_SOCKET_ADDRESS": address, "PYMOBILEDEVICE3_NO_UPDATE_CHECK": "1"}
    env.pop("PYMOBILEDEVICE3_USBMUX", None)
    return subprocess.run([str(PMD), *args], env=env, capture_output=True, text=True, timeout=timeout)
