"""Who an emulated device is: UDID, ProductType, OS version, its RSA key, and the host it trusts.

A real device and a host trust each other after pairing: the host keeps a pair record (root, host and
device certificates, the host key, HostID, SystemBUID) and usbmuxd hands it out (``ReadPairRecord``).
The emulator provisions that record for the local host up front, so pymobiledevice3 connects without a
trust dialog. pymobiledevice3 does not verify the device certificate; the emulator verifies the host's
by pinning its HostCertificate (a chain check fails on the empty DNs Apple's scheme uses).

The emulated OS defaults to 16.x for every profile, including models that shipped with iOS 17+: below
iOS 17 the DVT instruments server is a lockdown service (``DVTSecureSocketProxy``); from iOS 17 on it is
reachable only through an RSD tunnel (RemoteXPC over a QUIC/TCP tunnel), which is not emulated on the
wire. ``os_version="17.5.1"`` makes a device report 17.x, for testing the "no tunnel" path.
"""

from __future__ import annotations

import hashlib
import plistlib
import re
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pymobiledevice3 import irecv_devices
from pymobiledevice3.ca import generate_pairing_cert_chain
from pymobiledevice3.pair_records import generate_host_id

from orchestrator.profiles.model import DeviceProfile

DEFAULT_OS_VERSION = "16.7.10"
KNOWN_BUILDS = {"16.7.10": "20H350", "16.6": "20G75", "17.0": "21A329", "17.5.1": "21F90", "18.1": "22B83"}
# TLS 1.2 suites the emulator accepts (1.3 suites are all AEAD): forward secret, AEAD, at OpenSSL's security
# level 2 (2048-bit keys, SHA-256 signatures: what pymobiledevice3's pairing certificates use). pymobiledevice3
# offers everything down to SECLEVEL=0 for old devices; the emulator answers with the strongest it shares.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:@SECLEVEL=2"
OS_PATTERN = re.compile(r"^(\d{1,2})\.(\d{1,2})(\.\d{1,2})?$")


def build_for(os_version: str) -> str:
    """The build string of a known release, or a plausible one (``20X100`` style) for others."""
    if os_version in KNOWN_BUILDS:
        return KNOWN_BUILDS[os_version]
    match = OS_PATTERN.match(os_version)
    if not match:
        raise ValueError(f"OS version {os_version!r} is not like 16.7.10")
    major, minor = int(match.group(1)), int(match.group(2))
    return f"{major + 4}{chr(ord('A') + min(minor, 25))}100"


def _hardware(product_type: str) -> tuple[str, int]:
    for dev in irecv_devices.IRECV_DEVICES:
        if dev.product_type == product_type:
            return str(dev.hardware_model).upper(), int(dev.chip_id)
    return "J000AP", 0x8000


