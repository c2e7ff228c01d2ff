"""The emulated device is not a way into the host: the harness runs isolated from what a client uploads and
asks for, pair records go only to their host, the listener stays on loopback unless asked, TLS has a floor,
and every request gets an answer (pymobiledevice3's own CLI never hangs on it)."""

from __future__ import annotations

import asyncio
import json
import plistlib
import socket
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil
import pytest
from pymobiledevice3 import usbmux
from pymobiledevice3.exceptions import NotPairedError
from pymobiledevice3.service_connection import create_ssl_context
from pymobiledevice3.services.dvt.instruments.device_info import DeviceInfo
from pymobiledevice3.services.dvt.instruments.dvt_provider import DvtProvider
from pymobiledevice3.services.dvt.instruments.process_control import ProcessControl
from pymobiledevice3.services.house_arrest import HouseArrestService
from pymobiledevice3.services.installation_proxy import InstallationProxyService

from orchestrator.config import builtin_profiles_dir
from orchestrator.devices.virtual.ipa import HARNESS_BUNDLE_ID
from orchestrator.devices.virtual.launch_env import harness_environment
from orchestrator.devices.virtual.serve import DeviceSpec, remote_warning, start_farm
from orchestrator.profiles import load_catalog
from tests.devices.conftest import pmd
from tests.devices.test_virtual_api import with_lockdown

MLFARM = Path(sys.executable).with_name("mlfarm")
SITECUSTOMIZE = "import pathlib\npathlib.Path({marker!r}).write_text('owned')\n"


def test_launch_environment_keeps_only_the_harness_variables(tmp_path):
    env, dropped = harness_environment(
        {"PYTHONPATH": "Documents/x", "LD_PRELOAD": "/tmp/x.so", "MLFARM_HARNESS_DELAY_FACTOR": "2"},
        {"PATH": "/usr/bin", "PYTHONSTARTUP": "/tmp/s.py", "AWS_SECRET_ACCESS_KEY": "k", "HOME": "/home/u"},
        container=tmp_path, udid="U")
    assert dropped == ["LD_PRELOAD", "PYTHONPATH"]
    assert env == {"PATH": "/usr/bin", "MLFARM_HARNESS_DELAY_FACTOR": "2", "HOME": str(tmp_path),
                   "TMPDIR": str(tmp_path / "tmp"), "MLFARM_VIRTUAL_DEVICE": "U"}


def test_sitecustomize_uploaded_over_afc_never_runs_on_the_host(farm, stand_in_ipa, tmp_path):
    """The audit's attack through pymobiledevice3's real client: upload Documents/x/sitecustomize.py (and a
    shadowing ``orchestrator`` package at the container root, the harness's working directory), launch the
    harness with PYTHONPATH=Documents/x. The harness runs (its log line is there) and neither file runs."""
    marker_site, marker_pkg = tmp_path / "site-ran", tmp_path / "package-ran"
    job = {"contract_version": 1, "job_id": "attack"}

    async def body(ld: Any) -> int:
        await InstallationProxyService(lockdown=ld).install_from_local(stand_in_ipa)
        async with await HouseArrestService.create(ld, HARNESS_BUNDLE_ID) as container:
            await container.makedirs("/Documents/x")
            await container.set_file_contents("/Documents/x/sitecustomize.py",
                                              SITECUSTOMIZE.format(marker=str(marker_site)).encode())
            await container.set_file_contents("/Documents/x/job.json", json.dumps(job).encode())
            await container.makedirs("/orchestrator")
            await container.set_file_contents("/orchestrator/__init__.py",
                                              SITECUSTOMIZE.format(marker=str(marker_pkg)).encode())
        async with DvtProvider(ld) as dvt, ProcessControl(dvt) as pc, DeviceInfo(dvt) as info:
            pid = await pc.launch(HARNESS_BUNDLE_ID, arguments=["--job", "x/job.json"],
                                  environment={"PYTHONPATH": "Documents/x", "PYTHONSTARTUP": "Documents/x/s.py"})
            for _ in range(600):  # bounded wait for the harness to finish (it refuses the job at once)
                if not await info.is_running_pid(pid):
                    break
                await asyncio.sleep(0.1)
        return int(pid)

    udid = farm.udid("iphone-12")
    pid = with_lockdown(farm, "iphone-12", body)
    runs = [json.loads(line) for line in (farm.folder(udid) / "harness-runs.jsonl").read_text().splitlines()]
    ran = [r for r in runs if r["pid"] == pid]
    assert ran and ran[0]["job"] == "x/job.json" and ran[0]["exit_code"] is not None  # python did start
    assert not marker_site.exists() and not marker_pkg.exists()


