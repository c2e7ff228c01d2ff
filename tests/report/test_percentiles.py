"""One percentile definition: the run line, the report JSON, Markdown, the HTML table and plot, and the box
whiskers all give the same p50 and p90 for the same samples (linear interpolation, numpy's default)."""

from __future__ import annotations

import asyncio
import json
import re

import numpy as np
import pytest

from orchestrator.devices.base import MemoryFigures, RunOutcome
from orchestrator.harness.contract import HarnessResult, Job
from orchestrator.quantiles import percentile, spread
from orchestrator.report import build_report
from orchestrator.report.plots import box_stats
from orchestrator.report.render_html import render_html
from orchestrator.report.render_json import report_dict
from orchestrator.report.render_markdown import render_markdown
from orchestrator.results import DeviceRow
from orchestrator.runner.engine import Runner, WorkItem
from tests.runner.test_engine import ScriptedDevice, result_doc, setup

# Two launches whose pooled samples tell the definitions apart: sorted [10, 11, 12, 13, 30, 50] has
# lat[len // 2] = 13 and a nearest-rank p90 of 50, while linear interpolation gives p50 12.5 and p90 40.
LAUNCHES = [[10.0, 11.0, 30.0], [12.0, 13.0, 50.0]]


def test_linear_interpolation_is_the_definition():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10, 11, 12, 13, 30, 50], 90) == pytest.approx(40.0)
    s = spread([float(x) for x in range(11)])
    assert (s.p10, s.p25, s.p50, s.p75, s.p90) == (1.0, 2.5, 5.0, 7.5, 9.0)
    assert np.isnan(percentile([], 50))


class Lines:
    def __init__(self) -> None:
        self.details: list[str] = []

    def device_started(self, device_key: str, total: int) -> None:
        pass

    def job_started(self, item: WorkItem) -> None:
        pass

    def job_finished(self, item: WorkItem, status: str, detail: str) -> None:
        self.details.append(detail)


def _number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m is not None, (pattern, text[:400])
    return float(m.group(1).replace(",", ""))


def test_run_line_report_json_markdown_and_html_agree(tmp_path, catalog):
    store, run, items = setup(tmp_path, ["host"], 1)
    store.add_device(run, DeviceRow("host", "host", "host", name="this machine", info={"limit_mb": 24000.0}))
    job_id = items[0].store_id
    script = [RunOutcome("ok", result=HarnessResult(job_id, "ok", result_doc(job_id, lat)),
                         memory=MemoryFigures(80.0, 130.0, 50.0, 24000.0)) for lat in LAUNCHES]

    class Device(ScriptedDevice):
        async def run(self, job: Job, *, model_ref: str) -> RunOutcome:
            return script.pop(0)

    lines = Lines()
    asyncio.run(Runner(store, run, references=lambda c: None, launches=2, progress=lines)
                .run({"host": Device("host", [])}, items))
    store.set_run_status(run, "finished")
    line = lines.details[0]
    report = build_report(store, run, "none", catalog)

    verdict = next(v for v in report_dict(report)["verdicts"] if v["job_id"] == job_id)
    p50, p90 = verdict["latency"]["p50"], verdict["latency"]["p90"]
    assert (p50, p90) == pytest.approx((12.5, 40.0))
    assert (_number(r"p50 ([\d.]+) ms", line), _number(r"p90 ([\d.]+) ms", line)) == pytest.approx((p50, p90))

    md = render_markdown(report)
    assert (_number(r"\| ([\d.]+) ms / [\d.]+ ms \|", md), _number(r"\| [\d.]+ ms / ([\d.]+) ms \|", md)) \
        == pytest.approx((p50, p90), abs=0.05)

    html = render_html(report)
    cell = re.search(r"<td[^>]*>([\d.]+) ms / ([\d.]+) ms</td>", html)
    assert cell is not None and (float(cell.group(1)), float(cell.group(2))) == pytest.approx((p50, p90), abs=0.05)
    # the plot's label (matplotlib keeps each text as a comment beside its glyph paths)
    assert _number(r"<!-- p90 ([\d.]+) ms -->", html) == pytest.approx(p90, abs=0.05)

    stats = box_stats([x for launch in LAUNCHES for x in launch])  # what the whiskers and the box are drawn from
    assert (stats["med"], stats["whishi"]) == pytest.approx((p50, p90))
    assert stats["whislo"] == pytest.approx(percentile([10, 11, 12, 13, 30, 50], 10))
    assert stats["fliers"] == [10.0, 50.0]
    json.dumps(verdict)  # the figures are plain JSON numbers
