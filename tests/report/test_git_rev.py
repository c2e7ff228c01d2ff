"""Every report format shows the spec's git revision stored on the run (shortened, ``-dirty`` kept)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from io import StringIO

from rich.console import Console

from orchestrator.report import build_report
from orchestrator.report.render_html import render_html
from orchestrator.report.render_json import render_json
from orchestrator.report.render_junit import render_junit
from orchestrator.report.render_markdown import render_markdown
from orchestrator.report.render_terminal import render_terminal
from orchestrator.results import DeviceRow, NewJob, ResultsStore


def test_every_report_format_shows_the_revision(tmp_path, catalog):
    rev = "0123456789abcdef0123456789abcdef01234567-dirty"
    with ResultsStore(tmp_path / "r.db") as store:
        run = store.create_run(spec_name="s", spec_digest="d", git_rev=rev)
        store.add_device(run, DeviceRow("host", "host", "host", info={"limit_mb": 24000.0}))
        store.add_jobs(run, [NewJob("host", "unet", "fp16-none-split_einsum_v2", "all")])
        store.set_run_status(run, "finished")
        report = build_report(store, run, "none", catalog)
    short = "0123456789ab-dirty"
    assert json.loads(render_json(report))["run"]["git_rev"] == rev
    assert f"`{short}`" in render_markdown(report)
    assert f">{short}</code>" in render_html(report)
    suites = ET.fromstring(render_junit(report)).findall("testsuite")
    assert suites and all(s.find("properties/property[@name='git_rev']").get("value") == rev for s in suites)
    out = StringIO()
    render_terminal(report, Console(file=out, width=200))
    assert short in out.getvalue()
