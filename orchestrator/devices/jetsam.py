"""JetsamEvent reports (``JetsamEvent-<date>.ips``, bug_type 298): read on the usbmux side, written by the
virtual device. One module owns the format so the writer and the reader cannot drift apart.

When iOS kills a process for memory it leaves no exit status the app could report; the evidence is a
report in the CrashReporter folder (served by ``com.apple.crashreportcopymobile``). Its layout, as iOS 15-18
write it and as pycrashreport reads it:

    {"bug_type":"298","timestamp":"2024-05-04 10:11:12.00 +0200","os_version":"iPhone OS 16.7.10 (20H350)",
     "incident_id":"..."}                                     <- one header line of JSON
    {                                                        <- the body: one JSON document
      "product": "iPhone13,2", "build": "...", "date": "...", "largestProcess": "MlfarmHarness",
      "memoryStatus": {"pageSize": 16384, "memoryPages": {...}, ...},
      "processes": [{"pid": 812, "name": "MlfarmHarness", "rpages": 131072,
                     "reason": "per-process-limit", "states": ["frontmost"], ...}, ...]
    }

``rpages`` times ``pageSize`` is the footprint jetsam charged the process when it acted; ``reason`` is set
only on the processes it killed (``per-process-limit``, ``vm-pageshortage``, ``highwater``, ...).
Reports come from devices, so they are untrusted: size-bounded, and problems are ``ContractError``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.errors import ContractError, Problem

BUG_TYPE = "298"
DEFAULT_PAGE_SIZE = 16384  # arm64 iOS pages
MAX_REPORT_BYTES = 8 << 20
MB = 1024 * 1024


@dataclass(frozen=True)
class JetsamProcess:
    pid: int
    name: str
    rpages: int
    reason: str | None
    footprint_mb: float


@dataclass(frozen=True)
class JetsamReport:
    """One parsed JetsamEvent report; ``killed`` lists the processes jetsam acted on."""

    filename: str
    timestamp: str
    incident_id: str
    os_version: str
    product: str
    largest_process: str
    page_size: int
    processes: tuple[JetsamProcess, ...] = field(repr=False)

    @property
    def killed(self) -> tuple[JetsamProcess, ...]:
        return tuple(p for p in self.processes if p.reason)

    def for_pid(self, pid: int) -> JetsamProcess | None:
        """The entry for ``pid`` if jetsam killed it in this event."""
        return next((p for p in self.killed if p.pid == pid), None)


def _fail(filename: str, key: str, message: str) -> ContractError:
    return ContractError([Problem(filename, key, message, "the device wrote an unexpected JetsamEvent report")])


def parse_jetsam_report(text: str | bytes, *, filename: str = "JetsamEvent.ips") -> JetsamReport:
    """Parse the header line and the JSON body; raise ContractError naming what is wrong."""
    if isinstance(text, bytes):
        if len(text) > MAX_REPORT_BYTES:
            raise _fail(filename, "", f"report is {len(text)} bytes, more than {MAX_REPORT_BYTES}")
        text = text.decode("utf-8", errors="replace")
    if len(text) > MAX_REPORT_BYTES:
        raise _fail(filename, "", f"report is longer than {MAX_REPORT_BYTES} characters")
    head, _, body = text.partition("\n")
    try:
        header = json.loads(head)
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, or an integer past Python's digit limit
        raise _fail(filename, "", f"not a header line plus a JSON body: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(data, dict):
        raise _fail(filename, "", "header and body must be JSON objects")
    if str(header.get("bug_type")) != BUG_TYPE:
        raise _fail(filename, "bug_type", f"expected {BUG_TYPE} (JetsamEvent), got {header.get('bug_type')!r}")
    memory = data.get("memoryStatus")
    if not isinstance(memory, dict):
        memory = {}
    page_size = memory.get("pageSize", DEFAULT_PAGE_SIZE)
    if not isinstance(page_size, int) or page_size <= 0:
        raise _fail(filename, "memoryStatus.pageSize", f"expected a positive integer, got {page_size!r}")
    raw = data.get("processes")
    if not isinstance(raw, list):
        raise _fail(filename, "processes", "expected a list of processes")
    processes = tuple(_process(p, i, page_size, filename) for i, p in enumerate(raw))
    return JetsamReport(
        filename=filename, timestamp=str(header.get("timestamp", data.get("date", ""))),
        incident_id=str(header.get("incident_id", data.get("incident", ""))),
        os_version=str(header.get("os_version", data.get("build", ""))), product=str(data.get("product", "")),
        largest_process=str(data.get("largestProcess", "")), page_size=page_size, processes=processes,
    )


def _process(entry: Any, index: int, page_size: int, filename: str) -> JetsamProcess:
    key = f"processes.{index}"
    if not isinstance(entry, dict):
        raise _fail(filename, key, "expected an object")
    pid, rpages = entry.get("pid"), entry.get("rpages", 0)
    if not isinstance(pid, int) or not isinstance(rpages, int) or rpages < 0:
        raise _fail(filename, key, f"pid and rpages must be integers, got {pid!r} and {rpages!r}")
    reason = entry.get("reason")
    return JetsamProcess(pid=pid, name=str(entry.get("name", "")), rpages=rpages,
                         reason=str(reason) if reason else None, footprint_mb=rpages * page_size / MB)


# ---- writing (the virtual device) -------------------------------------------------------------------


@dataclass(frozen=True)
class KilledProcess:
    pid: int
    name: str
    footprint_bytes: int
    reason: str = "per-process-limit"
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()).upper())


def report_filename(when: datetime) -> str:
    """``JetsamEvent-2024-05-04-101112.ips``, the name iOS gives it."""
    return f"JetsamEvent-{when.strftime('%Y-%m-%d-%H%M%S')}.ips"


def format_jetsam_report(
    killed: KilledProcess,
    *,
    product: str,
    os_version: str,
    build: str,
    bystanders: list[tuple[int, str, int]],
    when: datetime | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    total_pages: int = 262144,
) -> str:
    """A JetsamEvent report for one killed process; ``bystanders`` are (pid, name, footprint bytes) of the
    processes that were alive, listed without a reason like iOS does."""
    when = when or datetime.now(UTC).astimezone()
    stamp = when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-4] + when.strftime(" %z")
    os_string = f"iPhone OS {os_version} ({build})"
    incident = str(uuid.uuid4()).upper()
    header = {"bug_type": BUG_TYPE, "timestamp": stamp, "os_version": os_string, "roots_installed": 0,
              "incident_id": incident}
    entries = [_entry(killed.pid, killed.name, killed.footprint_bytes, page_size, killed.reason, killed.uuid)]
    entries += [_entry(pid, name, size, page_size, None, str(uuid.uuid5(uuid.NAMESPACE_OID, name)).upper())
                for pid, name, size in bystanders]
    largest = max(entries, key=lambda e: e["rpages"])["name"]
    used = sum(e["rpages"] for e in entries)
    body = {
        "crashReporterKey": uuid.uuid5(uuid.NAMESPACE_OID, product).hex, "product": product,
        "incident": incident, "date": stamp, "build": os_string, "timeDelta": 3,
        "memoryStatus": {
            "pageSize": page_size, "compressorSize": 0, "compressions": 0, "decompressions": 0,
            "memoryPages": {"active": used, "inactive": 0, "throttled": 0, "fileBacked": 0, "wired": 0,
                            "anonymous": used, "purgeable": 0, "speculative": 0,
                            "free": max(total_pages - used, 0)},
        },
        "largestProcess": largest, "genCounter": 0, "processes": entries,
    }
    return json.dumps(header, separators=(",", ":")) + "\n" + json.dumps(body, indent=2)


def _entry(pid: int, name: str, size: int, page_size: int, reason: str | None, proc_uuid: str) -> dict[str, Any]:
    pages = -(-size // page_size)
    entry: dict[str, Any] = {
        "uuid": proc_uuid, "states": ["frontmost"] if reason else ["daemon"], "genCount": 0, "age": 1,
        "purgeable": 0, "fds": 25, "coalition": pid, "rpages": pages, "priority": 10 if reason else 0,
        "physicalPages": {"internal": [pages, 0]}, "pid": pid, "name": name, "cpuTime": 0.0,
        "lifetimeMax": pages,
    }
    if reason:
        entry["reason"] = reason
        entry["killDelta"] = 0
    return entry
