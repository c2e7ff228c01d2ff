"""``mlfarm devices`` (what usbmuxd sees, with matched profiles) and ``mlfarm virtual serve`` (emulated devices)."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from orchestrator.cli._app import App, json_option, pass_app, returns_exit_code
from orchestrator.errors import UnknownProfileError, UsageError


def _device_row(app: App, attached: Any) -> dict[str, Any]:
    values, virtual = attached.values, attached.virtual or {}
    row: dict[str, Any] = {
        "udid": attached.udid, "key": None, "name": values.get("DeviceName"),
        "product_type": values.get("ProductType"), "os": values.get("ProductVersion"),
        "build": values.get("BuildVersion"), "connection": attached.connection_type,
        "emulated": bool(virtual.get("Emulated")), "profile": None, "ram_assumed": None, "error": attached.error,
    }
    if attached.error:
        return row
    try:
        if virtual.get("ProfileID"):
            profile = app.catalog().get(str(virtual["ProfileID"]))
        else:
            profile = app.catalog().match(str(values.get("ProductType", "")))
        row.update(profile=profile.id, ram_assumed=profile.ram_assumed,
                   key=f"virtual:{profile.id}" if row["emulated"] else f"usb:{attached.udid}")
    except UnknownProfileError as exc:
        row["error"] = f"{exc.message} ({exc.fix})"
    return row


@click.command("devices")
@json_option
@pass_app
@returns_exit_code
def devices(app: App, as_json: bool) -> int:
    """Devices behind usbmuxd (real and virtual) with their matched profiles [--usbmux ADDRESS]."""
    from orchestrator.devices.usbmux import list_attached, usbmux_default

    address = app.settings.usbmux_address
    rows = [_device_row(app, a) for a in asyncio.run(list_attached(address))]

    def render(console: Console) -> None:
        table = Table(title=f"{len(rows)} device(s) at usbmuxd {address or usbmux_default()}")
        for col in ("key", "name", "product type", "OS", "profile", "UDID", "note"):
            table.add_column(col, overflow="fold", no_wrap=col in ("key", "profile", "UDID"))  # what --devices takes
        for r in rows:
            note = r["error"] or ("virtual: limits by mlfarm, host latencies" if r["emulated"] else "")
            if r["ram_assumed"]:
                note = (note + "; " if note else "") + "RAM size assumed (smallest) until read at run time"
            table.add_row(r["key"] or "-", r["name"] or "-", r["product_type"] or "-", r["os"] or "-",
                          r["profile"] or "-", r["udid"], note)
        console.print(table)
        if not rows:
            console.print("no devices: connect one (and tap Trust), or start virtual ones with "
                          "`mlfarm virtual serve --profile iphone-12`")

    app.emit(as_json, rows, render)
    return 0


@click.group("virtual")
def virtual() -> None:
    """Emulated iPhones/iPads that speak the real wire protocols (usbmux, lockdown, AFC, DVT)."""


@virtual.command("serve")
@click.option("--profile", "profile_ids", multiple=True, required=True, help="Device profile id (repeatable).")
@click.option("--count", type=click.IntRange(1, 32), default=1, show_default=True, help="Devices per profile.")
@click.option("--socket", "socket_path", type=click.Path(path_type=Path), help="Unix socket for the emulated usbmuxd.")
@click.option("--tcp", help="HOST:PORT for the emulated usbmuxd instead of a socket (port 0 picks one).")
@click.option("--ios", "os_version", default=None,
              help="OS version the devices report [16.7.10: below 17, DVT is a lockdown service; 17.x has no "
                   "tunnel here and refuses it].")
@click.option("--allow-remote", is_flag=True,
              help="Accept a --tcp address beyond loopback (remote clients can install and launch apps).")
@click.option("--root", type=click.Path(path_type=Path), help="State folder (apps, containers, crash reports).")
@json_option
@pass_app
@returns_exit_code
def serve(app: App, profile_ids: tuple[str, ...], count: int, socket_path: Path | None, tcp: str | None,
          os_version: str | None, allow_remote: bool, root: Path | None, as_json: bool) -> int:
    """Serve emulated devices until Ctrl-C; point pymobiledevice3 or mlfarm at the address it prints."""
    from orchestrator.devices.virtual.identity import DEFAULT_OS_VERSION, OS_PATTERN
    from orchestrator.devices.virtual.serve import DeviceSpec, parse_tcp, remote_warning
    from orchestrator.devices.virtual.serve import serve as run_serve

    if socket_path and tcp:
        raise UsageError("--socket and --tcp are exclusive", fix="give one listener")
    os_version = os_version or DEFAULT_OS_VERSION
    if not OS_PATTERN.match(os_version):
        raise UsageError(f"--ios {os_version!r} is not a version like 16.7.10", fix="e.g. --ios 16.7.10")
    for pid in profile_ids:
        profile = app.catalog().get(pid)
        if profile.family not in ("iphone", "ipad"):
            raise UsageError(f"{pid} is a {profile.family}: virtual devices emulate iPhones and iPads",
                             fix="pick an iphone or ipad profile (`mlfarm profiles --family iphone`)")
    try:
        listen = parse_tcp(tcp) if tcp else None
        warning = remote_warning(listen, allow_remote=allow_remote)
    except ValueError as exc:
        raise UsageError(str(exc), fix="e.g. --tcp 127.0.0.1:27015, or add --allow-remote on a trusted "
                                       "network") from exc
    if warning:
        click.echo(warning, err=True)
    state = root or Path(tempfile.mkdtemp(prefix="mlfv-"))
    specs = [DeviceSpec(p, os_version) for p in profile_ids for _ in range(count)]

    def announce(ready: dict[str, Any]) -> None:
        if as_json:
            click.echo(json.dumps(ready), nl=True)
            return
        table = Table(title=f"{len(ready['devices'])} virtual device(s) (iOS {os_version}, emulated)")
        for col in ("UDID", "profile", "name", "product type"):
            table.add_column(col, no_wrap=col in ("UDID", "profile"))
        for d in ready["devices"]:
            table.add_row(d["udid"], d["profile"], d["name"], d["product_type"])
        app.console.print(table)
        app.console.print(f"usbmuxd: {ready['address']}   state: {ready['root']}\n"
                          f"  export USBMUXD_SOCKET_ADDRESS={ready['address']}   # for pymobiledevice3 / mlfarm\n"
                          "Ctrl-C to stop.")

    try:
        asyncio.run(run_serve(specs, app.catalog().get, root=state, control_stdin=False, announce=announce,
                              socket_path=None if listen else (socket_path or state / "usbmuxd.sock"), tcp=listen))
    finally:
        if root is None:  # a temporary state folder goes with the devices
            shutil.rmtree(state, ignore_errors=True)
    return 0
