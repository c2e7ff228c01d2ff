"""pymobiledevice3's real Python client (unmodified) against the virtual devices: usbmux, lockdown over TLS,
AFC, installation_proxy, house_arrest, crash reports, DVT process control, device info and sysmontap."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pymobiledevice3 import usbmux
from pymobiledevice3.dtx import DTXNsError
from pymobiledevice3.exceptions import AppNotInstalledError, MissingValueError
from pymobiledevice3.lockdown import create_using_usbmux
from pymobiledevice3.services.afc import AfcService
from pymobiledevice3.services.crash_reports import CrashReportsManager
from pymobiledevice3.services.dvt.instruments.device_info import DeviceInfo
from pymobiledevice3.services.dvt.instruments.dvt_provider import DvtProvider
from pymobiledevice3.services.dvt.instruments.process_control import ProcessControl
from pymobiledevice3.services.dvt.instruments.sysmontap import Sysmontap
from pymobiledevice3.services.house_arrest import HouseArrestService
from pymobiledevice3.services.installation_proxy import InstallationProxyService

from orchestrator.devices.virtual.ipa import HARNESS_BUNDLE_ID, HARNESS_EXECUTABLE
from tests.devices.conftest import FarmHandle


def with_lockdown(farm: FarmHandle, profile: str, body: Callable[[Any], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with await create_using_usbmux(serial=farm.udid(profile), usbmux_address=farm.address,
                                             autopair=False) as ld:
            return await body(ld)

    return asyncio.run(main())


def test_usbmux_lists_each_device_with_its_own_udid(farm):
    devices = asyncio.run(usbmux.list_devices(usbmux_address=farm.address))
    assert sorted(d.serial for d in devices) == sorted(d.udid for d in farm.farm.devices)
    assert len({d.devid for d in devices}) == 2 and all(d.connection_type == "USB" for d in devices)


@pytest.mark.parametrize("profile, product_type", [("iphone-12", "iPhone13,2"), ("iphone-15-pro", "iPhone16,1")])
def test_lockdown_session_is_paired_over_tls_with_the_profile_values(farm, profile, product_type):
    async def body(ld: Any) -> dict[str, Any]:
        tls = ld.service.writer.get_extra_info("ssl_object")
        return {"paired": ld.paired, "tls": tls is not None and tls.version(), "values": ld.all_values,
                "battery": await ld.get_value("com.apple.mobile.battery"),
                "devmode": await ld.get_developer_mode_status(),
                "disk": await ld.get_value("com.apple.disk_usage", "TotalDiskCapacity")}

    got = with_lockdown(farm, profile, body)
    assert got["paired"] and got["tls"] in ("TLSv1.2", "TLSv1.3")
    values = got["values"]
    assert values["ProductType"] == product_type and values["ProductVersion"] == "16.7.10"
    assert values["UniqueDeviceID"] == farm.udid(profile) and values["DeviceClass"] == "iPhone"
    assert got["battery"]["BatteryCurrentCapacity"] == 100 and got["devmode"] is True
    assert got["disk"] > 0


def test_unknown_lockdown_domain_is_missing_value(farm):
    with pytest.raises(MissingValueError):
        with_lockdown(farm, "iphone-12", lambda ld: ld.get_value("com.example.nothing"))


def test_afc_round_trip_is_byte_identical_and_stays_inside_the_media_folder(farm):
    blob = os.urandom(5 * 2**20 + 123)  # more than one 4 MiB AFC read

    async def body(ld: Any) -> dict[str, Any]:
        async with AfcService(ld) as afc:
            await afc.makedirs("/mlfarm-test/a")
            await afc.set_file_contents("/mlfarm-test/a/blob.bin", blob)
            await afc.rename("/mlfarm-test/a/blob.bin", "/mlfarm-test/a/moved.bin")
            back = await afc.get_file_contents("/mlfarm-test/a/moved.bin")
            await afc.set_file_contents("/../../escape.txt", b"x")  # '..' is clamped at the AFC root
            listing = await afc.listdir("/mlfarm-test/a")
            size = (await afc.stat("/mlfarm-test/a/moved.bin"))["st_size"]
            await afc.rm("/mlfarm-test")
            return {"back": back, "listing": listing, "size": size, "gone": not await afc.exists("/mlfarm-test")}

    got = with_lockdown(farm, "iphone-12", body)
    assert hashlib.sha256(got["back"]).digest() == hashlib.sha256(blob).digest()
    assert got["listing"] == ["moved.bin"] and got["size"] == len(blob) and got["gone"]
    media = farm.folder(farm.udid("iphone-12")) / "Media"
    assert (media / "escape.txt").read_bytes() == b"x"


def test_install_vend_container_and_uninstall(farm, stand_in_ipa, tmp_path):
    async def body(ld: Any) -> dict[str, Any]:
        proxy = InstallationProxyService(lockdown=ld)
        await proxy.install_from_local(stand_in_ipa)
        apps = await proxy.get_apps(application_type="User")
        async with await HouseArrestService.create(ld, HARNESS_BUNDLE_ID) as container:
            await container.set_file_contents("/Documents/note.txt", b"hello from the host")
            docs = await container.listdir("/Documents")
        await proxy.uninstall(HARNESS_BUNDLE_ID)
        after = await proxy.get_apps(application_type="User")
        return {"apps": apps, "docs": docs, "after": after}

    udid = farm.udid("iphone-15-pro")
    got = with_lockdown(farm, "iphone-15-pro", body)
    entry = got["apps"][HARNESS_BUNDLE_ID]
    assert entry["CFBundleExecutable"] == HARNESS_EXECUTABLE and entry["ApplicationType"] == "User"
    assert entry["Entitlements"]["get-task-allow"] is True
    assert "note.txt" in got["docs"] and HARNESS_BUNDLE_ID not in got["after"]
    assert not (farm.folder(udid) / "Containers" / HARNESS_BUNDLE_ID).exists()  # the container went with it


def test_house_arrest_for_a_missing_app_is_app_not_installed(farm):
    with pytest.raises(AppNotInstalledError):
        with_lockdown(farm, "iphone-12", lambda ld: HouseArrestService.create(ld, "com.example.absent"))


def test_crash_reports_list_pull_and_parse_what_the_device_holds(farm, tmp_path):
    from orchestrator.devices.jetsam import KilledProcess, format_jetsam_report

    udid = farm.udid("iphone-12")
    text = format_jetsam_report(KilledProcess(4242, "Other", 3 << 30), product="iPhone13,2",
                                os_version="16.7.10", build="20H350", bystanders=[])
    held = farm.folder(udid) / "CrashReports" / "JetsamEvent-2024-01-01-000000.ips"
    held.write_text(text)

    async def body(ld: Any) -> dict[str, Any]:
        async with CrashReportsManager(ld) as reports:
            await reports.flush()
            listed = await reports.ls("/")
            await reports.pull(str(tmp_path), entry="/JetsamEvent-2024-01-01-000000.ips", progress_bar=False)
            parsed = await reports.parse("/JetsamEvent-2024-01-01-000000.ips")
            return {"listed": listed, "bug": parsed.bug_type_str}

    try:
        got = with_lockdown(farm, "iphone-12", body)
    finally:
        held.unlink()
    assert "/JetsamEvent-2024-01-01-000000.ips" in got["listed"] and got["bug"] == "298"
    assert (tmp_path / "JetsamEvent-2024-01-01-000000.ips").read_text() == text


def test_dvt_launches_lists_samples_and_kills_an_installed_app(farm, stand_in_ipa):
    async def body(ld: Any) -> dict[str, Any]:
        await InstallationProxyService(lockdown=ld).install_from_local(stand_in_ipa)
        async with DvtProvider(ld) as dvt, ProcessControl(dvt) as pc, DeviceInfo(dvt) as info:
            pid = await pc.launch(HARNESS_BUNDLE_ID)  # no --job: the app idles like the Swift one
            running = {p["pid"]: p for p in await info.proclist()}
            by_bundle = await pc.process_identifier_for_bundle_identifier(HARNESS_BUNDLE_ID)
            async with await Sysmontap.create(dvt, interval=50) as tap:
                rows = await anext(tap.iter_processes())
            await pc.kill(pid)
            await asyncio.sleep(0.2)
            alive = await info.is_running_pid(pid)
            try:
                await pc.launch("com.example.absent")
                refused = False
            except DTXNsError:
                refused = True
            return {"pid": pid, "running": running, "by_bundle": by_bundle, "rows": rows, "alive": alive,
                    "refused": refused}

    got = with_lockdown(farm, "iphone-12", body)
    pid = got["pid"]
    assert got["running"][pid]["bundleIdentifier"] == HARNESS_BUNDLE_ID and got["by_bundle"] == pid
    sampled = {r["pid"]: r for r in got["rows"]}
    assert sampled[pid]["name"] == HARNESS_EXECUTABLE and sampled[pid]["physFootprint"] > 0
    assert "aned" in {r["name"] for r in got["rows"]}  # system daemons are sampled too
    assert got["alive"] is False and got["refused"] is True


def test_tcp_listener_serves_the_same_protocol(tmp_path):
    from tests.devices.conftest import running_farm

    with running_farm(["ipad-pro-m1@16gb"], tcp=("127.0.0.1", 0), root=tmp_path / "state") as handle:
        assert handle.address.startswith("127.0.0.1:")
        devices = asyncio.run(usbmux.list_devices(usbmux_address=handle.address))
        values = with_lockdown(handle, "ipad-pro-m1", lambda ld: asyncio.sleep(0, ld.all_values))
        assert [d.serial for d in devices] == [handle.udid("ipad-pro-m1")]
        assert values["DeviceClass"] == "iPad" and values["ProductType"] == "iPad13,4"
    shutil.rmtree(tmp_path / "state", ignore_errors=True)


def test_state_folder_is_per_device(farm):
    folders = {d.udid: d.folder for d in farm.farm.devices}
    assert len(set(folders.values())) == 2
    assert all(Path(f, "CrashReports").is_dir() and Path(f, "Media").is_dir() for f in folders.values())


def test_listen_reports_attached_devices_then_a_detach_and_an_attach(farm):
    udid = farm.udid("iphone-15-pro")

    async def main() -> tuple[set[str], list[str]]:
        mux = await usbmux.create_mux(usbmux_address=farm.address)
        try:
            await mux.listen()
            for _ in farm.farm.devices:
                await asyncio.wait_for(mux.receive_device_state_update(), 10)
            present = {d.serial for d in mux.devices}
            await asyncio.to_thread(farm.control, "detach", udid=udid)
            await asyncio.wait_for(mux.receive_device_state_update(), 10)
            after_detach = sorted(d.serial for d in mux.devices)
            await asyncio.to_thread(farm.control, "attach", udid=udid)
            await asyncio.wait_for(mux.receive_device_state_update(), 10)
            return present, [*after_detach, "|", *sorted(d.serial for d in mux.devices)]
        finally:
            await mux.close()
            farm.control("attach", udid=udid)

    present, sequence = asyncio.run(main())
    assert present == {d.udid for d in farm.farm.devices}
    assert sequence == [farm.udid("iphone-12"), "|", *sorted(present)]
