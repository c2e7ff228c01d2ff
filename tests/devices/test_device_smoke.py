"""A real iPhone or iPad, when one is attached: install the harness app, push a tiny model, run a job, pull the
result (``pytest -m device``). Skipped, with the reason, when usbmuxd lists no real device; emulated devices
(which answer the ``dev.mlfarm.virtual`` lockdown domain) are never used here.

Setup (README, *Devices*): the device paired and unlocked, Developer Mode on, the Developer Disk Image mounted,
a tunnel for iOS 17+, and the Swift harness built with ``mlfarm harness build --team ID`` (found at
``harness_app/build/MLFarmHarness.ipa``, or wherever ``MLFARM_HARNESS_IPA`` points).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestrator.devices.usbmux import usbmux_default
from orchestrator.devices.usbmux.discovery import Attached, list_attached
from orchestrator.devices.usbmux_device import UsbmuxOptions, connect_device
from orchestrator.errors import MlfarmError
from orchestrator.harness.contract import InputSpec, Job
from orchestrator.harness.inputs import make_input

pytestmark = pytest.mark.device

REPO = Path(__file__).resolve().parents[2]
IPA_ENV = "MLFARM_HARNESS_IPA"


def real_devices(address: str | None) -> tuple[list[Attached], str]:
    """(real devices behind usbmuxd, why there are none)."""
    try:
        attached = asyncio.run(list_attached(address))
    except MlfarmError as exc:
        return [], f"no usbmuxd at {address or usbmux_default()}: {exc.message}"
    real = [a for a in attached if a.virtual is None]
    emulated = len(attached) - len(real)
    return real, f"usbmuxd lists no real iPhone or iPad ({emulated} emulated device(s) ignored)"


@pytest.fixture(scope="session")
def real_device() -> tuple[Attached, str | None]:
    """The first real device usbmuxd lists (USBMUXD_SOCKET_ADDRESS, else the default socket), or a skip."""
    address = os.environ.get("USBMUXD_SOCKET_ADDRESS") or None
    real, why = real_devices(address)
    if not real:
        pytest.skip(why)
    device = real[0]
    if device.error:  # attached but unreadable (not paired, locked): a setup problem the user must see
        pytest.fail(f"device {device.udid} is attached but its lockdown values could not be read: {device.error}")
    return device, address


def harness_ipa() -> Path:
    ipa = Path(os.environ.get(IPA_ENV) or REPO / "harness_app" / "build" / "MLFarmHarness.ipa")
    if not ipa.is_file():
        pytest.fail(f"a device is attached but there is no harness app at {ipa}: build it on a Mac with "
                    f"`mlfarm harness build --team ID` or point {IPA_ENV} at the .ipa")
    return ipa


def test_a_tiny_job_runs_on_the_attached_device(real_device, catalog, tiny_model):
    attached, address = real_device
    options = UsbmuxOptions(harness_ipa(), report_wait_s=10.0)
    job = Job("smoke-1", "unset", "cpu_only", (InputSpec("x", (1, 64), "float32", 7),), warmup=1, iterations=5,
              sample_interval_ms=50, timeout_s=300.0)

    async def main() -> Any:
        device = await connect_device(attached.udid, usbmux_address=address, catalog=catalog, options=options)
        try:
            assert device.info.emulated is False and device.info.key == f"usb:{attached.udid}"
            await device.prepare()
            digest = hashlib.sha256(tiny_model.joinpath("Manifest.json").read_bytes()).hexdigest()
            ref = await device.push(tiny_model, digest)
            return device.info, await device.run(job, model_ref=ref)
        finally:
            await device.cleanup()

    info, outcome = asyncio.run(main())
    assert outcome.status == "ok", (outcome.error, [e.kind for e in outcome.events])
    result = outcome.result
    assert result.job_id == "smoke-1" and len(result.latencies_ms) == 5 and all(v > 0 for v in result.latencies_ms)
    assert result.raw["harness"]["runtime"] == "coreml" and result.raw["device"]["model"] == info.product_type
    x = make_input((1, 64), "float32", 7)
    weight = np.random.RandomState(0).randn(64, 64).astype(np.float32) * 0.05  # the model conftest builds
    np.testing.assert_allclose(outcome.outputs["y"], np.maximum(x @ weight.T, 0), rtol=5e-3, atol=5e-3)
    assert 0 < outcome.memory.peak_mb < outcome.memory.limit_mb
