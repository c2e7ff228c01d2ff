"""pymobiledevice3 (and socket) exceptions -> mlfarm errors, each with the fix; the one table of the backend."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator

from pymobiledevice3 import usbmux
from pymobiledevice3.dtx import DTXNsError, DTXProtocolError
from pymobiledevice3.exceptions import (
    AppInstallError,
    ConnectionFailedToUsbmuxdError,
    ConnectionTerminatedError,
    DeveloperModeIsNotEnabledError,
    DeviceNotFoundError,
    InvalidServiceError,
    MuxException,
    NoDeviceConnectedError,
    NotPairedError,
    PairingError,
    PasswordRequiredError,
    PyMobileDevice3Exception,
    StartServiceError,
)

from orchestrator.errors import DeviceError, InstallError, MlfarmError, TransportError

TRANSPORT_ERRORS = (ConnectionTerminatedError, MuxException, DeviceNotFoundError, NoDeviceConnectedError,
                    DTXProtocolError, ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError,
                    ssl.SSLError)
CAUGHT = (PyMobileDevice3Exception, DTXNsError, AssertionError, *TRANSPORT_ERRORS)


def translate(exc: BaseException, *, udid: str | None, doing: str, address: str | None = None) -> MlfarmError:
    """One mlfarm error (with the fix) for a pymobiledevice3 or socket exception raised while ``doing``."""
    where = f"device {udid}" if udid else "the device"
    if isinstance(exc, MlfarmError):
        return exc
    if isinstance(exc, ConnectionFailedToUsbmuxdError):
        return TransportError(f"cannot reach usbmuxd at {address or usbmux_default()} while {doing}", udid=udid,
                              fix="start usbmuxd (or `mlfarm virtual serve`), or point --usbmux / "
                                  "USBMUXD_SOCKET_ADDRESS at a Unix socket path or HOST:PORT")
    if isinstance(exc, DeviceNotFoundError | NoDeviceConnectedError):
        return TransportError(f"{where} is not connected ({doing})", udid=udid,
                              fix="reconnect it and check `mlfarm devices`")
    if isinstance(exc, PasswordRequiredError):
        return DeviceError(f"{where} is locked ({doing})", udid=udid, fix="unlock the device and retry")
    if isinstance(exc, NotPairedError | PairingError):
        return DeviceError(f"{where} does not trust this host ({doing})", udid=udid,
                           fix="unlock it, tap Trust, then run `pymobiledevice3 lockdown pair`")
    if isinstance(exc, AppInstallError):
        return InstallError(f"installing on {where} failed: {exc}", udid=udid,
                            fix="check the .ipa is signed for this device (a development profile listing its "
                                "UDID) and that the developer is trusted under Settings > General > VPN & "
                                "Device Management")
    if isinstance(exc, DeveloperModeIsNotEnabledError):
        return DeviceError(f"Developer Mode is off on {where}", udid=udid,
                           fix="Settings > Privacy & Security > Developer Mode, then restart the device")
    if isinstance(exc, InvalidServiceError | StartServiceError):
        return DeviceError(f"{where} refused a developer service while {doing}: {exc}", udid=udid,
                           fix="enable Developer Mode and mount the Developer Disk Image: "
                               "`pymobiledevice3 mounter auto-mount`")
    if isinstance(exc, DTXNsError):
        return DeviceError(f"{where} refused while {doing}: {exc}", udid=udid,
                           fix="check the harness app is installed and its developer is trusted on the device")
    if isinstance(exc, TRANSPORT_ERRORS):
        return TransportError(f"connection to {where} failed while {doing}: {type(exc).__name__}: {exc}",
                              udid=udid, fix="check the cable/network and `mlfarm devices`; retried automatically")
    return DeviceError(f"{where} failed while {doing}: {type(exc).__name__}: {exc}", udid=udid,
                       fix="rerun with --debug and check the device log (`pymobiledevice3 syslog live`)")


def usbmux_default() -> str:
    address, _ = usbmux.MuxConnection._resolve_usbmux_address(None)
    return address if isinstance(address, str) else f"{address[0]}:{address[1]}"


@contextlib.contextmanager
def boundary(udid: str | None, doing: str, address: str | None = None) -> Iterator[None]:
    """Translate whatever pymobiledevice3 raises inside the block (``with boundary(udid, "installing"):``)."""
    try:
        yield
    except MlfarmError:
        raise
    except CAUGHT as exc:
        raise translate(exc, udid=udid, doing=doing, address=address) from exc
