"""Devices reached through usbmuxd (real iPhones/iPads, and virtual ones): the ``Device`` protocol on top of
``usbmux.UsbmuxSession`` (which alone talks to pymobiledevice3).

Per run, for one device:

    device = await connect_device(udid, usbmux_address=..., catalog=..., options=UsbmuxOptions(harness_ipa))
    await device.prepare()      # Developer Mode, tunnel on iOS 17+, install the harness unless that version is there
    ref = await device.push(artifact_dir, sha256)       # Documents/models/<sha256>.mlpackage, once per device
    outcome = await device.run(job, model_ref=ref)      # job.json in, launch, sample, wait, pull, classify
    await device.cleanup()

``run``: job.json goes to ``Documents/jobs/<job>/``; DVT launches the harness with that path as its argument;
Sysmontap samples every process (the harness's ``physFootprint`` and the system-wide sum, so memory charged
to daemons such as ``aned`` is seen: apple/ml-stable-diffusion #291) until the pid is gone; the job folder is
pulled back and ``read_result`` validates it. No result and a JetsamEvent report naming the pid is a jetsam;
no result and no report is a crash. The device-side job folder is removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import plistlib
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.devices.base import DeviceInfo, Health, RunOutcome
from orchestrator.devices.host import job_folder_name
from orchestrator.devices.usbmux import ProcessSample, Row, UsbmuxSession
from orchestrator.devices.usbmux_outcome import JobContext, classify
from orchestrator.errors import ArtifactError, DeviceError, InstallError, TransportError
from orchestrator.harness.contract import Job
from orchestrator.profiles.catalog import Catalog
from orchestrator.profiles.model import DeviceProfile

HARNESS_BUNDLE_ID = "dev.mlfarm.harness"
INCREASED_LIMIT = "com.apple.developer.kernel.increased-memory-limit"
MB = 1024 * 1024
NOT_SEEN_GRACE_S = 1.5  # a pid missing from the first rows after launch: those rows may predate it
STALL_S = 15.0  # no sysmontap row for this long: the connection is gone


@dataclass(frozen=True)
class UsbmuxOptions:
    harness_ipa: Path  # the Swift app (or the virtual stand-in from devices/virtual/ipa.py)
    bundle_id: str = HARNESS_BUNDLE_ID
    sample_interval_ms: int = 100
    report_wait_s: float = 5.0  # how long to wait for a JetsamEvent report after a vanished process
    kill_grace_s: float = 30.0  # past the job's timeout_s, the harness is killed (it should time out itself)
    min_battery_percent: int = 20
    tunneld_address: tuple[str, int] = ("127.0.0.1", 49151)
    work_dir: Path | None = None  # pulled job folders; a temporary folder (removed by cleanup) when None


def ipa_identity(ipa: Path) -> tuple[str, str]:
    """(CFBundleIdentifier, CFBundleVersion) from an .ipa's Info.plist."""
    try:
        with zipfile.ZipFile(ipa) as archive:
            name = next(n for n in archive.namelist() if re.fullmatch(r"Payload/[^/]+\.app/Info\.plist", n))
            info = plistlib.loads(archive.read(name))
        return str(info["CFBundleIdentifier"]), str(info.get("CFBundleVersion", ""))
    except (OSError, zipfile.BadZipFile, StopIteration, KeyError, plistlib.InvalidFileException) as exc:
        raise InstallError(f"{ipa} is not an .ipa with Payload/<Name>.app/Info.plist: {exc}",
                           fix="build it with `mlfarm harness build` (or use the virtual stand-in)") from exc


async def resolve_profile(session: UsbmuxSession, catalog: Catalog) -> DeviceProfile:
    """The profile of a connected device: the one a virtual device names, else its ProductType's, resolved to
    the RAM size read from the device when the model ships with several (smallest, marked assumed, if unread)."""
    if session.virtual and session.virtual.get("ProfileID"):
        return catalog.get(str(session.virtual["ProfileID"]))
    product_type = str(session.values.get("ProductType", ""))
    profile = catalog.match(product_type)
    base = next((p for p in catalog if p.id == profile.model_id), profile)
    if len(base.ram_options) <= 1:
        return profile
    try:
        ram_bytes = int((await session.instruments.hardware()).get("physicalMemory") or 0)
    except DeviceError:  # no DVT yet (e.g. no tunnel): keep the safe assumption
        return profile
    if ram_bytes <= 0:
        return profile
    gb = ram_bytes / (1 << 30)
    return catalog.match(product_type, ram_gb=min(base.ram_options, key=lambda r: abs(r - gb)))