def _non_loopback_ipv4() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return str(a.address)
    return None


def test_pair_record_is_read_only_by_its_host_and_saved_records_stay_per_host(tmp_path):
    """Served on all interfaces: a loopback client gets the provisioned record; a client from another address
    (this machine's LAN address stands in for a remote host) is refused it, and what it saves is its own."""
    lan = _non_loopback_ipv4()
    if lan is None:
        pytest.skip("no non-loopback IPv4 address to connect from")
    catalog = load_catalog([builtin_profiles_dir()])

    async def main() -> dict[str, Any]:
        farm = await start_farm([DeviceSpec("iphone-12")], catalog.get, root=tmp_path, tcp=("0.0.0.0", 0))
        port = farm.server.address.rsplit(":", 1)[1]
        udid = farm.devices[0].identity.udid
        try:
            local = await usbmux.create_mux(usbmux_address=f"127.0.0.1:{port}")
            remote = await usbmux.create_mux(usbmux_address=f"{lan}:{port}")
            got_local = await local.get_pair_record(udid)
            try:
                await remote.get_pair_record(udid)
                refused = False
            except NotPairedError:
                refused = True
            own = plistlib.dumps({"HostID": "REMOTE-HOST"})
            await remote.save_pair_record(udid, 1, own)
            remote_back = await (await usbmux.create_mux(usbmux_address=f"{lan}:{port}")).get_pair_record(udid)
            local_after = await (await usbmux.create_mux(usbmux_address=f"127.0.0.1:{port}")).get_pair_record(udid)
            for mux in (local, remote):
                await mux.close()
            return {"local": got_local, "refused": refused, "local_after": local_after, "remote": remote_back,
                    "saved": dict(farm.server.saved_records)}
        finally:
            await farm.close()

    got = asyncio.run(main())
    assert got["refused"] is True and got["remote"] == {"HostID": "REMOTE-HOST"}
    assert "HostPrivateKey" in got["local"] and got["local_after"] == got["local"]  # not replaced by the remote's
    assert [host for host, _ in got["saved"]] == [f"tcp:{lan}"]


