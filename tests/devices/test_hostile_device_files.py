"""Files a device hands back are bounded: crash reports that are not JSON or hold huge numbers are contract
errors, and an .ipa that would unpack past the caps is refused before anything is extracted."""

from __future__ import annotations

import zipfile

import pytest

from orchestrator.devices.jetsam import KilledProcess, format_jetsam_report, parse_jetsam_report
from orchestrator.devices.virtual import apps
from orchestrator.devices.virtual.apps import AppRegistry, InstallFailure
from orchestrator.devices.virtual.ipa import build_placeholder_ipa
from orchestrator.errors import ContractError


def test_a_jetsam_report_with_a_5000_digit_number_is_a_contract_error():
    text = format_jetsam_report(KilledProcess(7, "App", 1 << 30), product="iPhone13,2", os_version="16.7.10",
                                build="20H350", bystanders=[])
    head, _, body = text.partition("\n")
    hostile = head + "\n" + body.replace('"pageSize"', '"huge": ' + "9" * 5000 + ', "pageSize"', 1)
    with pytest.raises(ContractError, match="JSON body"):
        parse_jetsam_report(hostile, filename="JetsamEvent-x.ips")


def test_an_ipa_unpacking_past_the_member_cap_is_refused_before_extraction(tmp_path, monkeypatch):
    ipa = build_placeholder_ipa(tmp_path / "App.ipa")
    with zipfile.ZipFile(ipa, "a") as archive:
        archive.writestr("Payload/MLFarmHarness.app/blob.bin", b"\0" * 4096)
    monkeypatch.setattr(apps, "MAX_MEMBER_BYTES", 1024)
    registry = AppRegistry(tmp_path / "device")
    with pytest.raises(InstallFailure, match="unpacks to 4096 bytes"):
        registry.install(ipa)
    assert not any(p.name.endswith(".app") for p in (tmp_path / "device").rglob("*"))


def test_an_ipa_with_too_many_entries_is_refused(tmp_path, monkeypatch):
    ipa = build_placeholder_ipa(tmp_path / "App.ipa")
    monkeypatch.setattr(apps, "MAX_MEMBERS", 2)
    with pytest.raises(InstallFailure, match="entries"):
        AppRegistry(tmp_path / "device").install(ipa)