@dataclass
class DeviceIdentity:
    """Identity and trust material of one emulated device; created once, read by every daemon."""

    profile: DeviceProfile
    product_type: str
    udid: str
    ecid: int
    chip_id: int
    hardware_model: str
    name: str
    os_version: str
    build_version: str
    serial: str
    wifi_mac: str
    device_key_pem: bytes = field(repr=False)
    device_public_pem: bytes = field(repr=False)
    device_cert_pem: bytes = field(repr=False)
    pair_record: dict[str, Any] = field(repr=False)
    trusted_hosts: dict[str, bytes] = field(default_factory=dict, repr=False)  # HostID -> HostCertificate
    _contexts: dict[str, ssl.SSLContext] = field(default_factory=dict, repr=False)

    @classmethod
    def create(cls, profile: DeviceProfile, *, index: int, system_buid: str, os_version: str = DEFAULT_OS_VERSION,
               host_key: rsa.RSAPrivateKey | None = None) -> DeviceIdentity:
        product_type = profile.product_types[0]
        hardware_model, chip_id = _hardware(product_type)
        digest = hashlib.sha256(f"mlfarm-virtual/{profile.id}/{index}".encode()).hexdigest()
        ecid = int(digest[:13], 16)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        host_cert, host_key_pem, device_cert, root_cert, root_key = generate_pairing_cert_chain(
            public_pem, private_key=host_key)
        mac = ":".join(digest[i:i + 2] for i in range(20, 32, 2))
        host_id = generate_host_id()
        record = {
            "DeviceCertificate": device_cert, "HostCertificate": host_cert, "HostPrivateKey": host_key_pem,
            "RootCertificate": root_cert, "RootPrivateKey": root_key, "HostID": host_id,
            "SystemBUID": system_buid, "WiFiMACAddress": mac, "EscrowBag": hashlib.sha256(digest.encode()).digest(),
        }
        suffix = f" #{index + 1}" if index else ""
        return cls(
            profile=profile, product_type=product_type, udid=f"{chip_id:08X}-{ecid:016X}", ecid=ecid,
            chip_id=chip_id, hardware_model=hardware_model, name=f"mlfarm virtual {profile.name}{suffix}",
            os_version=os_version, build_version=build_for(os_version), serial=digest[32:44].upper(),
            wifi_mac=mac, device_key_pem=key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption()),
            device_public_pem=public_pem, device_cert_pem=device_cert, pair_record=record,
            trusted_hosts={host_id: host_cert},
        )

    @property
    def os_major(self) -> int:
        return int(self.os_version.split(".")[0])

    @property
    def device_class(self) -> str:
        return "iPad" if self.profile.family == "ipad" else "iPhone"

    def pair_record_bytes(self) -> bytes:
        return plistlib.dumps(self.pair_record)

    def trust(self, host_id: str, host_cert_pem: bytes) -> None:
        """Accept a host (the user tapped Trust): its certificate is pinned from now on."""
        self.trusted_hosts[host_id] = host_cert_pem
        self._contexts.pop(host_id, None)

    def server_context(self, host_id: str) -> ssl.SSLContext:
        """TLS server context for sessions of ``host_id``: present the device certificate, pin the host's."""
        if host_id in self._contexts:
            return self._contexts[host_id]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(TLS12_CIPHERS)
        with tempfile.TemporaryDirectory() as tmp:
            pem = Path(tmp) / "device.pem"
            pem.write_bytes(self.device_cert_pem + b"\n" + self.device_key_pem)
            ctx.load_cert_chain(pem)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        ctx.load_verify_locations(cadata=self.trusted_hosts[host_id].decode())
        self._contexts[host_id] = ctx
        return ctx

    def lockdown_values(self, *, paired: bool) -> dict[str, Any]:
        """``GetValue`` with no domain: the full set in a session, a public subset before one."""
        public = {
            "BuildVersion": self.build_version, "DeviceClass": self.device_class, "DeviceName": self.name,
            "ProductType": self.product_type, "ProductVersion": self.os_version, "ProductName": "iPhone OS",
            "UniqueDeviceID": self.udid, "UniqueChipID": self.ecid, "DevicePublicKey": self.device_public_pem,
            "HardwareModel": self.hardware_model, "CPUArchitecture": "arm64e", "WiFiAddress": self.wifi_mac,
            "HostAttached": True, "PasswordProtected": False, "TrustedHostAttached": paired,
        }
        if not paired:
            return public
        return public | {
            "ActivationState": "Activated", "ChipID": self.chip_id, "SerialNumber": self.serial,
            "HardwarePlatform": f"t{self.chip_id:04x}", "ModelNumber": "MVIRT", "RegionInfo": "LL/A",
            "TimeZone": "UTC", "UniqueChipIDHex": hex(self.ecid), "BluetoothAddress": self.wifi_mac,
            "EthernetAddress": self.wifi_mac, "FirmwareVersion": "iBoot-10151.140.19",
            "DeviceColor": "1", "BasebandStatus": "BBInfoAvailable", "Uses24HourClock": True
        }