@dataclass
class Watch:
    """What sysmontap showed while one job ran (bytes)."""

    baseline_total: int = 0
    peak_total: int = 0
    peak_footprint: int = 0
    peak_resident: int = 0
    seen: bool = False
    timed_out: bool = False
    wall_s: float = 0.0

    def add(self, row: dict[int, ProcessSample], pid: int) -> bool:
        """Account for one row; False once the pid has left it."""
        self.peak_total = max(self.peak_total, sum(p.footprint for p in row.values()))
        proc = row.get(pid)
        if proc is None:
            return not self.seen
        self.seen = True
        self.peak_footprint = max(self.peak_footprint, proc.footprint)
        self.peak_resident = max(self.peak_resident, proc.resident)
        return True

    @property
    def system_delta_mb(self) -> float | None:
        if not self.baseline_total:
            return None
        return round(max(self.peak_total - self.baseline_total, 0) / MB, 3)


async def connect_device(udid: str, *, usbmux_address: str | None, catalog: Catalog, options: UsbmuxOptions,
                         key: str | None = None) -> UsbmuxDevice:
    """Connect to ``udid`` through usbmuxd at ``usbmux_address`` and return it as a ``Device``.

    ``key`` defaults to ``virtual:<profile>`` for an emulated device and ``usb:<udid>`` for a real one."""
    session = await UsbmuxSession.open(udid, usbmux_address=usbmux_address, tunneld_address=options.tunneld_address)
    try:
        profile = await resolve_profile(session, catalog)
    except BaseException:
        await session.close()
        raise
    emulated = bool(session.virtual and session.virtual.get("Emulated"))
    values = session.values
    info = DeviceInfo(
        key=key or (f"virtual:{profile.id}" if emulated else f"usb:{udid}"),
        backend="virtual" if emulated else "usbmux", profile=profile, name=str(values.get("DeviceName", udid)),
        os_version=session.os_version, udid=udid, product_type=str(values.get("ProductType", "")),
        emulated=emulated, shares_host_cpu=emulated,  # an emulated device's harness is a process on this host
        extra={"build": values.get("BuildVersion"), "usbmux_address": usbmux_address,
               "ram_assumed": profile.ram_assumed,
               **({"limits": "enforced by mlfarm's watchdog; latencies are this host's"} if emulated else {})})
    return UsbmuxDevice(info, session, options)


