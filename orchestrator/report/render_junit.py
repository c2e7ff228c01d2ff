"""The report as JUnit XML for CI: one testcase per gating device x component x gate, one per comparison.

    <testsuites name="mlfarm tiny-sd" tests=.. failures=..>
      <testsuite name="qualification: virtual:iphone-12">
        <testcase classname="mlfarm.tiny-sd.virtual:iphone-12" name="unet memory">
          <failure type="memory" message="killed by jetsam at 2,110 MB (limit 2,048 MB, per-process-limit)"/>
      <testsuite name="regression">
        <testcase classname="mlfarm.tiny-sd.regression.host" name="unet latency [fp16-none-original, cpu_only]">

A failed gate or a regression is a ``<failure>``; a gate that does not apply (no budget, no PSNR) or a
comparison without enough data is ``<skipped>``; an unstable or suspicious result passes with its warning
in ``<system-out>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from orchestrator.report.model import Report
from orchestrator.report.qualify import JobVerdict


def _suite(parent: ET.Element, name: str, properties: dict[str, str]) -> ET.Element:
    suite = ET.SubElement(parent, "testsuite", name=name)
    props = ET.SubElement(suite, "properties")
    for key, value in properties.items():
        ET.SubElement(props, "property", name=key, value=value)
    return suite


def _case(suite: ET.Element, classname: str, name: str, status: str, message: str, kind: str) -> None:
    case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")
    if status == "fail":
        ET.SubElement(case, "failure", type=kind, message=message).text = message
    elif status == "skip":
        ET.SubElement(case, "skipped", message=message)
    else:
        ET.SubElement(case, "system-out").text = message


def _count(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    suite.set("errors", "0")


def _name(v: JobVerdict, gate: str) -> str:
    return f"{v.component} {gate}" + (f" [{v.variant}, {v.compute_units}]" if v.job_id else "")


def render_junit(report: Report) -> str:
    run = report.run
    root = ET.Element("testsuites", name=f"mlfarm {run.spec_name}")
    suites: dict[str, ET.Element] = {}
    properties = {"run": run.id, "git_rev": run.git_rev or ""}
    for v in report.gating:
        suite = suites.get(v.device_key)
        if suite is None:
            suite = suites[v.device_key] = _suite(root, f"qualification: {v.device_key}", properties)
        for g in v.gates:
            status = {"fail": "fail", "n/a": "skip"}.get(g.status, "pass")
            flags = f" ({'; '.join(g.flags)})" if g.flags else ""
            _case(suite, f"mlfarm.{run.spec_name}.{v.device_key}", _name(v, g.gate), status, g.reason + flags, g.gate)
    if report.baseline.runs:
        suite = _suite(root, "regression", properties)
        suite.set("baseline", ",".join(report.baseline.ids))
        for c in report.comparisons:
            status = {"regression": "fail", "insufficient data": "skip"}.get(c.classification, "pass")
            _case(suite, f"mlfarm.{run.spec_name}.regression.{c.device_key}",
                  f"{c.component} {c.metric} [{c.variant}, {c.compute_units}]", status,
                  f"{c.classification}: {c.reason}", c.metric)
    for suite in root.findall("testsuite"):
        _count(suite)
    for attr in ("tests", "failures", "skipped"):
        root.set(attr, str(sum(int(s.get(attr, "0")) for s in root.findall("testsuite"))))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
