"""The usbmux backend (pymobiledevice3 inside) driving virtual devices: connect, prepare/install, push, run,
and every way a job can end (ok, jetsam from a parsed JetsamEvent, invalid result, crash, timeout), plus the
errors it raises at its boundary (install failure, no tunnel on iOS 17+, unreachable usbmuxd)."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestrator.devices.base import Device
from orchestrator.devices.usbmux import translate
from orchestrator.devices.usbmux_device import UsbmuxDevice, UsbmuxOptions, connect_device
from orchestrator.devices.virtual.ipa import HARNESS_BUNDLE_ID
from orchestrator.devices.virtual.serve import DeviceSpec
from orchestrator.errors import DeviceError, InstallError, TransportError, TunnelUnavailableError
from orchestrator.harness.contract import InputSpec, Job
from orchestrator.harness.inputs import make_input
from tests.devices.conftest import FarmHandle, harness_started, job_json_on_device, job_processes, running_farm


def sha(path: Path) -> str:
    return hashlib.sha256(str(path).encode()).hexdigest()


ENDLESS = {"warmup": 1000, "iterations": 100_000}  # the job contract's maxima: 101,000 predictions


def job(job_id: str, rows: int = 64, **kw: Any) -> Job:
    settings = {"warmup": 1, "iterations": 3, "sample_interval_ms": 10, "timeout_s": 120.0, **kw}
    return Job(job_id, "unset", "all", (InputSpec("x", (1, rows), "float32", 7),), **settings)


def on_device(farm: FarmHandle, profile: str, catalog: Any, ipa: Path,
              body: Callable[[UsbmuxDevice], Awaitable[Any]], **options: Any) -> Any:
    async def main() -> Any:
        device = await connect_device(farm.udid(profile), usbmux_address=farm.address, catalog=catalog,
                                      options=UsbmuxOptions(ipa, **options))
        try:
            return await body(device)
        finally:
            await device.cleanup()

    return asyncio.run(main())


async def uninstall(device: UsbmuxDevice) -> None:
    from pymobiledevice3.services.installation_proxy import InstallationProxyService

    await InstallationProxyService(lockdown=device.session.lockdown).uninstall(HARNESS_BUNDLE_ID)


def test_connect_identifies_the_virtual_device_and_its_profile(farm, catalog, stand_in_ipa):
    async def body(device: UsbmuxDevice) -> Any:
        return device.info

    info = on_device(farm, "iphone-15-pro", catalog, stand_in_ipa, body)
    assert info.key == "virtual:iphone-15-pro"
    assert info.backend == "virtual" and info.emulated is True and info.profile.id == "iphone-15-pro"
    assert info.product_type == "iPhone16,1" and info.os_version == "16.7.10" and info.udid == farm.udid(
        "iphone-15-pro")


def test_prepare_installs_the_harness_once_then_skips(farm, catalog, stand_in_ipa):
    async def body(device: UsbmuxDevice) -> tuple[bool, bool, Any]:
        await uninstall(device)
        await device.prepare()
        first = device.installed
        again = UsbmuxDevice(device.info, device.session, device.options)
        await again.prepare()
        return first, again.installed, await device.health()

    first, second, health = on_device(farm, "iphone-12", catalog, stand_in_ipa, body)
    assert (first, second) == (True, False)
    assert isinstance(health.battery_percent, float) and health.ok


def test_low_battery_makes_the_device_unhealthy(farm, catalog, stand_in_ipa):
    udid = farm.udid("iphone-12")
    farm.control("battery", udid=udid, percent=9, charging=False)
    try:
        health = on_device(farm, "iphone-12", catalog, stand_in_ipa, lambda d: d.health())
    finally:
        farm.control("battery", udid=udid, percent=100, charging=True)
    assert not health.ok and "9%" in health.reason and health.charging is False


def test_push_places_the_model_once(farm, catalog, stand_in_ipa, tiny_model):
    udid = farm.udid("iphone-12")
    docs = farm.folder(udid) / "Containers" / HARNESS_BUNDLE_ID / "Documents"

    digest = hashlib.sha256(b"push-test").hexdigest()  # its own cache entry: this test damages it

    async def body(device: UsbmuxDevice) -> tuple[str, str]:
        await device.prepare()
        ref = await device.push(tiny_model, digest)
        (docs / ref / "Manifest.json").unlink()  # a second push must not upload again
        return ref, await device.push(tiny_model, digest)

    first, second = on_device(farm, "iphone-12", catalog, stand_in_ipa, body)
    assert first == second == f"models/{digest}.mlpackage"
    assert (docs / first / "Data").is_dir() and not (docs / first / "Manifest.json").exists()
    assert not list(docs.glob("models/*.partial"))


def test_run_returns_the_pulled_result_with_device_figures(farm, catalog, stand_in_ipa, tiny_model):
    udid = farm.udid("iphone-12")

    async def body(device: UsbmuxDevice) -> Any:
        assert isinstance(device, Device)
        await device.prepare()
        ref = await device.push(tiny_model, sha(tiny_model))
        return await device.run(job("ok-1"), model_ref=ref)

    outcome = on_device(farm, "iphone-12", catalog, stand_in_ipa, body)
    assert outcome.status == "ok", outcome.error
    device = outcome.result.raw["device"]
    assert device["model"] == "iPhone13,2" and device["os"] == "iOS 16.7.10" and device["physical_memory_mb"] == 4096
    assert len(outcome.result.latencies_ms) == 3
    x = make_input((1, 64), "float32", 7)
    weight = np.random.RandomState(0).randn(64, 64).astype(np.float32) * 0.05
    # the outputs came back over AFC intact: they match the layer (run in fp16, as a device would)
    np.testing.assert_allclose(outcome.outputs["y"], np.maximum(x @ weight.T, 0), rtol=2e-3, atol=2e-3)
    memory = outcome.memory
    assert 25.0 <= memory.peak_mb < memory.limit_mb == 2048.0  # device-equivalent: app baseline + model
    assert memory.raw_peak_mb > memory.peak_mb  # the emulating Python process is bigger than the app
    assert memory.system_delta_mb is not None and memory.system_delta_mb > 0
    assert not (farm.folder(udid) / "Containers" / HARNESS_BUNDLE_ID / "Documents" / "jobs" / "ok-1").exists()


def test_result_that_breaks_the_schema_is_an_invalid_result_event(farm, catalog, stand_in_ipa, tiny_model):
    farm.control("fault", udid=farm.udid("iphone-15-pro"), name="corrupt-result")

    async def body(device: UsbmuxDevice) -> Any:
        await device.prepare()
        return await device.run(job("bad-1"), model_ref=await device.push(tiny_model, sha(tiny_model)))

    outcome = on_device(farm, "iphone-15-pro", catalog, stand_in_ipa, body)
    assert outcome.status == "error" and outcome.result is None
    assert [e.kind for e in outcome.events] == ["invalid-result"]
    assert any("latencies_ms" in p or "status" in p for p in outcome.events[0].data["problems"])


def test_install_failure_is_an_install_error_with_the_fix(farm, catalog, stand_in_ipa):
    udid = farm.udid("iphone-15-pro")

    async def body(device: UsbmuxDevice) -> Any:
        await uninstall(device)
        farm.control("fault", udid=udid, name="fail-install")
        with pytest.raises(InstallError) as info:
            await device.prepare()
        await device.prepare()  # the fault was one-shot: a retry installs
        return info.value, device.installed

    error, installed = on_device(farm, "iphone-15-pro", catalog, stand_in_ipa, body)
    assert "ApplicationVerificationFailed" in error.message and error.udid == udid
    assert "provisioning" in error.message and "signed" in (error.fix or "")
    assert installed is True


def test_job_past_its_timeout_is_killed(farm, catalog, stand_in_ipa, tiny_model):
    async def body(device: UsbmuxDevice) -> Any:
        await device.prepare()
        ref = await device.push(tiny_model, sha(tiny_model))
        # 101,000 predictions (the contract's most) and a runtime to import cannot fit in one second, however
        # fast the machine: the job is past its timeout by construction
        return await device.run(job("slow-1", **ENDLESS, timeout_s=1.0), model_ref=ref)

    outcome = on_device(farm, "iphone-15-pro", catalog, stand_in_ipa, body, kill_grace_s=0.0, report_wait_s=0.5)
    assert outcome.status == "timeout" and [e.kind for e in outcome.events] == ["timeout"]
    assert outcome.result is None
    # the kill reached the app: no harness is left running the job on the device
    job_json = job_json_on_device(farm, farm.udid("iphone-15-pro"), "slow-1")
    for proc in job_processes(job_json):
        proc.wait(30)
    assert not job_processes(job_json)


def test_unreachable_usbmuxd_is_a_transport_error(catalog, stand_in_ipa, tmp_path):
    with pytest.raises(TransportError) as info:
        asyncio.run(connect_device("00008101-0000000000000000", usbmux_address=str(tmp_path / "none.sock"),
                                   catalog=catalog, options=UsbmuxOptions(stand_in_ipa)))
    assert "usbmuxd" in info.value.message and "USBMUXD_SOCKET_ADDRESS" in (info.value.fix or "")


def test_unknown_device_is_a_transport_error(farm, catalog, stand_in_ipa):
    with pytest.raises(TransportError, match="not connected"):
        asyncio.run(connect_device("00008101-0000000000000000", usbmux_address=farm.address, catalog=catalog,
                                   options=UsbmuxOptions(stand_in_ipa)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ios17_device_without_a_tunnel_is_tunnel_unavailable(catalog, stand_in_ipa, tmp_path, monkeypatch):
    async def main(handle: FarmHandle) -> TunnelUnavailableError:
        options = UsbmuxOptions(stand_in_ipa, tunneld_address=("127.0.0.1", free_port()))
        device = await connect_device(handle.udid("iphone-15-pro"), usbmux_address=handle.address,
                                      catalog=catalog, options=options)
        try:
            assert device.info.os_version == "17.5.1"
            with pytest.raises(TunnelUnavailableError) as info:
                await device.prepare()
            return info.value
        finally:
            await device.cleanup()

    with running_farm([DeviceSpec("iphone-15-pro", "17.5.1")], root=tmp_path / "state") as handle:
        # pymobiledevice3's userspace tunnel finds usbmuxd through the environment only
        monkeypatch.setenv("USBMUXD_SOCKET_ADDRESS", handle.address)
        error = asyncio.run(main(handle))
        assert "iOS 17.5.1" in error.message and "no tunneld" in error.message
        assert "CoreDeviceProxy" in error.message  # the userspace tunnel was tried and refused
        assert "pymobiledevice3 remote tunneld" in (error.fix or "") and error.udid == handle.udid("iphone-15-pro")


@pytest.mark.slow
def test_device_vanishing_mid_job_is_a_transport_error_and_the_device_recovers(farm, catalog, stand_in_ipa,
                                                                                 tiny_model):
    udid = farm.udid("iphone-15-pro")

    async def body(device: UsbmuxDevice) -> tuple[TransportError, Any]:
        await device.prepare()
        ref = await device.push(tiny_model, sha(tiny_model))
        # a job that cannot finish before the detach: the device vanishes while its harness is running
        running = asyncio.create_task(device.run(job("vanish-1", **ENDLESS), model_ref=ref))
        harness = await harness_started(job_json_on_device(farm, udid, "vanish-1"))
        await asyncio.to_thread(farm.control, "detach", udid=udid)
        with pytest.raises(TransportError) as info:
            await running
        await asyncio.to_thread(harness.wait, 30)  # a vanished device's apps die with it
        await asyncio.to_thread(farm.control, "attach", udid=udid)
        return info.value, await device.run(job("vanish-2"), model_ref=ref)

    error, again = on_device(farm, "iphone-15-pro", catalog, stand_in_ipa, body)
    assert error.udid == udid and "retried" in (error.fix or "")
    assert again.status == "ok", again  # reconnected: the next job runs to its result
    assert again.result is not None and again.result.job_id == "vanish-2" and len(again.result.latencies_ms) == 3


@pytest.fixture(scope="module")
def big_model(models: dict[str, Path]) -> Path:
    """64 MiB of fp32 weights: more than the headroom the jetsam farm leaves on the 4 GB profile."""
    return models["big"]


@pytest.fixture(scope="module")
def heavy_farm():
    """Devices whose app already uses 2000 MB before it loads a model (MLFARM_APP_BASELINE_MB): 48 MB of
    headroom under the iPhone 12's 2048 MB limit, over 1 GB under the iPhone 15 Pro's 3072 MB."""
    with running_farm(["iphone-12", "iphone-15-pro"], env={"MLFARM_APP_BASELINE_MB": "2000"}) as handle:
        yield handle


@pytest.mark.slow
def test_too_large_for_4gb_is_a_jetsam_from_the_report_and_8gb_passes(heavy_farm, catalog, stand_in_ipa,
                                                                       big_model):
    async def one(profile: str) -> Any:
        device = await connect_device(heavy_farm.udid(profile), usbmux_address=heavy_farm.address,
                                      catalog=catalog, options=UsbmuxOptions(stand_in_ipa))
        try:
            await device.prepare()
            ref = await device.push(big_model, sha(big_model))
            return await device.run(job(f"big-{profile}", rows=2048), model_ref=ref)
        finally:
            await device.cleanup()

    async def both() -> list[Any]:
        return list(await asyncio.gather(one("iphone-12"), one("iphone-15-pro")))

    small, large = asyncio.run(both())
    assert small.status == "jetsam", small.error
    (event,) = small.events
    assert event.kind == "jetsam" and event.data["reason"] == "per-process-limit"
    assert event.data["footprint_mb"] > 2048 == event.data["limit_mb"] and event.data["emulated"] is True
    assert event.data["largest_process"] == "MLFarmHarness" and event.data["report"].startswith("JetsamEvent-")
    reports = list((heavy_farm.folder(heavy_farm.udid("iphone-12")) / "CrashReports").glob("JetsamEvent-*.ips"))
    assert [r.name for r in reports] == [event.data["report"]]
    assert large.status == "ok", large.error
    assert 2000 < large.memory.peak_mb < 3072


@pytest.mark.parametrize("raised, expected, words", [
    ("ConnectionFailedToUsbmuxdError", TransportError, "usbmuxd"),
    ("ConnectionTerminatedError", TransportError, "connection"),
    ("NotPairedError", DeviceError, "Trust"),
    ("PasswordRequiredError", DeviceError, "unlock"),
    ("AppInstallError", InstallError, "signed"),
    ("DeveloperModeIsNotEnabledError", DeviceError, "Developer Mode"),
    ("InvalidServiceError", DeviceError, "auto-mount"),
])
def test_pymobiledevice3_exceptions_become_ours_with_a_fix(raised, expected, words):
    import pymobiledevice3.exceptions as pmd

    exc_type = getattr(pmd, raised)
    exc = exc_type("boom", "udid", "16.7") if issubclass(exc_type, pmd.LockdownError) else exc_type("boom")
    error = translate(exc, udid="00008101-0000000000000001", doing="testing", address="/tmp/x.sock")
    assert type(error) is expected and error.udid == "00008101-0000000000000001"
    assert words in (error.message + " " + (error.fix or ""))
