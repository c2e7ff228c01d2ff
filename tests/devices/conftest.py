"""Fixtures for the device tests: virtual devices (started once per session), a tiny model, the stand-in .ipa,
and pymobiledevice3's own CLI pointed at the virtual usbmuxd.

The farm lives in a child process; its control channel is driven from a background event loop so that
synchronous tests (each running its own ``asyncio.run``) can share one farm across the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from orchestrator.config import builtin_profiles_dir
from orchestrator.devices.virtual.farm import VirtualFarm
from orchestrator.devices.virtual.ipa import HARNESS_BUNDLE_ID, build_placeholder_ipa
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
def shared_farm() -> Iterator[FarmHandle]:
    """An iPhone 12 and an iPhone 15 Pro (iOS 16.7.10) behind one emulated usbmuxd (Unix socket), started once."""
    with running_farm(["iphone-12", "iphone-15-pro"]) as handle:
        yield handle


@pytest.fixture
def farm(shared_farm: FarmHandle, stand_in_ipa: Path) -> Iterator[FarmHandle]:
    """The session's farm for one test, put back afterwards as the test found it: every device attached at full
    battery, no harness still running, the same apps installed and no file the test added (pushed models, jobs,
    crash reports, media files). Faults armed and not consumed are not undone (the farm has no op for that)."""
    before = {d.udid: device_files(d.folder) for d in shared_farm.farm.devices}
    apps = {d.udid: installed_apps(d.folder) for d in shared_farm.farm.devices}
    yield shared_farm
    restore_farm(shared_farm, before, apps, stand_in_ipa)


def device_files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def installed_apps(folder: Path) -> set[str]:
    apps = folder / "Applications"
    return {p.name for p in apps.iterdir()} if apps.is_dir() else set()


def harness_processes(root: Path) -> list[psutil.Process]:
    """Host processes emulating an app of a device under ``root`` (their command line names a job under it)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if "orchestrator.harness" in cmdline and any(str(root) in arg for arg in cmdline):
            found.append(proc)
    return found


def wait_until(predicate: Callable[[], Any], what: str, timeout_s: float = 60.0, poll_s: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); fail naming ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(poll_s)
    return value


def restore_farm(handle: FarmHandle, files: dict[str, set[str]], apps: dict[str, set[str]], ipa: Path) -> None:
    root = handle.farm.root.resolve()
    for device in handle.farm.devices:
        handle.control("attach", udid=device.udid)
        handle.control("battery", udid=device.udid, percent=100, charging=True)
    wait_until(lambda: not harness_processes(root), "the harness processes a test started to end")
    for device in handle.farm.devices:
        now = installed_apps(device.folder)
        if now != apps[device.udid]:
            asyncio.run(_reinstall(handle, device.udid, remove=now - apps[device.udid],
                                   add=apps[device.udid] - now, ipa=ipa))
        added = device_files(device.folder) - files[device.udid]
        for rel in sorted(added, key=lambda r: r.count("/"), reverse=True):  # files, then their folders
            path = device.folder / rel
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


async def _reinstall(handle: FarmHandle, udid: str, *, remove: set[str], add: set[str], ipa: Path) -> None:
    from pymobiledevice3.lockdown import create_using_usbmux
    from pymobiledevice3.services.installation_proxy import InstallationProxyService

    unknown = add - {HARNESS_BUNDLE_ID}
    assert not unknown, f"a test uninstalled {unknown} from the shared farm and only the harness can be put back"
    async with await create_using_usbmux(serial=udid, usbmux_address=handle.address, autopair=False) as ld:
        proxy = InstallationProxyService(lockdown=ld)
        for bundle in remove:
            await proxy.uninstall(bundle)
        if add:
            await proxy.install_from_local(ipa)


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


def job_json_on_device(handle: FarmHandle, udid: str, job_id: str) -> Path:
    """Where a job's job.json lands in the harness's container on a virtual device."""
    from orchestrator.devices.host import job_folder_name

    return (handle.folder(udid) / "Containers" / HARNESS_BUNDLE_ID / "Documents" / "jobs"
            / job_folder_name(job_id) / "job.json").resolve()


def job_processes(job_json: Path) -> list[psutil.Process]:
    """Host processes running the harness on exactly this job.json (a path under the farm's own temp root)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if "orchestrator.harness" in cmdline and str(job_json) in cmdline:
            found.append(proc)
    return found


async def harness_started(job_json: Path, timeout_s: float = 60.0) -> psutil.Process:
    """Wait (bounded) until the device's app runs the harness on ``job_json``: the job is under way."""
    deadline = time.monotonic() + timeout_s
    while not (procs := job_processes(job_json)):
        if time.monotonic() > deadline:
            raise AssertionError(f"no harness started on {job_json} within {timeout_s:g} s")
        await asyncio.sleep(0.02)
    return procs[0]
