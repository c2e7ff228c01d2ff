"""JetsamEvent reports: what the virtual device writes is what iOS writes, as far as our reader and
pycrashreport (pymobiledevice3's parser) can tell; bad reports are ContractErrors, not tracebacks."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pycrashreport.crash_report import BugType, get_crash_report_from_buf

from orchestrator.devices.jetsam import (
    MAX_REPORT_BYTES,
    KilledProcess,
    format_jetsam_report,
    parse_jetsam_report,
    report_filename,
)
from orchestrator.errors import ContractError

WHEN = datetime(2024, 5, 4, 10, 11, 12, tzinfo=UTC)


def report(footprint_mb: float = 2100.0) -> str:
    killed = KilledProcess(pid=812, name="MLFarmHarness", footprint_bytes=int(footprint_mb * 2**20))
    return format_jetsam_report(killed, product="iPhone13,2", os_version="16.7.10", build="20H350",
                                bystanders=[(61, "SpringBoard", 160 * 2**20), (83, "aned", 14 * 2**20)], when=WHEN)


def test_written_report_reads_back_with_the_kill_evidence():
    parsed = parse_jetsam_report(report(2100.0), filename="JetsamEvent-x.ips")
    entry = parsed.for_pid(812)
    assert entry is not None and entry.reason == "per-process-limit" and entry.name == "MLFarmHarness"
    assert entry.footprint_mb == pytest.approx(2100.0, abs=0.02)  # whole 16 KiB pages
    assert parsed.largest_process == "MLFarmHarness"
    assert [p.pid for p in parsed.killed] == [812]  # bystanders carry no reason
    assert parsed.for_pid(61) is None and parsed.product == "iPhone13,2"
    assert "16.7.10 (20H350)" in parsed.os_version


def test_largest_process_is_the_biggest_even_when_it_is_not_the_victim():
    parsed = parse_jetsam_report(report(40.0))
    assert parsed.largest_process == "SpringBoard"
    assert parsed.for_pid(812) is not None


def test_pycrashreport_sees_a_bug_type_298_jetsam_event():
    text = report()
    parsed = get_crash_report_from_buf(text, filename="JetsamEvent-2024-05-04-101112.ips")
    assert parsed.bug_type == BugType.Jetsam_298
    assert parsed.timestamp.year == 2024 and parsed.incident_id
    body = json.loads(text.split("\n", 1)[1])
    assert {"largestProcess", "processes", "memoryStatus", "product", "build"} <= body.keys()


def test_file_name_follows_ios():
    assert report_filename(WHEN) == "JetsamEvent-2024-05-04-101112.ips"


@pytest.mark.parametrize("text, key", [
    ('{"bug_type":"309"}\n{}', "bug_type"),
    ("not json at all", ""),
    ('{"bug_type":"298"}\n{"processes": "nope"}', "processes"),
    ('{"bug_type":"298"}\n{"processes": [{"pid": "x", "rpages": 1}]}', "processes.0"),
    ('{"bug_type":"298"}\n{"memoryStatus": {"pageSize": 0}, "processes": []}', "memoryStatus.pageSize"),
])
def test_malformed_reports_name_the_key(text, key):
    with pytest.raises(ContractError) as info:
        parse_jetsam_report(text, filename="JetsamEvent-bad.ips")
    assert info.value.key == key and info.value.path == "JetsamEvent-bad.ips"


def test_oversized_report_is_refused_before_parsing():
    with pytest.raises(ContractError, match="bytes"):
        parse_jetsam_report(b"{" * (MAX_REPORT_BYTES + 1))