def test_listener_beyond_loopback_needs_allow_remote(tmp_path):
    assert remote_warning(("127.0.0.1", 0), allow_remote=False) is None
    assert remote_warning(("localhost", 0), allow_remote=False) is None
    with pytest.raises(ValueError, match="--allow-remote"):
        remote_warning(("0.0.0.0", 27015), allow_remote=False)
    warning = remote_warning(("0.0.0.0", 27015), allow_remote=True)
    assert warning is not None and "any machine" in warning
    result = subprocess.run([str(MLFARM), "virtual", "serve", "--profile", "iphone-12", "--tcp", "0.0.0.0:0",
                             "--root", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--allow-remote" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "usbmuxd.sock").exists()


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple[str, str]:
    """A TLS handshake in memory; returns (version, cipher) or raises ssl.SSLError."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_side=False)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for name, end in (("c", c), ("s", s)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    version, cipher = c.version(), c.cipher()
    assert version is not None and cipher is not None
    return version, cipher[0]


def test_tls_floor_accepts_pymobiledevice3_and_refuses_weak_suites(tmp_path):
    catalog = load_catalog([builtin_profiles_dir()])

    async def identity() -> Any:
        farm = await start_farm([DeviceSpec("iphone-12")], catalog.get, root=tmp_path,
                                socket_path=tmp_path / "mux.sock")
        await farm.close()
        return farm.devices[0].identity

    ident = asyncio.run(identity())
    record = ident.pair_record
    with tempfile.TemporaryDirectory() as folder:
        pem = Path(folder) / "host.pem"
        pem.write_bytes(record["HostCertificate"] + b"\n" + record["HostPrivateKey"])
        server = ident.server_context(record["HostID"])
        version, cipher = _handshake(server, create_ssl_context(str(pem)))  # pymobiledevice3's own client
        assert version in ("TLSv1.2", "TLSv1.3") and ("GCM" in cipher or "CHACHA20" in cipher)
        weak = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        weak.check_hostname, weak.verify_mode = False, ssl.CERT_NONE
        weak.maximum_version = ssl.TLSVersion.TLSv1_2
        weak.set_ciphers("AES128-SHA:AES256-SHA:@SECLEVEL=0")  # no forward secrecy, no AEAD
        weak.load_cert_chain(pem)
        with pytest.raises(ssl.SSLError):
            _handshake(server, weak)


def test_lockdown_set_stores_values_the_cli_reads_back(farm):
    udid = farm.udid("iphone-15-pro")
    assert pmd(farm.address, "lockdown", "language", "fr", "--udid", udid).returncode == 0
    assert json.loads(pmd(farm.address, "lockdown", "language", "--udid", udid).stdout) == "fr"
    assert pmd(farm.address, "lockdown", "device-name", "bench phone", "--udid", udid).returncode == 0
    assert pmd(farm.address, "lockdown", "device-name", "--udid", udid).stdout.strip() == "bench phone"
    pmd(farm.address, "lockdown", "language", "en", "--udid", udid)
    pmd(farm.address, "lockdown", "device-name", "mlfarm virtual iPhone 15 Pro", "--udid", udid)


# pymobiledevice3 commands that finish on a real device (or fail there for lack of a service). Streaming
# commands that run until interrupted on hardware (syslog live, sysmon process monitor) are left out: "does
# not hang" would mean nothing for them.
KNOWN_COMMANDS = [
    ("usbmux", "list"), ("lockdown", "info"), ("lockdown", "date"), ("lockdown", "language"),
    ("lockdown", "device-name"), ("apps", "list"), ("apps", "query", "com.example.absent"), ("afc", "ls", "/"),
    ("crash", "ls"), ("crash", "flush"), ("diagnostics", "battery", "single"), ("springboard", "state", "get"),
    ("processes", "ps"), ("mounter", "list"), ("profile", "list"), ("provision", "list"),
    ("developer", "dvt", "proclist"), ("developer", "dvt", "applist"), ("developer", "dvt", "device-information"),
    ("developer", "dvt", "sysmon", "system"), ("developer", "dvt", "sysmon", "process", "single"),
    ("developer", "dvt", "netstat"), ("developer", "dvt", "energy", "1"), ("developer", "dvt", "ls", "/"),
    ("developer", "dvt", "kill", "99999"), ("developer", "dvt", "oslog"), ("developer", "dvt", "graphics"),
]
ANSWERED = {("developer", "dvt", "sysmon", "system"), ("developer", "dvt", "proclist"), ("lockdown", "info"),
            ("usbmux", "list"), ("apps", "list"), ("crash", "ls")}


@pytest.mark.slow
def test_pymobiledevice3_known_commands_never_hang(farm):
    """Each command ends within its timeout, answered or refused with an error (never waiting forever)."""
    udid = farm.udid("iphone-12")
    hung, failed = [], []
    for command in KNOWN_COMMANDS:
        args = [*command] + ([] if command[0] == "usbmux" else ["--udid", udid])
        try:
            result = pmd(farm.address, *args, timeout=60)
        except subprocess.TimeoutExpired:
            hung.append(" ".join(command))
            continue
        if command in ANSWERED and result.returncode != 0:
            failed.append((" ".join(command), result.stderr[-300:]))
    assert hung == [] and failed == []
    sysmon = pmd(farm.address, "developer", "dvt", "sysmon", "system", "--udid", udid, timeout=60).stdout
    assert "physMemSize" in sysmon and "CPUCount: 6" in sysmon