class UsbmuxDevice:
    """One device through usbmuxd for the length of a run (see the module docstring for the call order)."""

    def __init__(self, info: DeviceInfo, session: UsbmuxSession, options: UsbmuxOptions) -> None:
        self.info = info
        self.session = session
        self.options = options
        self.bundle_id = options.bundle_id
        self.executable = "MLFarmHarness"
        self.increased_limit = False
        self.installed = False  # True when prepare() had to install (for the run's events)
        self.last_thermal: str | None = None
        self._work = options.work_dir

    @property
    def work(self) -> Path:
        """Where job folders are pulled to; a temporary folder (removed by ``cleanup``) unless given."""
        if self._work is None:
            self._work = Path(tempfile.mkdtemp(prefix="mlfarm-usbmux-"))
        return self._work

    @property
    def udid(self) -> str:
        return self.session.udid

    @property
    def limit_mb(self) -> int:
        return self.info.profile.limit_mb(increased=self.increased_limit)

    async def prepare(self) -> None:
        if not await self.session.developer_mode():
            raise DeviceError(f"Developer Mode is off on {self.info.name}", udid=self.udid,
                              fix="Settings > Privacy & Security > Developer Mode, then restart the device")
        await self.session.instruments.dvt()  # fail early: DDI not mounted, or iOS 17+ without a tunnel
        bundle_id, version = ipa_identity(self.options.harness_ipa)
        if bundle_id != self.bundle_id:
            raise InstallError(f"{self.options.harness_ipa.name} is {bundle_id}, expected {self.bundle_id}",
                               udid=self.udid, fix="point mlfarm at the harness .ipa")
        app = await self.session.installed_app(self.bundle_id)
        if app is None or str(app.get("CFBundleVersion")) != version:
            await self.session.install(self.options.harness_ipa)
            self.installed = True
            app = await self.session.installed_app(self.bundle_id)
            if app is None:
                raise InstallError(f"{self.bundle_id} is not listed after installing it", udid=self.udid,
                                   fix="check the device's storage and the install log (`pymobiledevice3 syslog`)")
        self.executable = str(app.get("CFBundleExecutable") or self.executable)
        self.increased_limit = bool((app.get("Entitlements") or {}).get(INCREASED_LIMIT))
        await self.session.instruments.process_control()

    async def health(self) -> Health:
        battery = await self.session.battery()
        percent, charging = battery.get("BatteryCurrentCapacity"), battery.get("BatteryIsCharging")
        ok = percent is None or bool(charging) or int(percent) >= self.options.min_battery_percent
        reason = "" if ok else (f"battery at {percent}% and not charging (minimum "
                                f"{self.options.min_battery_percent}%)")
        return Health(ok=ok, reason=reason, battery_percent=None if percent is None else float(percent),
                      charging=None if charging is None else bool(charging), thermal_state=self.last_thermal)

    async def push(self, artifact: Path, sha256: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):  # it names a folder on the device
            raise ArtifactError(f"artifact {artifact} has no valid sha256 ({sha256!r})", path=artifact,
                                fix="rebuild it with `mlfarm build` so the store records its hash")
        ref = f"models/{sha256}.mlpackage"
        remote = f"/Documents/{ref}"
        if await self.session.exists(self.bundle_id, remote):
            return ref
        partial = remote + ".partial"
        await self.session.remove(self.bundle_id, partial)
        await self.session.push_tree(self.bundle_id, artifact, partial)
        await self.session.rename(self.bundle_id, partial, remote)  # complete models only, even if interrupted
        return ref

    async def run(self, job: Job, *, model_ref: str) -> RunOutcome:
        folder = job_folder_name(job.job_id)
        remote = f"/Documents/jobs/{folder}"
        local = self.work / folder
        shutil.rmtree(local, ignore_errors=True)
        local.mkdir(parents=True)
        job = dataclasses.replace(job, model=model_ref)
        job.write(local)
        await self.session.remove(self.bundle_id, remote)
        await self.session.write_file(self.bundle_id, f"{remote}/job.json", (local / "job.json").read_bytes())
        started = time.time()
        watch, pid = await self._launch_and_watch(job, ["--job", f"jobs/{folder}/job.json"])
        ctx = JobContext(info=self.info, session=self.session, bundle_id=self.bundle_id, executable=self.executable,
                         limit_mb=self.limit_mb, job_id=job.job_id, pid=pid, remote=remote, local=local,
                         started=started, report_wait_s=self.options.report_wait_s)
        try:
            outcome = await classify(ctx, watch)
            if outcome.result is not None:
                self.last_thermal = str(outcome.result.raw["device"]["thermal_state_after"])
            return outcome
        finally:
            with contextlib.suppress(TransportError):
                await self.session.remove(self.bundle_id, remote)

    async def _launch_and_watch(self, job: Job, arguments: list[str]) -> tuple[Watch, int]:
        watch = Watch()
        async with self.session.instruments.sample_processes(self.options.sample_interval_ms) as rows:
            first = await self._next_row(rows, STALL_S)
            watch.baseline_total = watch.peak_total = sum(p.footprint for p in first.values())
            pid = await self.session.instruments.launch(self.bundle_id, arguments, {})
            launched = time.monotonic()
            deadline = launched + job.timeout_s + self.options.kill_grace_s
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    watch.timed_out = True
                    await self.session.instruments.kill(pid)
                    break
                row = await self._next_row(rows, min(remaining, STALL_S), allow_timeout=remaining < STALL_S)
                if row and not watch.add(row, pid):
                    break
                if not watch.seen and time.monotonic() - launched > NOT_SEEN_GRACE_S:
                    break  # it never showed up: exited before the first row
            watch.wall_s = time.monotonic() - launched
        return watch, pid

    async def _next_row(self, rows: asyncio.Queue[Row], timeout: float,
                        allow_timeout: bool = False) -> dict[int, ProcessSample]:
        try:
            row = await asyncio.wait_for(rows.get(), timeout)
        except TimeoutError:
            if allow_timeout:
                return {}
            row = TransportError(f"{self.info.name} stopped sending sysmontap samples for {timeout:.0f} s",
                                 udid=self.udid, fix="check the connection; the job is retried")
        if isinstance(row, TransportError):
            await self.session.reset()  # the kept connections died with the stream
            raise row
        return row

    async def cleanup(self) -> None:
        with contextlib.suppress(TransportError, DeviceError):
            await self.session.remove(self.bundle_id, "/Documents/jobs")
        await self.session.close()
        if self.options.work_dir is None and self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None
