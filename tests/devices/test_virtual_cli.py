"""pymobiledevice3's own CLI (a subprocess, unmodified) against the virtual devices, via
USBMUXD_SOCKET_ADDRESS: each command works and shows what the virtual device holds."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest

from orchestrator.devices.jetsam import KilledProcess, format_jetsam_report
from orchestrator.devices.virtual.ipa import HARNESS_BUNDLE_ID
from tests.devices.conftest import pmd, wait_until

MLFARM = Path(sys.executable).with_name("mlfarm")


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


def test_usbmux_list_shows_both_devices(farm):
    listed = json.loads(ok(pmd(farm.address, "usbmux", "list")))
    by_udid = {d["UniqueDeviceID"]: d for d in listed}
    assert set(by_udid) == {d.udid for d in farm.farm.devices}
    assert by_udid[farm.udid("iphone-15-pro")]["ProductType"] == "iPhone16,1"
    assert {d["ProductVersion"] for d in listed} == {"16.7.10"}


def test_lockdown_info_is_the_device_values(farm):
    udid = farm.udid("iphone-12")
    info = json.loads(ok(pmd(farm.address, "lockdown", "info", "--udid", udid)))
    assert info["UniqueDeviceID"] == udid and info["ProductType"] == "iPhone13,2"
    assert info["DeviceName"] == "mlfarm virtual iPhone 12" and info["HardwareModel"] == "D53GAP"


@pytest.mark.slow
def test_apps_install_list_push_pull_uninstall(farm, stand_in_ipa, tmp_path):
    udid = farm.udid("iphone-12")
    container = farm.folder(udid) / "Containers" / HARNESS_BUNDLE_ID
    ok(pmd(farm.address, "apps", "install", str(stand_in_ipa), "--udid", udid))
    apps = json.loads(ok(pmd(farm.address, "apps", "list", "--udid", udid)))
    assert apps[HARNESS_BUNDLE_ID]["CFBundleVersion"].endswith("+contract1")
    payload = tmp_path / "job.json"
    payload.write_bytes(os.urandom(70_000))
    ok(pmd(farm.address, "apps", "push", HARNESS_BUNDLE_ID, str(payload), "/Documents/job.json", "--udid", udid))
    assert (container / "Documents" / "job.json").read_bytes() == payload.read_bytes()  # the device holds it
    (container / "Documents" / "from-device.txt").write_text("written on the device")
    ok(pmd(farm.address, "apps", "pull", HARNESS_BUNDLE_ID, "/Documents/from-device.txt", str(tmp_path / "got.txt"),
           "--udid", udid))
    assert (tmp_path / "got.txt").read_text() == "written on the device"
    ok(pmd(farm.address, "apps", "uninstall", HARNESS_BUNDLE_ID, "--udid", udid))
    assert not container.exists() and not (farm.folder(udid) / "Applications" / HARNESS_BUNDLE_ID).exists()


def test_afc_push_ls_pull(farm, tmp_path):
    udid = farm.udid("iphone-15-pro")
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(300_000))
    ok(pmd(farm.address, "afc", "push", str(source), "/model.bin", "--udid", udid))
    assert (farm.folder(udid) / "Media" / "model.bin").read_bytes() == source.read_bytes()
    assert "/model.bin" in ok(pmd(farm.address, "afc", "ls", "/", "--udid", udid)).split()
    ok(pmd(farm.address, "afc", "pull", "/model.bin", str(tmp_path / "back.bin"), "--udid", udid))
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()


def test_crash_ls_and_pull_show_the_reports_on_the_device(farm, tmp_path):
    udid = farm.udid("iphone-15-pro")
    name = "JetsamEvent-2024-02-02-020202.ips"
    text = format_jetsam_report(KilledProcess(777, "MLFarmHarness", 3300 << 20), product="iPhone16,1",
                                os_version="16.7.10", build="20H350", bystanders=[])
    (farm.folder(udid) / "CrashReports" / name).write_text(text)
    try:
        assert f"/{name}" in ok(pmd(farm.address, "crash", "ls", "--udid", udid)).split()
        ok(pmd(farm.address, "crash", "pull", str(tmp_path), "--udid", udid))
        assert (tmp_path / name).read_text() == text
    finally:
        (farm.folder(udid) / "CrashReports" / name).unlink()


def test_developer_dvt_launch_starts_the_installed_app(farm, stand_in_ipa):
    udid = farm.udid("iphone-15-pro")
    ok(pmd(farm.address, "apps", "install", str(stand_in_ipa), "--udid", udid))
    out = ok(pmd(farm.address, "developer", "dvt", "launch", HARNESS_BUNDLE_ID, "--udid", udid))
    launched = re.search(r"pid (\d+)", out)
    assert launched is not None, out
    pid = int(launched.group(1))
    procs = json.loads(ok(pmd(farm.address, "developer", "dvt", "proclist", "--udid", udid)))
    assert {p["pid"]: p.get("bundleIdentifier") for p in procs}[pid] == HARNESS_BUNDLE_ID
    ok(pmd(farm.address, "developer", "dvt", "kill", str(pid), "--udid", udid))

    def gone() -> bool:
        listed = json.loads(ok(pmd(farm.address, "developer", "dvt", "proclist", "--udid", udid)))
        return pid not in {p["pid"] for p in listed}

    wait_until(gone, f"pid {pid} to leave the device's process list after the kill", timeout_s=60, poll_s=0.2)


def readline_within(stream: IO[str], timeout_s: float) -> str:
    """One line from a child's pipe, or fail after ``timeout_s`` (a child that never answers must not hang the
    test until pytest's own timeout)."""
    ready, _, _ = select.select([stream], [], [], timeout_s)
    assert ready, f"no line from the child within {timeout_s:g} s"
    return stream.readline()


def test_mlfarm_virtual_serve_over_tcp_and_mlfarm_devices(tmp_path):
    """`mlfarm virtual serve --tcp` in the background; `mlfarm devices --json` and pymobiledevice3 find it."""
    serve = subprocess.Popen([str(MLFARM), "virtual", "serve", "--profile",
                              "iphone-12", "--count", "2", "--tcp", "127.0.0.1:0", "--root", str(tmp_path),
                              "--json"], stdout=subprocess.PIPE, text=True)
    try:
        assert serve.stdout is not None
        ready = json.loads(readline_within(serve.stdout, 120))
        address = ready["address"]
        devices = subprocess.run([str(MLFARM), "--usbmux", address, "devices",
                                  "--json"], capture_output=True, text=True, timeout=60)
        rows = json.loads(devices.stdout)
        assert devices.returncode == 0 and len(rows) == 2
        assert {r["profile"] for r in rows} == {"iphone-12"} and all(r["emulated"] for r in rows)
        assert len({r["udid"] for r in rows}) == 2 and rows[0]["key"] == "virtual:iphone-12"
        listed = json.loads(ok(pmd(address, "usbmux", "list")))
        assert {d["UniqueDeviceID"] for d in listed} == {r["udid"] for r in rows}
    finally:
        serve.terminate()
        assert serve.wait(20) == 0
